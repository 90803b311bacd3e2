"""VGGish (seed 003 ¶4's "VGGish" audio features): 128-d per 0.96 s, resampled to 20 ms.

VGGish is not in transformers, and neither PyPI port is usable here: ``torchvggish`` imports
resampy and soundfile at import and fetches its weights from a URL whenever a model is built;
``torch-vggish-yamnet`` needs torchaudio (tied to one torch release) and also fetches at build.
So the architecture is written out below, with the module names of the published PyTorch port
(``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``) so its state dict
``vggish-10086976.pth`` loads by key name. As in Google's reference (``vggish_slim.py``) the
128-d embedding is the PRE-activation of the last layer (torchvggish adds a ReLU there); the
PCA / 8-bit quantisation post-processing of the AudioSet release is not applied.

Front-end (Google's ``mel_features.py``): 25 ms frames every 10 ms (frame i covers samples
[160 i, 160 i + 400)), periodic Hann, 512-point |FFT|, 64 HTK-mel bands 125-7500 Hz (DC bin
excluded), log(mel + 0.01); patches of 96 frames (0.96 s) with no overlap.

Alignment: patch p spans frames [96 p, 96 p + 96), centred on sample 160 (96 p + 47.5) + 200 =
15360 p + 7800; the patch embeddings are linearly interpolated onto the 20 ms frame centres
320 k + 200 (``wavlm_num_frames(N)`` frames). The last, partial patch is kept when its centre
lies on real audio, padded with the log-mel of silence (log 0.01), as is audio under 0.96 s.

Weights: ``weights=`` a ``.pth`` state dict (the published file) or a folder this module
saved; else ``vggish-10086976.pth`` in the torch hub cache (where torchvggish puts it); else,
unless ``HF_HUB_OFFLINE`` is set, it is downloaded there from the published URL (hash-checked).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wildaffect.encoders.audio import PatchSequenceEncoder
from wildaffect.encoders.registry import register_encoder
from wildaffect.encoders.weights import CONFIG_FILE, hub_offline
from wildaffect.errors import InputError, WildaffectError
from wildaffect.io.atomic import atomic_path, atomic_write_text
from wildaffect.io.media import AUDIO_SAMPLE_RATE as SAMPLE_RATE

VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
VGGISH_FILE = VGGISH_URL.rsplit("/", 1)[-1]
VGGISH_HASH_PREFIX = "10086976"  # leading sha256 hex digits, torch hub's file-name convention
WEIGHTS_FILE = "model.safetensors"

STFT_WINDOW = 400  # 25 ms at 16 kHz
STFT_HOP = 160  # 10 ms
FFT_SIZE = 512
MEL_BANDS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96  # 0.96 s of 10 ms frames
#: Patches per forward: bounds memory on long audio (the real first FC is 12288 x 4096).
PATCH_BATCH = 64


@dataclass
class VGGishConfig:
    """Architecture: conv widths ("M" = 2x2 max-pool), FC width, embedding size."""

    channels: list[int | str] = field(
        default_factory=lambda: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]
    )
    fc_dim: int = 4096
    embedding_size: int = 128
    model_type: str = "vggish"


TINY_VGGISH = {"channels": [4, "M", 8, "M", 8, 8, "M", 16, 16, "M"], "fc_dim": 32}


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """(257, 64) triangular HTK-mel weights over the 512-point FFT bins; the DC row is zero."""
    bins_mel = hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT_SIZE // 2 + 1))  # (257,)
    edges = np.linspace(hertz_to_mel(MEL_LOW_HZ), hertz_to_mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (64,) each
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


class LogMel(nn.Module):
    """16 kHz samples (n,) -> (frames, 64) VGGish log-mel; frames = floor((n - 400) / 160) + 1."""

    def __init__(self):
        super().__init__()
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(STFT_WINDOW) / STFT_WINDOW)  # periodic
        self.register_buffer("window", torch.tensor(window, dtype=torch.float32), persistent=False)
        self.register_buffer(
            "mel", torch.tensor(mel_matrix(), dtype=torch.float32), persistent=False
        )

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        frames = samples.float().unfold(0, STFT_WINDOW, STFT_HOP) * self.window  # (F, 400)
        magnitude = torch.fft.rfft(frames, n=FFT_SIZE).abs()  # (F, 257)
        return torch.log(magnitude @ self.mel + LOG_OFFSET)  # (F, 64)


class VGGish(nn.Module):
    """The VGG-style network: (P, 1, 96, 64) log-mel patches -> (P, 128) embeddings."""

    def __init__(self, config: VGGishConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = 1
        for width in config.channels:
            if width == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(width), 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = int(width)
        self.features = nn.Sequential(*layers)
        pools = sum(w == "M" for w in config.channels)
        flat = in_channels * (PATCH_FRAMES >> pools) * (MEL_BANDS >> pools)
        self.embeddings = nn.Sequential(
            nn.Linear(flat, config.fc_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.fc_dim, config.fc_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.fc_dim, config.embedding_size),  # no ReLU: vggish_slim's "fc2"
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.features(patches)  # (P, C, 6, 4)
        x = x.permute(0, 2, 3, 1).flatten(1)  # TF's (H, W, C) flattening order
        return self.embeddings(x)  # (P, 128)

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors, which ``weights=folder`` loads back."""
        from safetensors.torch import save_file

        folder = Path(folder)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        atomic_write_text(folder / CONFIG_FILE, json.dumps(asdict(self.config), indent=2))


class VGGishEncoder(PatchSequenceEncoder):
    """VGGish embeddings of consecutive 0.96 s patches, on the 20 ms grid."""

    first_centre = STFT_HOP * (PATCH_FRAMES - 1) / 2 + STFT_WINDOW / 2  # 7800 samples
    step = float(STFT_HOP * PATCH_FRAMES)  # 15360 samples

    def __init__(self, backbone: VGGish, *, freeze: bool = True):
        super().__init__(backbone, freeze)
        self.logmel = LogMel()
        self.out_dim = int(backbone.config.embedding_size)
        self.train(False)

    def encode_patches(self, samples: torch.Tensor) -> torch.Tensor:
        # samples: (n,) float32 at 16 kHz, n >= 400 -> (P, 128)
        with torch.autocast(device_type=samples.device.type, enabled=False):
            logmel = self.logmel(samples)  # (F, 64)
        count = max(1, math.ceil((len(logmel) - (PATCH_FRAMES - 1) / 2) / PATCH_FRAMES))
        pad = count * PATCH_FRAMES - len(logmel)
        if pad > 0:  # silence's log-mel: log(0 + LOG_OFFSET)
            logmel = torch.cat([logmel, logmel.new_full((pad, MEL_BANDS), math.log(LOG_OFFSET))])
        patches = logmel[: count * PATCH_FRAMES].reshape(count, 1, PATCH_FRAMES, MEL_BANDS)
        param = next(self.backbone.parameters())
        patches = patches.to(param.device, param.dtype)
        return torch.cat(
            [self.backbone(patches[i : i + PATCH_BATCH]) for i in range(0, count, PATCH_BATCH)]
        )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.is_dir():
        from safetensors.torch import load_file

        return load_file(str(path / WEIGHTS_FILE))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(path, f"not a PyTorch state dict ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise InputError(path, "not a PyTorch state dict")
    return state


def _config_of(path: Path) -> VGGishConfig:
    """A folder carries its config.json; a bare .pth is the published (real) architecture."""
    if not path.is_dir():
        return VGGishConfig()
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise InputError(path, f"not a VGGish folder: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    return VGGishConfig(**json.loads((path / CONFIG_FILE).read_text()))


def resolve_vggish_weights(weights: str | Path | None) -> Path:
    """A given file / folder, else the torch hub cache file, else download it (if allowed)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise InputError(path, "VGGish weights not found (a .pth state dict or a folder)")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGGISH_FILE
    if cached.is_file():
        return cached
    how = f"download {VGGISH_URL} into {cached.parent} or pass weights=<file>"
    if hub_offline():
        raise WildaffectError(
            f"VGGish weights not found at {cached} and HF_HUB_OFFLINE is set; {how}"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(VGGISH_URL, str(cached), hash_prefix=VGGISH_HASH_PREFIX)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WildaffectError(f"VGGish weights download failed ({reason}); {how}") from None
    return cached


def build_vggish(
    pretrained: bool = True,
    weights: str | Path | None = None,
    tiny: bool = False,
    config_overrides: dict[str, Any] | None = None,
    freeze: bool = True,
) -> VGGishEncoder:
    """Build the vggish audio encoder (published torchvggish weights, or random)."""
    overrides = dict(config_overrides or {})
    if weights is not None or pretrained:
        path = resolve_vggish_weights(weights)
        backbone = VGGish(VGGishConfig(**{**asdict(_config_of(path)), **overrides}))
        try:  # by key name: the published port's module names are ours
            backbone.load_state_dict(_read_state_dict(path))
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[0]
            raise InputError(path, f"not a VGGish state dict: {reason}") from None
    else:
        backbone = VGGish(VGGishConfig(**{**(TINY_VGGISH if tiny else {}), **overrides}))
    return VGGishEncoder(backbone, freeze=freeze)


register_encoder(
    "vggish",
    "audio",
    hub_id=None,
    description="VGGish (AudioSet, seed 003 ¶4): 128-d per 0.96 s log-mel patch, at 50 Hz",
    weights_url=VGGISH_URL,
)(build_vggish)
