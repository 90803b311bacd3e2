"""Audio foundation encoders (transformers): 16 kHz waveform -> features at 20 ms (50 Hz).

- WavLM base / base-plus / large (the paper's audio branch, seed 002 §3.1/§4.1): a learnable
  softmax-weighted sum of ALL hidden states (CNN output + every layer: 13 for base, 25 for
  large), then a light residual bottleneck adapter (LayerNorm -> Linear down -> GELU ->
  Linear up, zero-initialised so it starts as the identity), optionally projected to ``d_out``.
  Frame t covers samples [320 t, 320 t + 400): floor((N - 400) / 320) + 1 frames.
  Layerdrop and SpecAugment are switched off in the config, so extraction is deterministic.
- Whisper encoder (the paper's Table 1 baseline): log-mel from ``WhisperFeatureExtractor``.
  Whisper always sees 30 s (it pads the mel to 3000 frames, the encoder refuses anything
  else), so audio is cut into 30 s windows, each encoded to 1500 frames at 50 Hz (stride-2
  conv) and truncated to its true length ceil(n / 320) before concatenation. Frame j is
  centred on sample 320 j (WavLM's frame t is centred on 320 t + 200: 12.5 ms later).

- Patch encoders (:class:`PatchSequenceEncoder`: AST in :mod:`.spectrogram_transformer`,
  VGGish in :mod:`.vggish`) emit one vector per fixed span of spectrogram frames; those vectors
  are linearly interpolated in time onto the 20 ms grid (:func:`interpolate_to_frames`), so
  they give exactly ``wavlm_num_frames(N)`` frames, frame k centred on sample 320 k + 200.

All return :class:`AudioOutput`; padded positions (beyond ``lengths``) are zero.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wildaffect.encoders.registry import register_encoder
from wildaffect.encoders.weights import load_backbone, resolve_weights
from wildaffect.errors import WildaffectError
from wildaffect.io.align import WAVLM_HOP, WAVLM_RECEPTIVE_FIELD, wavlm_num_frames
from wildaffect.io.media import AUDIO_SAMPLE_RATE as SAMPLE_RATE

FRAME_HOP = WAVLM_HOP  # samples per 20 ms output frame, WavLM and Whisper alike
#: Output frame k covers samples [320 k, 320 k + 400): its centre is 320 k + 200.
FRAME_CENTRE = WAVLM_RECEPTIVE_FIELD / 2
WHISPER_WINDOW = 30 * SAMPLE_RATE  # Whisper's fixed 30 s input
PREPROCESSOR_FILE = "preprocessor_config.json"

WAVLM_EXTRACTION = {"layerdrop": 0.0, "apply_spec_augment": False, "mask_time_prob": 0.0}
WAVLM_BASE: dict[str, Any] = {}  # transformers' WavLMConfig defaults are wavlm-base
WAVLM_LARGE = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
    "conv_bias": True,
}
TINY_WAVLM = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (32,) * 7,  # kernels and strides kept: the real 20 ms frame rate
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
WHISPER_SIZES = {
    "base": {
        "d_model": 512,
        "encoder_layers": 6,
        "encoder_attention_heads": 8,
        "encoder_ffn_dim": 2048,
    },
    "small": {
        "d_model": 768,
        "encoder_layers": 12,
        "encoder_attention_heads": 12,
        "encoder_ffn_dim": 3072,
    },
}
TINY_WHISPER = {
    "d_model": 32,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
}


@dataclass
class AudioOutput:
    """``features``: (B, Na, D) at 50 Hz, zero beyond ``lengths``; ``lengths``: (B,) int64."""

    features: torch.Tensor
    lengths: torch.Tensor


def wavlm_frames(lengths: torch.Tensor) -> torch.Tensor:
    """:func:`wildaffect.io.align.wavlm_num_frames` for a (B,) tensor of sample counts."""
    return torch.tensor(
        [wavlm_num_frames(int(n)) for n in lengths], dtype=torch.long, device=lengths.device
    )


def whisper_num_frames(num_samples: int) -> int:
    """Whisper encoder frames whose centre (sample 320 j) lies inside N samples: ceil(N / 320)."""
    return math.ceil(num_samples / FRAME_HOP)


def interpolate_to_frames(
    features: torch.Tensor, first_centre: float, step: float, num_frames: int
) -> torch.Tensor:
    """(G, D) vectors centred on samples ``first_centre + step * g`` -> (num_frames, D) at 20 ms.

    Output frame k (centre ``320 k + 200``) is the linear interpolation of the two vectors whose
    centres enclose it, held at the first / last vector outside their span. Differentiable.
    """
    count = features.shape[0]
    centres = torch.arange(num_frames, dtype=torch.float64) * FRAME_HOP + FRAME_CENTRE
    position = ((centres - first_centre) / step).clamp(0, count - 1)  # (num_frames,)
    lo = position.floor().long()
    hi = (lo + 1).clamp(max=count - 1)
    w = (position - lo).to(features.device, features.dtype)[:, None]  # (num_frames, 1)
    lo, hi = lo.to(features.device), hi.to(features.device)
    return features[lo] * (1 - w) + features[hi] * w  # (num_frames, D)


def _lengths_or_full(waveform: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    if waveform.ndim != 2:
        raise WildaffectError(
            f"waveform must be (B, N) mono 16 kHz; got shape {tuple(waveform.shape)}"
        )
    batch, num = waveform.shape
    if lengths is None:
        return torch.full((batch,), num, dtype=torch.long, device=waveform.device)
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=waveform.device)
    if lengths.shape != (batch,) or bool((lengths > num).any()) or bool((lengths < 1).any()):
        raise WildaffectError(f"lengths must be (B,) in [1, {num}]; got {lengths.tolist()}")
    return lengths


def zero_mean_unit_var(waveform: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-utterance normalisation over the valid samples, as Wav2Vec2FeatureExtractor does."""
    # waveform, mask: (B, N)
    m = mask.to(waveform.dtype)
    count = m.sum(1, keepdim=True).clamp(min=1)
    mean = (waveform * m).sum(1, keepdim=True) / count
    var = (((waveform - mean) * m) ** 2).sum(1, keepdim=True) / count
    return (waveform - mean) / torch.sqrt(var + 1e-7) * m


def _forward_in_fp32(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """``type(self).forward`` with autocast off and float32 inputs (bound per instance)."""
    args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
    device = next(self.parameters()).device.type
    with torch.autocast(device_type=device, enabled=False):
        return type(self).forward(self, *args, **kwargs)


def keep_in_fp32(module: nn.Module) -> None:
    """Run ``module`` in float32 even inside ``torch.autocast``.

    Bound as an instance method (not a closure) so ``copy.deepcopy`` (SWA, EMA) rebinds it to
    the copy; the state dict is untouched, so ``save_pretrained`` / loading are unaffected.
    """
    module.forward = types.MethodType(_forward_in_fp32, module)


class BottleneckAdapter(nn.Module):
    """x + Up(GELU(Down(LayerNorm(x)))), Up zero-initialised: starts as the identity map."""

    def __init__(self, dim: int, bottleneck: int, d_out: int | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.proj = nn.Linear(dim, d_out) if d_out is not None and d_out != dim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D) -> (B, T, d_out or D)
        return self.proj(x + self.up(self.act(self.down(self.norm(x)))))


class AudioEncoder(nn.Module):
    """Common plumbing: frozen-backbone eval mode, save_pretrained, output size."""

    backbone: nn.Module
    out_dim: int

    def __init__(self, backbone: nn.Module, freeze: bool):
        super().__init__()
        self.backbone = backbone
        if freeze:
            backbone.requires_grad_(False)

    @property
    def config(self) -> Any:
        return self.backbone.config

    def train(self, mode: bool = True) -> AudioEncoder:
        """A fully frozen backbone stays in eval mode (no dropout while extracting)."""
        super().train(mode)
        if not any(p.requires_grad for p in self.backbone.parameters()):
            self.backbone.eval()
        return self

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the backbone as a transformers folder that ``weights=folder`` loads back.

        Our own layer weights / adapter are trained with the downstream model and live in its
        checkpoint, not here.
        """
        self.backbone.save_pretrained(folder)


class PatchSequenceEncoder(AudioEncoder):
    """An encoder with one vector per fixed span of audio, resampled onto the 20 ms grid.

    Subclasses implement :meth:`encode_patches` for ONE item's valid samples and set
    ``first_centre`` / ``step`` (samples): vector g is centred on ``first_centre + step * g``.
    Items shorter than one 25 ms frame give no frames (as ``wavlm_num_frames``).
    """

    first_centre: float
    step: float

    def encode_patches(self, samples: torch.Tensor) -> torch.Tensor:
        """(n,) float32 16 kHz samples -> (G, D) patch vectors, G >= 1."""
        raise NotImplementedError

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> AudioOutput:
        # waveform: (B, N) float32 in [-1, 1] at 16 kHz
        lengths = _lengths_or_full(waveform, lengths)
        out_lengths = wavlm_frames(lengths)
        per_item = []
        for b, (n, frames) in enumerate(zip(lengths.tolist(), out_lengths.tolist(), strict=True)):
            if frames == 0:
                per_item.append(waveform.new_zeros((0, self.out_dim)))
                continue
            patches = self.encode_patches(waveform[b, :n])  # (G, D)
            per_item.append(interpolate_to_frames(patches, self.first_centre, self.step, frames))
        features = nn.utils.rnn.pad_sequence(per_item, batch_first=True)  # (B, Na, D), zero-padded
        return AudioOutput(features, out_lengths)


class WavLMEncoder(AudioEncoder):
    """WavLM with a learnable weighted sum of all hidden states and a light adapter."""

    def __init__(
        self,
        backbone: nn.Module,
        *,
        freeze: bool = True,
        adapter_dim: int | None = None,
        d_out: int | None = None,
        normalize_input: bool | None = None,
        use_attention_mask: bool | None = None,
        cnn_fp32: bool = True,
    ):
        super().__init__(backbone, freeze)
        if cnn_fp32:
            # Under bf16 autocast the raw-waveform CNN alone costs ~1.2 % relative error (tiny
            # random model; the transformer layers add ~0.4 %); in fp32 it is ~15 % (Large) to
            # ~35 % (Base) of WavLM's multiply-adds (estimated), so precision wins.
            keep_in_fp32(backbone.feature_extractor)
        config = backbone.config
        # The checkpoints' own preprocessing: large (layer-norm CNN) normalises each utterance
        # and takes an attention mask; base (group-norm CNN) takes neither (zero padding only).
        layer_norm_cnn = config.feat_extract_norm == "layer"
        self.normalize_input = layer_norm_cnn if normalize_input is None else normalize_input
        self.use_attention_mask = (
            layer_norm_cnn if use_attention_mask is None else use_attention_mask
        )
        hidden = int(config.hidden_size)
        self.layer_logits = nn.Parameter(torch.zeros(config.num_hidden_layers + 1))
        self.adapter = BottleneckAdapter(hidden, adapter_dim or max(hidden // 4, 8), d_out)
        self.out_dim = d_out or hidden
        self.train(False)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> AudioOutput:
        # waveform: (B, N) float32 in [-1, 1] at 16 kHz
        lengths = _lengths_or_full(waveform, lengths)
        if int(lengths.min()) < WAVLM_RECEPTIVE_FIELD:
            raise WildaffectError(
                f"audio too short for WavLM: {int(lengths.min())} samples"
                f" < {WAVLM_RECEPTIVE_FIELD} (25 ms)"
            )
        sample_mask = torch.arange(waveform.shape[1], device=waveform.device) < lengths[:, None]
        x = (
            zero_mean_unit_var(waveform, sample_mask)
            if self.normalize_input
            else waveform * sample_mask
        )
        out = self.backbone(
            x,
            attention_mask=sample_mask.long() if self.use_attention_mask else None,
            output_hidden_states=True,
        )
        hidden = out.hidden_states  # L+1 tensors (B, T, D); summed in place of a (L+1)x copy
        weights = torch.softmax(self.layer_logits, dim=0)
        mixed = sum(w.to(h.dtype) * h for w, h in zip(weights, hidden, strict=True))  # (B, T, D)
        features = self.adapter(mixed)  # (B, T, d_out)
        out_lengths = wavlm_frames(lengths)
        frame_mask = torch.arange(features.shape[1], device=features.device) < out_lengths[:, None]
        return AudioOutput(features * frame_mask[..., None].to(features.dtype), out_lengths)


class WhisperEncoderWrapper(AudioEncoder):
    """Whisper's encoder over 30 s windows, truncated to the true audio length."""

    def __init__(self, backbone: nn.Module, feature_extractor: Any, *, freeze: bool = True):
        super().__init__(backbone, freeze)
        self.feature_extractor = feature_extractor
        self.out_dim = int(backbone.config.d_model)
        self.train(False)

    def save_pretrained(self, folder: str | Path) -> None:
        super().save_pretrained(folder)
        self.feature_extractor.save_pretrained(folder)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> AudioOutput:
        # waveform: (B, N) float32 in [-1, 1] at 16 kHz
        lengths = _lengths_or_full(waveform, lengths)
        audio = waveform.detach().float().cpu().numpy()
        windows, owners = [], []  # every 30 s piece of every item, and whose it is
        for b, n in enumerate(lengths.tolist()):
            for start in range(0, n, WHISPER_WINDOW):
                windows.append(audio[b, start : min(start + WHISPER_WINDOW, n)])
                owners.append(b)
        # The feature extractor's STFT ends in numpy, which has no bfloat16: keep it in fp32.
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            mel = self.feature_extractor(
                windows, sampling_rate=SAMPLE_RATE, return_tensors="pt"
            ).input_features  # (W, n_mels, 3000)
        param = next(self.backbone.parameters())
        encoded = self.backbone(mel.to(param.device, param.dtype)).last_hidden_state  # (W, 1500, D)
        pieces: list[list[torch.Tensor]] = [[] for _ in range(waveform.shape[0])]
        for w, b in enumerate(owners):
            pieces[b].append(encoded[w, : whisper_num_frames(len(windows[w]))])
        per_item = [torch.cat(p, dim=0) for p in pieces]
        out_lengths = torch.tensor(
            [len(p) for p in per_item], dtype=torch.long, device=waveform.device
        )
        features = nn.utils.rnn.pad_sequence(per_item, batch_first=True)  # (B, Na, D), zero-padded
        return AudioOutput(features, out_lengths)


def _wavlm_builder(name: str, hub_id: str, real: dict[str, Any]) -> Callable[..., WavLMEncoder]:
    def build(
        pretrained: bool = True,
        weights: str | Path | None = None,
        tiny: bool = False,
        config_overrides: dict[str, Any] | None = None,
        freeze: bool = True,
        adapter_dim: int | None = None,
        d_out: int | None = None,
        cnn_fp32: bool = True,
    ) -> WavLMEncoder:
        from transformers import WavLMConfig, WavLMModel

        backbone = load_backbone(
            WavLMModel,
            WavLMConfig,
            real=real,
            tiny_overrides=TINY_WAVLM,
            hub_id=hub_id,
            encoder_name=name,
            pretrained=pretrained,
            weights=weights,
            tiny=tiny,
            config_overrides={**WAVLM_EXTRACTION, **(config_overrides or {})},
        )
        conventions = _wavlm_conventions(weights, hub_id) if (weights or pretrained) else {}
        return WavLMEncoder(
            backbone,
            freeze=freeze,
            adapter_dim=adapter_dim,
            d_out=d_out,
            cnn_fp32=cnn_fp32,
            **conventions,
        )

    build.__name__ = build.__qualname__ = f"build_{name.replace('-', '_')}"
    build.__doc__ = f"Build the {name} audio encoder ({hub_id})."
    return build


def _wavlm_conventions(weights: str | Path | None, hub_id: str) -> dict[str, bool]:
    """do_normalize / return_attention_mask from the checkpoint's preprocessor config, if any."""
    folder = resolve_weights(weights, hub_id)
    path = folder / PREPROCESSOR_FILE
    if not path.is_file():
        return {}
    cfg = json.loads(path.read_text())
    found = {}
    if "do_normalize" in cfg:
        found["normalize_input"] = bool(cfg["do_normalize"])
    if "return_attention_mask" in cfg:
        found["use_attention_mask"] = bool(cfg["return_attention_mask"])
    return found


def _whisper_builder(
    name: str, hub_id: str, real: dict[str, Any]
) -> Callable[..., WhisperEncoderWrapper]:
    def build(
        pretrained: bool = True,
        weights: str | Path | None = None,
        tiny: bool = False,
        config_overrides: dict[str, Any] | None = None,
        freeze: bool = True,
    ) -> WhisperEncoderWrapper:
        from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        overrides = dict(config_overrides or {})
        if weights is not None or pretrained:
            folder = resolve_weights(weights, hub_id, encoder_name=name)
            architectures = (
                json.loads((folder / "config.json").read_text()).get("architectures") or []
            )
            if "WhisperEncoder" in architectures:  # saved by our own save_pretrained
                encoder = WhisperEncoder.from_pretrained(folder, dtype=torch.float32, **overrides)
            else:  # a hub checkpoint holds the whole encoder-decoder: keep the encoder
                encoder = WhisperModel.from_pretrained(
                    folder, dtype=torch.float32, **overrides
                ).get_encoder()
            if (folder / PREPROCESSOR_FILE).is_file():
                extractor = WhisperFeatureExtractor.from_pretrained(folder)
            else:
                extractor = WhisperFeatureExtractor(feature_size=encoder.config.num_mel_bins)
        else:
            config = WhisperConfig(**{**real, **(TINY_WHISPER if tiny else {}), **overrides})
            encoder = WhisperEncoder(config)
            extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        return WhisperEncoderWrapper(encoder, extractor, freeze=freeze)

    build.__name__ = build.__qualname__ = f"build_{name.replace('-', '_')}"
    build.__doc__ = f"Build the {name} audio encoder ({hub_id})."
    return build


def _register(name: str, hub_id: str, description: str, build: Callable[..., Any]) -> None:
    build.__module__ = __name__
    register_encoder(name, "audio", hub_id=hub_id, description=description)(build)


_register(
    "wavlm-base",
    "microsoft/wavlm-base",
    "WavLM Base: weighted sum of 13 hidden states + adapter, 768-d at 50 Hz",
    _wavlm_builder("wavlm-base", "microsoft/wavlm-base", WAVLM_BASE),
)
_register(
    "wavlm-base-plus",
    "microsoft/wavlm-base-plus",
    "WavLM Base+: weighted sum of 13 hidden states + adapter, 768-d at 50 Hz",
    _wavlm_builder("wavlm-base-plus", "microsoft/wavlm-base-plus", WAVLM_BASE),
)
_register(
    "wavlm-large",
    "microsoft/wavlm-large",
    "WavLM Large (the paper's audio encoder): weighted sum of 25 hidden states + adapter, 1024-d",
    _wavlm_builder("wavlm-large", "microsoft/wavlm-large", WAVLM_LARGE),
)
for _size, _dims in WHISPER_SIZES.items():
    _register(
        f"whisper-{_size}",
        f"openai/whisper-{_size}",
        f"Whisper {_size} encoder (Table 1 baseline): log-mel, 30 s windows, 50 Hz",
        _whisper_builder(f"whisper-{_size}", f"openai/whisper-{_size}", _dims),
    )
