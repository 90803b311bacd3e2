"""EnsembleModel: members' probabilities averaged, state carried per member, packaged as one."""

from __future__ import annotations

import json

import pytest
import torch

from wildaffect.errors import InputError
from wildaffect.labels import Task
from wildaffect.models.ensemble import EnsembleModel
from wildaffect.models.heads import to_probabilities
from wildaffect.models.package import META_FILE, load_package, save_package
from wildaffect.models.registry import create_model

VISUAL_SHAPE = (22, 232)  # mediapipe-regions tokens per frame
D_AUDIO = 12


def _member(seed: int, **overrides):
    torch.manual_seed(seed)
    config = {"tasks": (Task.AU, Task.EXPR, Task.VA), "d_audio": D_AUDIO, "d_token": 16,
              "d_model": 32, "d_inner": 16, "fusion": "concat", **overrides}
    return create_model("default-offline", **config).eval()


def _batch(length: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "visual": torch.randn(2, length, *VISUAL_SHAPE, generator=generator),
        "audio": torch.randn(2, length, D_AUDIO, generator=generator),
    }


def test_probabilities_are_the_members_mean():
    members = [_member(0), _member(1), _member(2)]
    batch = _batch()
    with torch.inference_mode():
        got = to_probabilities(EnsembleModel(members)(batch).outputs)
        each = [to_probabilities(m(batch).outputs) for m in members]
    for task in (Task.AU, Task.EXPR, Task.VA):
        expected = sum(p[task].double() for p in each) / len(each)
        torch.testing.assert_close(got[task].double(), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got[Task.EXPR].sum(-1), torch.ones(2, 6))


def test_one_member_gives_the_member_probabilities():
    member, batch = _member(0), _batch()
    with torch.inference_mode():
        got = to_probabilities(EnsembleModel([member])(batch).outputs)
        expected = to_probabilities(member(batch).outputs)
    for task in expected:
        torch.testing.assert_close(got[task], expected[task], atol=1e-6, rtol=1e-5)


def test_state_is_carried_per_member_chunk_by_chunk():
    """A causal ensemble fed in two chunks with its state equals one pass over the whole."""
    ensemble = EnsembleModel([_member(0), _member(1)])
    batch = _batch(length=10)
    with torch.inference_mode():
        whole = ensemble(batch).outputs[Task.EXPR]
        first = ensemble({k: v[:, :4] for k, v in batch.items()})
        second = ensemble({k: v[:, 4:] for k, v in batch.items()}, first.state)
    assert len(first.state) == 2
    stitched = torch.cat([first.outputs[Task.EXPR], second.outputs[Task.EXPR]], dim=1)
    torch.testing.assert_close(stitched, whole, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="3 members' states"):
        ensemble(batch, [None, None, None])


def test_members_must_share_one_config():
    with pytest.raises(ValueError, match="member 1's config differs"):
        EnsembleModel([_member(0), _member(1, d_model=48)])
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleModel([])


def test_package_round_trip_of_an_ensemble(tmp_path):
    ensemble = EnsembleModel([_member(0), _member(1)])
    folder = save_package(ensemble, tmp_path / "pkg")
    meta = json.loads((folder / META_FILE).read_text())
    assert (meta["members"], meta["format"]) == (2, 2)
    loaded, _ = load_package(folder)
    assert isinstance(loaded, EnsembleModel) and len(loaded.members) == 2
    batch = _batch()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(batch).outputs[Task.EXPR],
                                   ensemble(batch).outputs[Task.EXPR])  # fmt: skip
    # A single model's package stays format 1 (older wildaffect versions read it).
    single = json.loads((save_package(_member(0), tmp_path / "one") / META_FILE).read_text())
    assert single["format"] == 1 and "members" not in single


@pytest.mark.parametrize("members", [0, "2", 1.5, True])
def test_a_bad_member_count_is_a_one_line_error(tmp_path, members):
    folder = save_package(EnsembleModel([_member(0), _member(1)]), tmp_path / "pkg")
    meta = json.loads((folder / META_FILE).read_text())
    meta["members"] = members
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="members must be a whole number"):
        load_package(folder)


def test_weights_of_another_member_count_do_not_load(tmp_path):
    folder = save_package(EnsembleModel([_member(0), _member(1)]), tmp_path / "pkg")
    meta = json.loads((folder / META_FILE).read_text())
    meta["members"] = 3
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="do not fit"):
        load_package(folder)
