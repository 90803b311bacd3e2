"""The seed-003 encoders: AST and VGGish on the 20 ms grid, ViT-MAE with masking off, ResNet.

Tiny configs with random weights (no network); real speech from EmoDB (``../shared/data``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wildaffect.encoders.audio import interpolate_to_frames
from wildaffect.encoders.lora import apply_lora, lora_parameters
from wildaffect.encoders.registry import create_encoder, get_spec
from wildaffect.encoders.vggish import (
    LOG_OFFSET,
    TINY_VGGISH,
    VGGISH_FILE,
    LogMel,
    hertz_to_mel,
    mel_matrix,
)
from wildaffect.errors import InputError, WildaffectError
from wildaffect.io.align import wavlm_num_frames
from wildaffect.io.media import read_audio

SR = 16_000
AST_COLUMN = 1600  # samples between AST time columns (10 fbank hops of 160)
AST_FIRST_CENTRE = 1400  # column 0 spans fbank frames 0..15: centre 160 * 7.5 + 200
AST_WINDOW_STEP = 101 * AST_COLUMN  # 101 columns per 10.24 s window


def _centres_s(num_frames: int) -> torch.Tensor:
    """Centre (s) of each 20 ms output frame: sample 320 k + 200."""
    return (torch.arange(num_frames) * 320 + 200) / SR


def _emodb(shared_data: Path, count: int) -> torch.Tensor:
    """The first ``count`` EmoDB utterances (2.0 s each) read at 16 kHz and joined: (N,)."""
    paths = sorted((shared_data / "speech-emotion" / "wav").glob("*.wav"))[:count]
    audio = np.concatenate([read_audio(p).samples for p in paths])
    assert len(audio) == count * 2 * SR and np.abs(audio).max() > 0.05  # real speech, not silence
    return torch.from_numpy(audio)


@pytest.fixture(scope="module")
def speech(shared_data: Path) -> torch.Tensor:
    return _emodb(shared_data, 1)


@pytest.fixture(scope="module")
def speech_12s(shared_data: Path) -> torch.Tensor:
    """12 s of real speech: two AST windows (10.1 s + the rest)."""
    return _emodb(shared_data, 6)


def _replace(wave: torch.Tensor, start_s: float, stop_s: float) -> torch.Tensor:
    """A copy with [start_s, stop_s) replaced by loud noise."""
    out = wave.clone()
    lo, hi = int(start_s * SR), int(stop_s * SR)
    out[lo:hi] = 0.3 * torch.randn(hi - lo, generator=torch.Generator().manual_seed(1))
    return out


def _change_per_frame(encoder: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        fa, fb = encoder(a[None]).features[0], encoder(b[None]).features[0]  # (Na, D)
    return (fa - fb).norm(dim=1)  # (Na,)


# ---------------------------------------------------------------------------------------------
# The 20 ms resampling shared by AST and VGGish.


def test_interpolation_onto_the_20ms_grid_by_hand() -> None:
    """Vectors 0 and 10 centred on samples 1400 and 3000: frame k (centre 320 k + 200) gets
    0 while k <= 3 (held), 10 (320 k - 1200) / 1600 in between, 10 from k = 9 on (held)."""
    features = torch.tensor([[0.0], [10.0]])
    out = interpolate_to_frames(features, first_centre=1400, step=1600, num_frames=11)
    expected = [0, 0, 0, 0, 0.5, 2.5, 4.5, 6.5, 8.5, 10, 10]
    torch.testing.assert_close(out[:, 0], torch.tensor(expected))


# ---------------------------------------------------------------------------------------------
# AST.


@pytest.fixture(scope="module")
def ast() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_encoder("ast-audioset", pretrained=False, tiny=True)


def test_ast_frame_count_on_a_real_wav_is_wavlms(ast, speech: torch.Tensor) -> None:
    for n in (len(speech), 12_345, 4000, 400):  # 2 s, 0.77 s, a quarter second, one 25 ms frame
        out = ast(speech[None, :n])
        assert out.lengths.item() == out.features.shape[1] == wavlm_num_frames(n)
        assert torch.isfinite(out.features).all()
    assert ast(speech[None, :399]).features.shape == (1, 0, ast.out_dim)  # no whole frame


def test_ast_columns_are_frequency_means_at_their_centres(ast, speech: torch.Tensor) -> None:
    """One window of 2 s: the columns (real audio only) are the frequency means of the patch
    tokens, and the output frames interpolate them at the documented centres."""
    n = len(speech)
    with torch.no_grad():
        fbank = ast.feature_extractor(
            [speech.numpy()], sampling_rate=SR, return_tensors="pt"
        ).input_values  # (1, 1024, 128)
        tokens = ast.backbone(fbank).last_hidden_state[0, 2:]  # (12 * 101, D)
        columns = tokens.reshape(12, 101, -1).mean(0)  # (101, D)
        frames = ast(speech[None]).features[0]
    fbank_frames = (n - 400) // 160 + 1
    kept = math.ceil((fbank_frames - 7.5) / 10)  # columns centred on real audio: 20 of 101
    assert kept == 20
    expected = interpolate_to_frames(columns[:kept], AST_FIRST_CENTRE, AST_COLUMN, len(frames))
    torch.testing.assert_close(frames, expected)


def test_ast_changes_stay_near_the_changed_region(ast, speech_12s: torch.Tensor) -> None:
    """Locality: noise in [11.0, 11.5) s (second window) leaves every frame interpolated only
    from first-window columns bit-identical; noise in [4.0, 4.5) s leaves the second window
    alone and, inside its own window, moves the frames of the region far more than the rest."""
    frames = wavlm_num_frames(len(speech_12s))
    assert frames == 599
    t = _centres_s(frames)
    last_first_window_centre = (AST_FIRST_CENTRE + 100 * AST_COLUMN) / SR  # 10.0875 s

    late = _change_per_frame(ast, speech_12s, _replace(speech_12s, 11.0, 11.5))
    assert (late[t <= last_first_window_centre] == 0).all()
    assert (late[(t > 11.0) & (t < 11.5)] > 0).all()

    early = _change_per_frame(ast, speech_12s, _replace(speech_12s, 4.0, 4.5))
    first_of_second_window = (AST_FIRST_CENTRE + AST_WINDOW_STEP) / SR  # 10.1875 s
    assert (early[t >= first_of_second_window] == 0).all()
    inside = early[(t > 4.0) & (t < 4.5)]
    far = early[(t < 2.5) | ((t > 6.0) & (t < 10.0))]  # same window, 1.5 s or more away
    assert inside.min() > 0
    assert inside.mean() > 10 * far.mean()  # attention mixes a little; the patch stays local


def test_ast_second_window_starts_on_the_next_column(ast, speech_12s: torch.Tensor) -> None:
    """Window 2 starts at sample 161,600 (= 505 output frames): every frame drawn from its
    columns only (centre >= 10.1875 s, k >= 509) equals the frame of that audio encoded alone."""
    with torch.no_grad():
        whole = ast(speech_12s[None]).features[0]  # (599, D)
        tail = ast(speech_12s[None, AST_WINDOW_STEP:]).features[0]  # (94, D)
    assert AST_WINDOW_STEP == 505 * 320 and len(tail) == len(whole) - 505
    torch.testing.assert_close(whole[509:], tail[4:])


def test_ast_pads_short_audio_and_keeps_its_length(ast, speech: torch.Tensor) -> None:
    """0.1 s: a single column (mostly padding) held over the 4 output frames."""
    out = ast(speech[None, :1600])
    assert out.lengths.item() == wavlm_num_frames(1600) == 4
    torch.testing.assert_close(out.features[0], out.features[0, :1].expand(4, -1))


def test_ast_batch_items_do_not_leak_into_each_other(ast, speech: torch.Tensor) -> None:
    other = _replace(speech, 0.0, 2.0)
    batch = torch.stack([speech, other])
    out = ast(batch, torch.tensor([len(speech), SR]))
    alone = ast(other[None, :SR])
    torch.testing.assert_close(out.features[1, : wavlm_num_frames(SR)], alone.features[0])
    assert (out.features[1, wavlm_num_frames(SR) :] == 0).all()


def test_ast_lora_and_full_fine_tuning_reach_the_backbone(speech: torch.Tensor) -> None:
    torch.manual_seed(0)
    frozen = create_encoder("ast-audioset", pretrained=False, tiny=True)
    frozen.train()
    assert not frozen.backbone.training and not any(p.requires_grad for p in frozen.parameters())

    lora = apply_lora(create_encoder("ast-audioset", pretrained=False, tiny=True), r=4, alpha=8)
    with torch.no_grad():
        for p in lora_parameters(lora):
            p.normal_(std=0.5)  # B = 0 at start would give A no gradient
    lora(speech[None, :SR]).features.sum().backward()
    assert lora_parameters(lora) and all(p.grad.abs().sum() > 0 for p in lora_parameters(lora))

    full = create_encoder("ast-audioset", pretrained=False, tiny=True, freeze=False)
    full(speech[None, :SR]).features.sum().backward()
    patch = full.backbone.embeddings.patch_embeddings.projection.weight
    assert patch.grad is not None and patch.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# VGGish.


@pytest.fixture(scope="module")
def vggish() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_encoder("vggish", pretrained=False, tiny=True)


def test_vggish_mel_filters_by_hand() -> None:
    assert hertz_to_mel(1000.0) == pytest.approx(1127 * math.log(1 + 1000 / 700))  # ~1000 mel
    weights = mel_matrix()  # (257, 64)
    assert weights.shape == (257, 64) and (weights[0] == 0).all()  # no DC
    assert weights.min() >= 0 and weights.max() <= 1
    # no weight below 125 Hz or above 7500 Hz (FFT bins are 31.25 Hz apart)
    hz = np.arange(257) * 31.25
    assert (weights[(hz <= 125) | (hz >= 7500)] == 0).all()


def test_vggish_log_mel_of_silence_and_of_a_tone() -> None:
    logmel = LogMel()
    assert logmel(torch.zeros(16_000)).shape == ((16_000 - 400) // 160 + 1, 64)  # 98 frames
    torch.testing.assert_close(
        logmel(torch.zeros(4000)), torch.full((23, 64), math.log(LOG_OFFSET))
    )
    tone = 0.5 * torch.cos(2 * math.pi * 1000 * torch.arange(8000) / SR)
    band_centres = np.linspace(hertz_to_mel(125), hertz_to_mel(7500), 66)[1:-1]
    nearest = int(np.argmin(np.abs(band_centres - hertz_to_mel(1000))))
    assert (logmel(tone).argmax(dim=1) == nearest).all()


def test_vggish_published_architecture_and_key_names() -> None:
    """The real network has the published port's 72,141,184 parameters under its key names:
    convs 1-64-128-256-256-512-512 (3x3), then 12288 -> 4096 -> 4096 -> 128."""
    with torch.device("meta"):
        encoder = create_encoder("vggish", pretrained=False)
    state = encoder.backbone.state_dict()
    layers = ["features.0", "features.3", "features.6", "features.8", "features.11"]
    layers += ["features.13", "embeddings.0", "embeddings.2", "embeddings.4"]
    assert sorted(state) == sorted(f"{k}.{p}" for k in layers for p in ("weight", "bias"))
    convs = [(1, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    fcs = [(512 * 6 * 4, 4096), (4096, 4096), (4096, 128)]
    expected = sum(9 * i * o + o for i, o in convs) + sum(i * o + o for i, o in fcs)
    assert expected == 72_141_184
    assert sum(p.numel() for p in encoder.parameters()) == expected
    assert encoder.out_dim == 128


def test_vggish_frame_count_and_locality_on_real_speech(vggish, speech: torch.Tensor) -> None:
    """Noise in [1.0, 1.3) s lies in patch 1 (0.96-1.935 s) only: exactly the frames between
    the centres of patches 0 and 2 (0.4875 s and 2.4075 s) change."""
    n = len(speech)
    out = vggish(speech[None])
    assert out.lengths.item() == out.features.shape[1] == wavlm_num_frames(n)
    change = _change_per_frame(vggish, speech, _replace(speech, 1.0, 1.3))
    t = _centres_s(len(change))
    moved = (t > 0.4875) & (t < 2.4075)
    assert (change[~moved] == 0).all() and (change[moved] > 0).all()


def test_vggish_partial_patch_is_padded_with_silence(vggish, speech: torch.Tensor) -> None:
    """1.5 s = 148 log-mel frames: 2 patches (the second centred at frame 143.5 < 148), the
    second padded after its 52 real frames with log(0.01)."""
    seen = []
    handle = vggish.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        out = vggish(speech[None, : 3 * SR // 2])
    finally:
        handle.remove()
    patches = seen[0]  # (P, 1, 96, 64)
    assert patches.shape == (2, 1, 96, 64)
    assert (patches[1, 0, 52:] == math.log(LOG_OFFSET)).all()
    assert not (patches[1, 0, :52] == math.log(LOG_OFFSET)).all()
    assert out.lengths.item() == wavlm_num_frames(3 * SR // 2)


def test_vggish_loads_a_state_dict_file_by_key_name(vggish, speech, tmp_path: Path) -> None:
    path = tmp_path / "vggish.pth"
    torch.save(vggish.backbone.state_dict(), path)
    again = create_encoder("vggish", weights=path, config_overrides=TINY_VGGISH)
    torch.testing.assert_close(again(speech[None]).features, vggish(speech[None]).features)

    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="other.pth.*not a VGGish state dict"):
        create_encoder("vggish", weights=tmp_path / "other.pth")
    with pytest.raises(InputError, match="not found"):
        create_encoder("vggish", weights=tmp_path / "missing.pth")


def test_vggish_offline_without_the_file_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WildaffectError, match=f"{VGGISH_FILE}.*HF_HUB_OFFLINE") as info:
        create_encoder("vggish")
    assert "\n" not in str(info.value)


def test_vggish_extracts_with_its_own_weights_and_downloads_into_its_cache(
    vggish, speech: torch.Tensor, tmp_path: Path, monkeypatch
) -> None:
    """Weights outside the hub: extract passes --weights-audio to the builder (not weight-free),
    and `wildaffect download vggish` fetches through the builder (offline: one line)."""
    from typer.testing import CliRunner

    from wildaffect.cli import app
    from wildaffect.extract import RunOptions, encode_audio, load_encoder

    assert not get_spec("vggish").weight_free and get_spec("logmel-egemaps").weight_free
    vggish.backbone.save_pretrained(tmp_path / "tiny")
    encoder = load_encoder("vggish", "audio", weights=tmp_path / "tiny")
    assert (encoder.offline, encoder.weights) == (False, str(tmp_path / "tiny"))
    features = encode_audio(speech.numpy(), encoder, RunOptions())
    assert features.shape[0] == wavlm_num_frames(len(speech))
    torch.testing.assert_close(torch.from_numpy(features), vggish(speech[None]).features[0])

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["download", "vggish"])
    assert isinstance(result.exception, WildaffectError)  # main() prints it as one line
    assert "HF_HUB_OFFLINE" in str(result.exception) and "\n" not in str(result.exception)


def test_vggish_frozen_or_fine_tuned(speech: torch.Tensor) -> None:
    frozen = create_encoder("vggish", pretrained=False, tiny=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    full = create_encoder("vggish", pretrained=False, tiny=True, freeze=False)
    full(speech[None]).features.sum().backward()
    assert all(p.grad is not None for p in full.backbone.parameters())


# ---------------------------------------------------------------------------------------------
# ViT-MAE and ResNet.


def _pixels() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def test_vitmae_masking_is_off_and_extraction_deterministic() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("vitmae-base", pretrained=False, tiny=True, freeze=False)
    encoder.train()  # even in train mode (dropout is 0 in MAE configs): no random masking
    assert encoder.config.mask_ratio == 0.0
    pixels = _pixels()
    first, second = encoder(pixels), encoder(pixels)
    assert first.patch_grid.shape == (2, 14, 14, 32)
    assert torch.equal(first.patch_grid, second.patch_grid) and torch.equal(first.cls, second.cls)

    # The patches enter the transformer in row-major order, none dropped or shuffled.
    seen = []
    handle = encoder.backbone.embeddings.register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        encoder(pixels)
    finally:
        handle.remove()
    embeddings = seen[0][0]  # (B, 1 + 196, D)
    emb = encoder.backbone.embeddings
    expected = emb.patch_embeddings(pixels) + emb.position_embeddings[:, 1:]
    torch.testing.assert_close(embeddings[:, 1:], expected)

    # The raw backbone with mask_ratio 0 still shuffles at random: the noise argument matters.
    with torch.no_grad():
        a = encoder.backbone(pixel_values=pixels).last_hidden_state
        b = encoder.backbone(pixel_values=pixels).last_hidden_state
    assert not torch.equal(a, b)


def test_vitmae_checkpoint_mask_ratio_is_overridden(tmp_path: Path) -> None:
    from transformers import ViTMAEConfig, ViTMAEModel

    from wildaffect.encoders.visual import TINY_VIT

    ViTMAEModel(ViTMAEConfig(**TINY_VIT, mask_ratio=0.75)).save_pretrained(tmp_path)
    encoder = create_encoder("vitmae-base", weights=tmp_path)
    assert encoder.config.mask_ratio == 0.0
    assert encoder(_pixels()).patch_grid.shape == (2, 14, 14, 32)


def test_vitmae_lora_is_live() -> None:
    torch.manual_seed(0)
    encoder = apply_lora(create_encoder("vitmae-base", pretrained=False, tiny=True), r=4, alpha=8)
    with torch.no_grad():
        for p in lora_parameters(encoder):
            p.normal_(std=0.5)
    encoder(_pixels()).patch_grid.sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in lora_parameters(encoder))


def test_resnet_cls_is_the_mean_of_its_grid() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("resnet-50", pretrained=False, tiny=True)
    out = encoder(_pixels())
    assert out.patch_grid.shape == (2, 7, 7, 32) and out.cls.shape == (2, 32)
    torch.testing.assert_close(out.cls, out.patch_grid.mean(dim=(1, 2)))


def test_resnet_50_has_the_hub_architecture() -> None:
    with torch.device("meta"):
        encoder = create_encoder("resnet-50", pretrained=False)
    assert encoder.embed_dim == 2048
    # torchvision's ResNet-50 has 25,557,032 parameters, 2,049,000 of them in the classifier
    assert sum(p.numel() for p in encoder.parameters()) == 25_557_032 - 2_049_000
