"""Audio foundation encoders: tiny configs, random weights, real 16 kHz speech from CREMA-D."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wildaffect.encoders.audio import AudioOutput, zero_mean_unit_var
from wildaffect.encoders.registry import create_encoder, get_spec, list_encoders
from wildaffect.errors import WildaffectError
from wildaffect.io.align import wavlm_num_frames

SR = 16_000
# The audio encoders with weights: transformers ones (WavLM, Whisper, AST) and VGGish.
LEARNED_AUDIO_MODULES = (
    "wildaffect.encoders.audio",
    "wildaffect.encoders.spectrogram_transformer",
    "wildaffect.encoders.vggish",
)
TRANSFORMERS_AUDIO = [
    n for n in list_encoders("audio") if get_spec(n).builder.__module__ in LEARNED_AUDIO_MODULES
]
WAVLM = [n for n in TRANSFORMERS_AUDIO if n.startswith("wavlm")]
WHISPER = [n for n in TRANSFORMERS_AUDIO if n.startswith("whisper")]


def _decode_16k_mono(path: Path) -> np.ndarray:
    """Decode a media file's audio with PyAV, resampled to 16 kHz mono float32 in [-1, 1]."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
    pieces = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                pieces.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        pieces.append(out.to_ndarray().reshape(-1))
    return np.concatenate(pieces).astype(np.float32)


@pytest.fixture(scope="module")
def speech(shared_data: Path) -> torch.Tensor:
    """Real speech: a whole CREMA-D clip (a happy sentence, 1.9 s), (N,) float32."""
    audio = _decode_16k_mono(shared_data / "media" / "crema-d" / "1001_DFA_HAP_XX.flv")
    assert 1.0 * SR <= len(audio) <= 3.0 * SR and np.abs(audio).max() > 0.01
    return torch.from_numpy(audio)


@pytest.fixture(scope="module")
def tone_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 440 Hz tones of 2.0 s and 1.25 s, zero-padded to one (2, 32000) batch."""
    t = torch.arange(2 * SR) / SR
    wave = 0.3 * torch.sin(2 * math.pi * 440 * t)
    batch = torch.stack([wave, wave * (t < 1.25)])
    return batch, torch.tensor([2 * SR, int(1.25 * SR)])


def test_audio_encoders_are_registered() -> None:
    assert set(TRANSFORMERS_AUDIO) >= {
        "wavlm-base",
        "wavlm-base-plus",
        "wavlm-large",
        "whisper-base",
        "whisper-small",
        "ast-audioset",
        "vggish",
    }
    assert get_spec("wavlm-large").hub_id == "microsoft/wavlm-large"
    assert get_spec("whisper-base").modality == "audio"


@pytest.mark.parametrize("name", TRANSFORMERS_AUDIO)
def test_tiny_encoder_shapes_and_save_load_roundtrip(name: str, tone_batch, tmp_path) -> None:
    torch.manual_seed(0)
    wave, lengths = tone_batch
    encoder = create_encoder(name, pretrained=False, tiny=True)
    out = encoder(wave, lengths)
    assert isinstance(out, AudioOutput)
    if name.startswith("whisper"):
        expected = [math.ceil(int(n) / 320) for n in lengths]  # 100 and 63 frame centres
    else:  # WavLM, and AST / VGGish interpolated onto WavLM's grid
        expected = [wavlm_num_frames(int(n)) for n in lengths]  # 99 and 61: 20 ms frames
    assert out.lengths.tolist() == expected
    assert out.features.shape == (2, max(expected), encoder.out_dim)
    assert torch.isfinite(out.features).all()
    assert (out.features[1, expected[1] :] == 0).all()  # padding is zero
    assert out.features[1, : expected[1]].abs().sum() > 0

    encoder.save_pretrained(tmp_path)
    again = create_encoder(name, weights=tmp_path)(wave, lengths)
    torch.testing.assert_close(again.features, out.features, rtol=0, atol=0)
    assert again.lengths.tolist() == expected


@pytest.mark.parametrize("name", WAVLM)
def test_wavlm_frame_count_on_real_speech(name: str, speech: torch.Tensor) -> None:
    encoder = create_encoder(name, pretrained=False, tiny=True)
    n = speech.numel()
    out = encoder(speech[None])
    assert (
        out.features.shape[1] == out.lengths.item() == (n - 400) // 320 + 1 == wavlm_num_frames(n)
    )
    # transformers' own conv arithmetic agrees with the 20 ms convention
    assert int(
        encoder.backbone._get_feat_extract_output_lengths(torch.tensor(n))
    ) == wavlm_num_frames(n)


def test_whisper_frame_count_on_real_speech(speech: torch.Tensor) -> None:
    encoder = create_encoder("whisper-base", pretrained=False, tiny=True)
    out = encoder(speech[None])
    assert out.lengths.item() == out.features.shape[1] == math.ceil(speech.numel() / 320)


def test_whisper_long_audio_is_encoded_in_30s_windows() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("whisper-base", pretrained=False, tiny=True)
    wave = 0.1 * torch.randn(1, 31 * SR)
    out = encoder(wave)
    assert out.lengths.item() == 1500 + 50
    first = encoder(wave[:, : 30 * SR])
    torch.testing.assert_close(out.features[:, :1500], first.features, rtol=1e-5, atol=1e-5)
    tail = encoder(wave[:, 30 * SR :])
    torch.testing.assert_close(out.features[:, 1500:], tail.features, rtol=1e-5, atol=1e-5)


def test_wavlm_weighted_sum_covers_every_hidden_state_and_adapter_starts_as_identity(
    speech,
) -> None:
    encoder = create_encoder("wavlm-large", pretrained=False, tiny=True)
    n_states = encoder.config.num_hidden_layers + 1  # 25 for the real Large
    assert encoder.layer_logits.numel() == n_states
    with torch.no_grad():
        out = encoder(speech[None])
        hidden = encoder.backbone(
            zero_mean_unit_var(speech[None], torch.ones(1, speech.numel(), dtype=torch.bool)),
            attention_mask=torch.ones(1, speech.numel(), dtype=torch.long),
            output_hidden_states=True,
        ).hidden_states
    # zero logits = uniform weights; the zero-initialised adapter adds nothing yet
    torch.testing.assert_close(out.features, torch.stack(hidden).mean(0), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        encoder.layer_logits[-1] = 30.0  # all weight on the last layer
        last = encoder(speech[None]).features
    torch.testing.assert_close(last, hidden[-1], rtol=1e-4, atol=1e-4)


def test_wavlm_large_output_does_not_depend_on_batch_padding(tone_batch) -> None:
    """Large takes an attention mask: the short item padded in a batch equals the item alone."""
    wave, lengths = tone_batch
    encoder = create_encoder("wavlm-large", pretrained=False, tiny=True)
    with torch.no_grad():
        batched = encoder(wave, lengths)
        alone = encoder(wave[1:, : lengths[1]])
    n = int(batched.lengths[1])
    torch.testing.assert_close(batched.features[1, :n], alone.features[0], rtol=1e-4, atol=1e-4)


def test_input_normalisation_matches_wav2vec2_feature_extractor(speech: torch.Tensor) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    reference = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    short = speech[:20_000].numpy()
    ref = reference([speech.numpy(), short], sampling_rate=SR, padding=True, return_tensors="pt")
    mask = ref.attention_mask.bool()
    padded = torch.nn.functional.pad(torch.from_numpy(short), (0, speech.numel() - 20_000))
    ours = zero_mean_unit_var(torch.stack([speech, padded]), mask)
    torch.testing.assert_close(ours, ref.input_values, rtol=1e-4, atol=1e-4)


def test_extraction_is_deterministic_even_in_train_mode(speech: torch.Tensor) -> None:
    encoder = create_encoder("wavlm-base", pretrained=False, tiny=True)
    assert encoder.config.layerdrop == 0.0 and encoder.config.apply_spec_augment is False
    encoder.train()  # frozen backbone: stays in eval mode, so no dropout either
    assert not encoder.backbone.training and encoder.adapter.training
    with torch.no_grad():
        a = encoder(speech[None]).features
        b = encoder(speech[None]).features
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["wavlm-base", "wavlm-large", "whisper-base"])
def test_bf16_autocast_close_to_fp32(name: str, speech: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = create_encoder(name, pretrained=False, tiny=True)
    with torch.no_grad():
        ref = encoder(speech[None]).features.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = encoder(speech[None]).features.float()
    assert (torch.linalg.norm(low - ref) / torch.linalg.norm(ref)).item() < 1e-2


def test_fp32_cnn_survives_deepcopy(speech: torch.Tensor) -> None:
    """SWA / EMA deep-copy the model: the copy's CNN must be its own, still kept in fp32."""
    import copy

    encoder = create_encoder("wavlm-base", pretrained=False, tiny=True)
    clone = copy.deepcopy(encoder)
    cnn = clone.backbone.feature_extractor
    assert cnn.forward.__self__ is cnn
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert cnn(speech[None]).dtype == torch.float32
        torch.testing.assert_close(clone(speech[None]).features, encoder(speech[None]).features)


def test_adapter_projects_to_d_out() -> None:
    encoder = create_encoder("wavlm-base", pretrained=False, tiny=True, d_out=24, adapter_dim=8)
    out = encoder(0.1 * torch.randn(1, SR))
    assert out.features.shape == (1, 49, 24) and encoder.out_dim == 24


def test_bad_audio_is_a_one_line_error() -> None:
    encoder = create_encoder("wavlm-base", pretrained=False, tiny=True)
    with pytest.raises(WildaffectError, match="too short"):
        encoder(torch.zeros(1, 399))
    with pytest.raises(WildaffectError, match=r"\(B, N\)"):
        encoder(torch.zeros(SR))
    with pytest.raises(WildaffectError, match="lengths"):
        encoder(torch.zeros(2, SR), torch.tensor([SR, SR + 1]))
