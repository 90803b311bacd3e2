"""Per-frame speech probability from silero-vad, on the cache's frame timeline.

Seed 003 ¶0 filters "unreliable or non-speech segments" out of the audio: the models gate the
audio by ``batch["vad"]`` (``vad_gate``). silero-vad scores every 512-sample chunk (32 ms at
16 kHz) of the record's audio; chunk ``k`` is placed at ``k * VAD_HOP_S`` (the start of its
window, as :mod:`wildaffect.io.align` places the 20 ms audio features) and each frame gets the
mean over its interval via the same :func:`~wildaffect.io.align.frame_audio_ranges` /
:func:`~wildaffect.io.align.pool_to_frames` as the audio features, shifted by the record's
``audio_start_s``.

The TorchScript model is loaded from the installed ``silero_vad`` package's data folder with
``torch.jit.load``: importing ``silero_vad`` itself would call ``torch.set_num_threads(1)`` for
the whole process (and its audio reader needs torchaudio, which we do not install). The tiny
LSTM runs far faster on one thread, so :func:`speech_probability` switches to one thread for
its own call only.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wildaffect.errors import WildaffectError
from wildaffect.io.media import AUDIO_SAMPLE_RATE

#: Samples per silero-vad chunk at 16 kHz, and the hop between chunk probabilities (s).
VAD_CHUNK = 512
VAD_HOP_S = VAD_CHUNK / AUDIO_SAMPLE_RATE
VAD_MODEL_FILE = "silero_vad.jit"


def silero_model_path() -> Path:
    """The TorchScript file shipped in the ``silero-vad`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise WildaffectError(
            "--vad needs the silero-vad package (pip install silero-vad), or pass --no-vad"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / VAD_MODEL_FILE
    if not path.is_file():
        raise WildaffectError(f"{path}: silero-vad model file missing; reinstall silero-vad")
    return path


def load_vad() -> Any:
    """The silero-vad TorchScript module, on the CPU, in eval mode."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript, the model's format
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(silero_model_path()), map_location="cpu")
    return model.eval()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def speech_probability(model: Any, samples: np.ndarray) -> np.ndarray:
    """samples: (N,) float32 16 kHz -> (ceil(N / 512),) float32 speech probability per chunk.

    The last chunk is zero-padded by the model; N = 0 gives an empty array.
    """
    import torch

    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if len(samples) == 0:
        return np.zeros(0, np.float32)
    if len(samples) < VAD_CHUNK:  # the model refuses less than one chunk; it pads the last one
        samples = np.pad(samples, (0, VAD_CHUNK - len(samples)))
    with _one_thread(), torch.inference_mode():
        model.reset_states()
        probs = model.audio_forward(torch.tensor(samples)[None], AUDIO_SAMPLE_RATE)  # (1, Nc)
    return probs[0].float().numpy()


def speech_probability_step(model: Any, samples: np.ndarray) -> np.ndarray:
    """Continue a stream: samples (k * 512,) float32 16 kHz -> (k,) float32 probabilities, the
    model's state carried from the previous call (``model.reset_states()`` starts a stream).

    Chunk by chunk exactly as :func:`speech_probability` runs them (its ``audio_forward`` loops
    over the same 512-sample chunks), so a file scored in pieces gets the same probabilities;
    zero-pad the file's last chunk as it does.
    """
    import torch

    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if len(samples) % VAD_CHUNK:
        raise ValueError(f"{len(samples)} samples are not whole {VAD_CHUNK}-sample chunks")
    chunks = torch.from_numpy(samples).reshape(-1, 1, VAD_CHUNK)  # (k, 1, 512)
    with _one_thread(), torch.inference_mode():
        probs = [float(model(chunk, AUDIO_SAMPLE_RATE)) for chunk in chunks]
    return np.asarray(probs, np.float32)


def vad_on_frames(
    probs: np.ndarray, frame_times: np.ndarray, audio_start_s: float = 0.0
) -> np.ndarray:
    """(Nc,) chunk probabilities -> (T,) float32: the mean over each frame's interval.

    Frames before the audio starts or after it ends take the first / last chunk's value (the
    rule of :func:`~wildaffect.io.align.frame_audio_ranges`); no chunk at all gives zeros.
    """
    from wildaffect.io.align import frame_audio_ranges, pool_to_frames

    if len(probs) == 0:
        return np.zeros(len(frame_times), np.float32)
    ranges = frame_audio_ranges(frame_times, len(probs), VAD_HOP_S, audio_start_s=audio_start_s)
    pooled = pool_to_frames(np.asarray(probs, np.float32)[:, None], ranges)  # (T, 1)
    return pooled[:, 0].astype(np.float32)


__all__ = ["VAD_CHUNK", "VAD_HOP_S", "load_vad", "speech_probability", "speech_probability_step",
           "vad_on_frames"]
