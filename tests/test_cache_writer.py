"""FeatureCache.record_writer / validate_record / remove_temporaries (used by preprocess)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wildaffect.data.cache import FeatureCache
from wildaffect.errors import InputError


def _hidden(cache: FeatureCache) -> list[str]:
    return sorted(p.name for p in (cache.root / "records").iterdir() if p.name.startswith("."))


def test_record_writer_publishes_on_success_with_extra_files(tmp_path):
    cache = FeatureCache(tmp_path)
    with cache.record_writer("clip") as record:
        assert record.folder.name.startswith(".clip.") and record.folder.is_dir()
        assert cache.videos() == []  # nothing visible while it is written
        record.save_array("frame_times", np.arange(3) / 25.0)
        (record.folder / "crops").mkdir()
        (record.folder / "crops" / "00001.jpg").write_bytes(b"jpeg")
        record.meta.update(n_frames=3, frame_arrays=["frame_times"])
    assert cache.videos() == ["clip"] and _hidden(cache) == []
    meta = cache.validate_record("clip")
    assert meta["arrays"] == ["frame_times"] and meta["shapes"] == {"frame_times": [3]}
    assert (cache.record_dir("clip") / "crops" / "00001.jpg").read_bytes() == b"jpeg"


def test_record_writer_removes_everything_on_failure_and_keeps_the_old_record(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.write_record("clip", {"n_frames": 2}, {"a": np.zeros(2)})
    with pytest.raises(KeyboardInterrupt), cache.record_writer("clip") as record:
        record.save_array("a", np.ones(5))
        raise KeyboardInterrupt
    assert _hidden(cache) == []
    np.testing.assert_array_equal(cache.read_array("clip", "a"), np.zeros(2))


def test_add_array_file_registers_a_memmapped_array(tmp_path):
    cache = FeatureCache(tmp_path)
    with cache.record_writer("v") as record:
        out = np.lib.format.open_memmap(record.folder / "crops.npy", "w+", np.uint8, (2, 4, 4, 3))
        out[:] = 7
        del out
        record.add_array_file("crops")
    assert cache.validate_record("v")["shapes"]["crops"] == [2, 4, 4, 3]


def test_validate_record_catches_truncation_shape_and_length_mismatch(tmp_path):
    cache = FeatureCache(tmp_path)
    arrays = {"frame_times": np.arange(4.0), "has_face": np.ones(4, bool), "audio": np.zeros(99)}
    meta = {"n_frames": 4, "frame_arrays": ["frame_times", "has_face"]}
    cache.write_record("v", meta, arrays)
    cache.validate_record("v")

    path = cache.record_dir("v") / "audio.npy"
    whole = path.read_bytes()
    path.write_bytes(whole[:-40])  # a short file: the header promises more data
    with pytest.raises(InputError, match="audio.npy: corrupt cached array"):
        cache.validate_record("v")
    np.save(path, np.zeros(98))  # loads, but not the shape that was written
    with pytest.raises(InputError, match=r"audio.npy: shape \[98\], meta.json says \[99\]"):
        cache.validate_record("v")
    path.write_bytes(whole)

    meta_path = cache.record_dir("v") / "meta.json"
    data = json.loads(meta_path.read_text())
    data["n_frames"] = 5
    meta_path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="frame_times.npy: 4 rows, but the record has 5 frames"):
        cache.validate_record("v")
    meta_path.write_text("{not json")
    with pytest.raises(InputError, match="corrupt record metadata"):
        cache.validate_record("v")


def test_remove_temporaries_clears_only_hidden_leftovers(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.write_record("kept", {}, {"a": np.zeros(1)})
    records = tmp_path / "records"
    (records / ".dead.abc123.tmp").mkdir()
    (records / ".dead.abc123.tmp" / "a.npy").write_bytes(b"half")
    (records / ".kept.old").mkdir()
    removed = cache.remove_temporaries()
    assert [p.name for p in removed] == [".dead.abc123.tmp", ".kept.old"]
    assert sorted(p.name for p in records.iterdir()) == ["kept"]
    assert FeatureCache(tmp_path / "nothing").remove_temporaries() == []
