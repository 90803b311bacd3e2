"""Audio Spectrogram Transformer (seed 003 ¶1's audio encoder): per-frame features at 20 ms.

AST (``MIT/ast-finetuned-audioset-10-10-0.4593``) reads 128-bin Kaldi fbanks (25 ms window,
10 ms hop: fbank frame i covers samples [160 i, 160 i + 400)) over 10.24 s windows of
``max_length`` = 1024 frames, cut into 16x16 patches with stride 10 in both frequency and time:
12 frequency rows x 101 time columns, plus a CLS and a distillation token (dropped).

Alignment onto the 50 Hz grid the other audio encoders use:

- each time column t is the mean of its 12 frequency patches; it spans fbank frames
  [10 t, 10 t + 16), so it is centred on sample 160 (10 t + 7.5) + 200 = 1600 t + 1400;
- the columns are linearly interpolated to the 20 ms frame centres 320 k + 200
  (:func:`~wildaffect.encoders.audio.interpolate_to_frames`), giving ``wavlm_num_frames(N)``
  frames, the same count as WavLM for the same audio;
- long audio: windows start every 101 columns (161,600 samples = 10.1 s) and each keeps its 101
  columns, so window w holds exactly the global columns 101 w .. 101 w + 100: no gap, no overlap
  (context is cut at window seams, as for Whisper's 30 s windows);
- short audio (and the last window) is padded to 1024 frames by the feature extractor, as in
  AST's training; only columns whose centre lies on real audio are kept (at least one).

Builders take ``pretrained`` / ``weights`` / ``tiny`` / ``config_overrides`` / ``freeze`` like
the other transformers encoders; the tiny config keeps the real patch, strides, mel bins and
window, so tiny outputs have the real time grid.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wildaffect.encoders.audio import PREPROCESSOR_FILE, SAMPLE_RATE, PatchSequenceEncoder
from wildaffect.encoders.registry import register_encoder
from wildaffect.encoders.weights import load_backbone, resolve_weights
from wildaffect.io.align import WAVLM_RECEPTIVE_FIELD

AST_HUB_ID = "MIT/ast-finetuned-audioset-10-10-0.4593"
FBANK_HOP = 160  # samples between fbank frames (10 ms)
FBANK_WINDOW = WAVLM_RECEPTIVE_FIELD  # 400 samples (25 ms) per fbank frame
PREFIX_TOKENS = 2  # CLS + distillation token before the patches
#: Windows per backbone call: bounds memory on long audio (a base window is 1214 tokens).
WINDOW_BATCH = 4

AST_BASE: dict[str, Any] = {}  # transformers' ASTConfig defaults are the AudioSet checkpoint
TINY_AST = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def fbank_frames(num_samples: int) -> int:
    """Kaldi fbank frames (no edge padding) in ``num_samples``: floor((n - 400) / 160) + 1."""
    if num_samples < FBANK_WINDOW:
        return 0
    return (num_samples - FBANK_WINDOW) // FBANK_HOP + 1


class ASTEncoder(PatchSequenceEncoder):
    """AST patch tokens, frequency-averaged per time column, on the 20 ms grid."""

    def __init__(self, backbone: nn.Module, feature_extractor: Any, *, freeze: bool = True):
        super().__init__(backbone, freeze)
        self.feature_extractor = feature_extractor
        config = backbone.config
        self.out_dim = int(config.hidden_size)
        self.patch = int(config.patch_size)
        self.time_stride = int(config.time_stride)
        self.freq_rows, self.columns = backbone.embeddings.get_shape(config)
        self.max_frames = int(config.max_length)
        # Column t spans fbank frames [stride t, stride t + patch): its centre, in samples.
        self.first_centre = FBANK_HOP * (self.patch - 1) / 2 + FBANK_WINDOW / 2
        self.step = float(FBANK_HOP * self.time_stride)
        self.window_samples = FBANK_HOP * (self.max_frames - 1) + FBANK_WINDOW
        self.window_step = FBANK_HOP * self.time_stride * self.columns
        self.train(False)

    def save_pretrained(self, folder: str | Path) -> None:
        super().save_pretrained(folder)
        self.feature_extractor.save_pretrained(folder)

    def _kept_columns(self, num_samples: int) -> int:
        """Columns of one window whose centre frame (stride t + (patch-1)/2) is real audio."""
        centre_frame = (self.patch - 1) / 2
        kept = math.ceil((fbank_frames(num_samples) - centre_frame) / self.time_stride)
        return max(0, min(self.columns, kept))

    def encode_patches(self, samples: torch.Tensor) -> torch.Tensor:
        # samples: (n,) float32 at 16 kHz -> (G, D) column vectors
        audio = samples.detach().float().cpu().numpy()
        windows, kept = [], []
        for start in range(0, len(audio), self.window_step):
            piece = audio[start : start + self.window_samples]
            count = self._kept_columns(len(piece))
            if count == 0 and windows:  # a tail too short to centre a column on
                break
            windows.append(piece)
            kept.append(max(count, 1))
        # The extractor's fbank ends in numpy, which has no bfloat16: keep it in fp32.
        with torch.autocast(device_type=samples.device.type, enabled=False):
            fbank = self.feature_extractor(
                windows, sampling_rate=SAMPLE_RATE, return_tensors="pt"
            ).input_values  # (W, max_length, mel)
        param = next(self.backbone.parameters())
        fbank = fbank.to(param.device, param.dtype)
        columns = []
        for first in range(0, len(windows), WINDOW_BATCH):
            tokens = self.backbone(fbank[first : first + WINDOW_BATCH]).last_hidden_state
            patches = tokens[:, PREFIX_TOKENS:]  # (w, rows * columns, D), frequency-major
            grid = patches.reshape(len(patches), self.freq_rows, self.columns, -1)
            columns.extend(grid.mean(dim=1))  # w tensors (columns, D)
        return torch.cat([c[:k] for c, k in zip(columns, kept, strict=True)])  # (G, D)


def _ast_builder(name: str, hub_id: str, real: dict[str, Any]) -> Callable[..., ASTEncoder]:
    def build(
        pretrained: bool = True,
        weights: str | Path | None = None,
        tiny: bool = False,
        config_overrides: dict[str, Any] | None = None,
        freeze: bool = True,
    ) -> ASTEncoder:
        from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

        backbone = load_backbone(
            ASTModel,
            ASTConfig,
            real=real,
            tiny_overrides=TINY_AST,
            hub_id=hub_id,
            encoder_name=name,
            pretrained=pretrained,
            weights=weights,
            tiny=tiny,
            config_overrides=config_overrides,
        )
        config = backbone.config
        folder = None
        if weights is not None or pretrained:
            folder = resolve_weights(weights, hub_id, encoder_name=name)
        with warnings.catch_warnings():
            # Without torchaudio the extractor builds Kaldi's 128 mel filters in numpy and warns
            # that the lowest are empty at 512-point FFT resolution: true of AST's own fbank too.
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero")
            if folder is not None and (folder / PREPROCESSOR_FILE).is_file():
                extractor = ASTFeatureExtractor.from_pretrained(folder)
            else:  # the checkpoint's defaults (AudioSet mean / std) and this config's geometry
                extractor = ASTFeatureExtractor(
                    num_mel_bins=config.num_mel_bins, max_length=config.max_length
                )
        return ASTEncoder(backbone, extractor, freeze=freeze)

    build.__name__ = build.__qualname__ = f"build_{name.replace('-', '_')}"
    build.__doc__ = f"Build the {name} audio encoder ({hub_id})."
    build.__module__ = __name__
    return build


register_encoder(
    "ast-audioset",
    "audio",
    hub_id=AST_HUB_ID,
    description="Audio Spectrogram Transformer (AudioSet, seed 003 ¶1): 768-d columns at 50 Hz",
)(_ast_builder("ast-audioset", AST_HUB_ID, AST_BASE))
