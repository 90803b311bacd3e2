"""The shared cache: atomic records, float16 features, clear errors on damage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wildaffect.data.cache import FeatureCache
from wildaffect.errors import InputError, WildaffectError


def test_record_round_trip_and_manifest(tmp_path):
    cache = FeatureCache(tmp_path)
    times = np.arange(5) / 25.0
    cache.write_record("clip", {"source": "clip.mp4", "n_frames": 5, "fps": 25.0},
                       {"frame_times": times, "has_face": np.ones(5, bool)})
    assert cache.has_record("clip") and cache.videos() == ["clip"]
    arrays = cache.read_arrays("clip")
    np.testing.assert_array_equal(arrays["frame_times"], times)
    assert cache.read_meta("clip")["n_frames"] == 5
    cache.write_features("enc", "clip", np.random.rand(5, 3))
    assert cache.read_features("enc", "clip").dtype == np.float16
    manifest = json.loads(cache.write_manifest().read_text())
    assert manifest["videos"]["clip"]["n_frames"] == 5
    assert manifest["features"] == {"enc": ["clip"]}


def test_rewrite_replaces_and_leaves_no_temporaries(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.write_record("v", {}, {"a": np.zeros(2)})
    cache.write_record("v", {}, {"a": np.ones(3)})
    np.testing.assert_array_equal(cache.read_array("v", "a"), np.ones(3))
    assert [p.name for p in (tmp_path / "records").iterdir()] == ["v"]


def test_a_failed_write_leaves_nothing(tmp_path):
    cache = FeatureCache(tmp_path)

    class Boom:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cache.write_record("v", {}, {"a": np.zeros(2), "b": Boom()})
    assert not cache.has_record("v")
    assert list((tmp_path / "records").iterdir()) == []


def test_damage_is_reported_with_the_file(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.write_record("v", {}, {"a": np.zeros(2)})
    (cache.record_dir("v") / "a.npy").write_bytes(b"garbage")
    with pytest.raises(InputError, match="a.npy: corrupt cached array"):
        cache.read_array("v", "a")
    with pytest.raises(InputError, match="run `wildaffect extract`"):
        cache.read_features("enc", "v")
    with pytest.raises(WildaffectError, match="invalid cache entry name"):
        cache.record_dir("../escape")
