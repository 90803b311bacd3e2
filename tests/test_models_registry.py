"""Every registered preset at tiny widths: shapes per head, no NaN with masked frames or a
missing modality, every trainable parameter reaches a gradient (timm's registry-wide test)."""

from __future__ import annotations

import pytest
import torch

from wildaffect.errors import WildaffectError
from wildaffect.face.regions import DEFAULT_REGIONS
from wildaffect.labels import Task
from wildaffect.models.config import ModelConfig
from wildaffect.models.heads import n_outputs
from wildaffect.models.registry import TABLE1_PRESETS, create_model, get_config, list_models

SEED003_PRESETS = (
    "va-grada-moe", "va-grada-reliability", "va-clip-ast-grid", "va-resnet-vggish-tcn",
    "expr-vnaw", "clip-tcn-transformer", "maven", "mtl-mae-curriculum",
)

TINY = dict(  # noqa: C408
    d_visual=16, d_audio=8, d_model=16, d_token=8, d_inner=8, d_state=4, n_layers=1,
    hga_heads=2, xattn_heads=2, transformer_heads=2, xattn_window=2, dropout=0.0,
    tcn_dilations=(1, 2),
)
B, T, GRID = 2, 7, 4
EXTRA_TINY = {"d_behaviour": 6, "d_text": 5}  # optional streams, shrunk when a preset has them


def make_batch(
    config: ModelConfig, *, audio: bool = True, extras: bool = True, seed: int = 0
) -> dict:
    g = torch.Generator().manual_seed(seed)
    shape = {
        "grid": (B, T, GRID, GRID, config.d_visual),
        "regions": (B, T, len(DEFAULT_REGIONS), config.d_visual),
        "vector": (B, T, config.d_visual),
    }[config.visual_input]
    face_mask = torch.ones(B, T, dtype=torch.bool)
    face_mask[0, 2:4] = False
    visual = torch.randn(*shape, generator=g)
    visual[~face_mask] = float("nan")  # must never leak from no-face frames
    landmarks = torch.rand(B, T, 68, 2, generator=g)
    landmarks[~face_mask] = float("nan")
    batch = {"visual": visual, "landmarks": landmarks, "face_mask": face_mask}
    if audio and config.has_audio:
        audio_mask = torch.ones(B, T, dtype=torch.bool)
        audio_mask[1, 4:] = False
        batch["audio"] = torch.randn(B, T, config.d_audio, generator=g)
        batch["audio_mask"] = audio_mask
        batch["vad"] = torch.rand(B, T, generator=g)
    for name, width in (("behaviour", "d_behaviour"), ("text", "d_text")):
        if extras and getattr(config, width):
            mask = torch.ones(B, T, dtype=torch.bool)
            mask[1, :3] = False
            values = torch.randn(B, T, getattr(config, width), generator=g)
            values[~mask] = float("nan")  # must never leak from absent frames
            batch[name], batch[f"{name}_mask"] = values, mask
    return batch


def tiny(name: str, **overrides):
    torch.manual_seed(0)
    preset = get_config(name)
    extra = {k: v for k, v in EXTRA_TINY.items() if getattr(preset, k)}
    if not preset.has_audio:
        extra["d_audio"] = 0  # a visual-only preset stays visual-only
    return create_model(name, **{**TINY, **extra, **overrides})


def test_table1_rows_and_siblings_are_registered():
    names = list_models()
    for name, _ in TABLE1_PRESETS:
        assert name in names
    for name in ("abaw-hga-transformer", "abaw-hga-mamba", "abaw8-convnext-whisper",
                 "expr-dual-branch", *SEED003_PRESETS):
        assert name in names


def test_table1_rows_differ_by_one_component_each():
    cfgs = [get_config(name) for name, _ in TABLE1_PRESETS]
    assert (cfgs[0].visual_encoder, cfgs[1].visual_encoder) == ("vit-base", "dinov2-large")
    assert (cfgs[1].spatial, cfgs[2].spatial) == ("gap", "hga")
    assert (cfgs[2].temporal, cfgs[3].temporal) == ("tcn", "ag_ssm")
    assert (cfgs[3].losses["AU"], cfgs[4].losses["AU"]) == ("bce", "asl")


@pytest.mark.parametrize("name", list_models())
def test_preset_shapes_finite_and_gradients(name):
    model = tiny(name, modality_dropout=(0.0, 0.0))
    model.train()
    out = model(make_batch(model.config)).outputs
    assert set(out) == set(model.config.tasks)
    for task, y in out.items():
        assert y.shape == (B, T, n_outputs(task))
        assert torch.isfinite(y).all(), f"{name}: {task} not finite"
    sum(y.sum() for y in out.values()).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {pname} gradient not finite"


@pytest.mark.parametrize("name", list_models())
def test_preset_runs_without_audio_and_without_faces(name):
    model = tiny(name).eval()
    batch = make_batch(model.config, audio=False, extras=False)
    batch["face_mask"][:] = False
    batch["visual"][:] = float("nan")
    out = model(batch).outputs
    assert all(torch.isfinite(y).all() for y in out.values())


def test_hga_over_offline_region_tokens():
    model = tiny("abaw-full", visual_input="regions", tasks=(Task.AU, Task.EXPR, Task.VA),
                 losses={"AU": "asl", "EXPR": "ce", "VA": "ccc"})
    out = model(make_batch(model.config)).outputs
    assert out[Task.VA].abs().max() <= 1.0
    assert out[Task.EXPR].shape == (B, T, 8)


def test_audio_changes_the_flagship_outputs():
    model = tiny("abaw-full").eval()
    batch = make_batch(model.config)
    before = model(batch).outputs[Task.AU]
    batch["audio"] = batch["audio"] + 1.0
    after = model(batch).outputs[Task.AU]
    assert not torch.allclose(before, after)


def test_unidirectional_flagship_streams_in_chunks_like_one_pass():
    """With fusion 'none' (no windowed look-ahead) a causal AG-SSM model carries its state."""
    model = tiny("abaw-full", bidirectional=False, fusion="none").eval()
    assert model.config.streamable
    batch = make_batch(model.config)
    whole = model(batch).outputs[Task.AU]
    first = {k: v[:, :3] for k, v in batch.items()}
    second = {k: v[:, 3:] for k, v in batch.items()}
    out1 = model(first)
    out2 = model(second, state=out1.state)
    chunked = torch.cat([out1.outputs[Task.AU], out2.outputs[Task.AU]], dim=1)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_unknown_preset_and_bad_options_are_clear_errors():
    with pytest.raises(WildaffectError, match="unknown model preset 'nope'"):
        create_model("nope")
    with pytest.raises(ValueError, match="unknown model option"):
        get_config("abaw-full", widht=3)
    with pytest.raises(ValueError, match="HGA needs"):
        get_config("abaw-full", visual_input="vector")
    with pytest.raises(ValueError, match="no loss named"):
        get_config("abaw-full", tasks=("AU", "VA"))


def test_config_round_trips_through_a_dict():
    cfg = get_config("expr-dual-branch")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_visual_feature_mismatch_is_explained():
    model = tiny("abaw-full")
    batch = make_batch(model.config)
    batch["visual"] = batch["visual"][..., :5]
    with pytest.raises(ValueError, match="expects visual_input='grid'"):
        model(batch)


@pytest.mark.parametrize("name", SEED003_PRESETS)
def test_seed003_presets_quote_their_seed_and_name_registered_encoders(name):
    from wildaffect.encoders.registry import list_encoders

    cfg = get_config(name)
    assert "Seed 003" in cfg.description and '"' in cfg.description  # a quotation of the seed
    assert cfg.visual_encoder in list_encoders("visual")
    assert cfg.audio_encoder is None or cfg.audio_encoder in list_encoders("audio")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("stream", ["vad", "behaviour", "text"])
def test_optional_streams_change_the_outputs_where_present(stream):
    name = {"vad": "va-grada-moe", "behaviour": "va-grada-reliability", "text": "maven"}[stream]
    model = tiny(name).eval()
    batch = make_batch(model.config)
    before = model(batch).outputs[Task.VA]
    changed = dict(batch)
    if stream == "vad":
        changed["vad"] = torch.zeros(B, T)  # silence everywhere: the audio is gated out
    else:
        changed[stream] = batch[stream] + 1.0
    after = model(changed).outputs[Task.VA]
    assert not torch.allclose(before, after)
    dropped = {k: v for k, v in batch.items() if not k.startswith(stream)}
    assert torch.isfinite(model(dropped).outputs[Task.VA]).all()  # the stream is optional


def test_vad_gate_silences_the_audio_of_the_reliability_fusion():
    model = tiny("va-grada-reliability", audio_segment=0).eval()
    batch = make_batch(model.config, extras=False)
    batch["vad"] = torch.zeros(B, T)
    silent = model(batch).outputs[Task.VA]
    batch["audio"] = torch.randn(B, T, model.config.d_audio)  # other audio, still no speech
    torch.testing.assert_close(model(batch).outputs[Task.VA], silent)


def test_extra_stream_width_mismatch_is_explained():
    model = tiny("maven")
    batch = make_batch(model.config)
    batch["text"] = batch["text"][..., :2]
    with pytest.raises(ValueError, match="text features"):
        model(batch)


@pytest.mark.parametrize("name", SEED003_PRESETS)
def test_seed003_presets_round_trip_through_a_model_package(name, tmp_path):
    from wildaffect.models.package import load_package, save_package

    model = tiny(name).eval()
    save_package(model, tmp_path / "pkg")
    loaded, _ = load_package(tmp_path / "pkg")
    batch = make_batch(model.config)
    before, after = model(batch).outputs, loaded.eval()(batch).outputs
    for task in before:
        torch.testing.assert_close(after[task], before[task])


@pytest.mark.parametrize("name", ["abaw-full", "default-offline"])  # patch grid, region tokens
def test_face_frames_only_visual_path_equals_the_dense_reference(name):
    """encode_visual runs HGA + pooling on face frames only; the reference pools HGA's dense
    (B, T, R, d) output with the no-face tokens scattered in."""
    shape = (GRID, GRID, TINY["d_visual"]) if name == "abaw-full" else (
        len(DEFAULT_REGIONS), TINY["d_visual"])
    model = tiny(name, input_norm=True, visual_frame_shape=shape).eval()
    batch = make_batch(model.config)
    batch["visual"] = torch.nan_to_num(batch["visual"])
    batch["landmarks"] = torch.nan_to_num(batch["landmarks"])
    face_mask = batch["face_mask"]
    with torch.no_grad():
        model.visual_mean.normal_()
        model.visual_std.uniform_(0.5, 2.0)
        normed = model._normalised(batch)
        fast = model.encode_visual(normed, face_mask)
        full = model._normalised({**batch, "face_mask": torch.ones_like(face_mask)})
        if model.config.visual_input == "grid":
            tokens = model.hga(full["visual"], batch["landmarks"], face_mask)
        else:
            tokens = model.hga.forward_tokens(full["visual"], face_mask)
        reference = model.region_pool(tokens)
        no_face = torch.zeros_like(face_mask)
        none_fast = model.encode_visual(model._normalised({**batch, "face_mask": no_face}),
                                        no_face)
    torch.testing.assert_close(fast, reference, atol=1e-6, rtol=1e-5)
    assert torch.equal(normed["visual"][face_mask], full["visual"][face_mask])
    assert torch.equal(none_fast, model.region_pool(model.hga.no_face).expand_as(none_fast))


def _right_padded(batch: dict, extra: int) -> dict:
    """The batch with ``extra`` padding frames appended as ``collate`` pads: zeros, masks False,
    ``valid_mask`` marking the real frames."""
    padded = {}
    for key, value in batch.items():
        fill = torch.zeros((value.shape[0], extra, *value.shape[2:]), dtype=value.dtype)
        padded[key] = torch.cat([value, fill], dim=1)
    padded["valid_mask"] = torch.cat(
        [torch.ones(B, T, dtype=torch.bool), torch.zeros(B, extra, dtype=torch.bool)], dim=1
    )
    return padded


@pytest.mark.parametrize("name", list_models())
def test_right_padding_does_not_change_the_real_frames(name):
    """Training clips are right-padded to a common length (``collate``); a bidirectional or
    attending temporal model must give the real frames what the unpadded sequence gives them."""
    model = tiny(name).eval()
    batch = make_batch(model.config)
    whole = model(batch).outputs
    padded = model(_right_padded(batch, extra=5)).outputs
    for task, y in whole.items():
        torch.testing.assert_close(padded[task][:, :T], y, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, task=task: f"{name} {task}: {m}")
