"""Model packages (safetensors + model.json) and the in-model input standardisation."""

from __future__ import annotations

import json

import pytest
import torch

from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import Task
from wildaffect.models.package import META_FILE, WEIGHTS_FILE, load_any, load_package, save_package
from wildaffect.models.registry import create_model

SHAPE = (22, 232)  # the offline encoder's tokens per frame


def _model():
    torch.manual_seed(0)
    return create_model(
        "default-offline", tasks=(Task.EXPR,), audio_encoder=None, d_audio=0,
        losses={"EXPR": "ce"}, input_norm=True, visual_frame_shape=SHAPE,
    ).eval()


def test_input_stats_standardise_and_clip_inside_the_model():
    model = _model()
    mean, std = torch.randn(SHAPE), torch.rand(SHAPE) + 0.5
    std[0, 0] = 0.0  # a constant feature: scale 1, not a division by zero
    model.set_input_stats(mean, std)
    visual = torch.randn(1, 3, *SHAPE)
    out = model({"visual": visual}).outputs[Task.EXPR]
    # Reference: standardise by hand and run a copy without input_norm on the same weights.
    plain = create_model(
        "default-offline", tasks=(Task.EXPR,), audio_encoder=None, d_audio=0,
        losses={"EXPR": "ce"},
    ).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if "_mean" not in k
                           and "_std" not in k})
    safe_std = torch.where(std > 1e-6, std, torch.ones_like(std))
    expected = plain({"visual": ((visual - mean) / safe_std).clamp(-6, 6)}).outputs[Task.EXPR]
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="shapes"):
        model.set_input_stats(torch.zeros(5), torch.ones(5))


def test_package_round_trip_gives_identical_outputs(tmp_path):
    model = _model()
    model.set_input_stats(torch.randn(SHAPE), torch.rand(SHAPE) + 0.5)
    folder = save_package(model, tmp_path / "pkg", outputs={"AU": "blendshapes-facs"},
                          card={"note": "test"})
    loaded, meta = load_package(folder)
    assert meta["outputs"] == {"EXPR": "model", "AU": "blendshapes-facs"}
    assert meta["label_names"]["EXPR"][4] == "Happiness"
    visual = torch.randn(2, 4, *SHAPE)
    torch.testing.assert_close(
        loaded({"visual": visual}).outputs[Task.EXPR], model({"visual": visual}).outputs[Task.EXPR]
    )
    assert load_any(folder)[1]["card"] == {"note": "test"}


def test_broken_packages_give_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no model.json"):
        load_package(tmp_path)
    folder = save_package(_model(), tmp_path / "pkg")
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="unreadable weights"):
        load_package(folder)
    meta = json.loads((folder / META_FILE).read_text())
    meta["format"] = 99
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="newer"):
        load_package(folder)
    with pytest.raises(WildaffectError, match="not found"):
        load_any(tmp_path / "missing")
