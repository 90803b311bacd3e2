"""The audio-visual default model's data (train/av.py): folds over photos and speakers at
once, the shipped split, scoring with a modality dropped, and the real data's inventory."""

from __future__ import annotations

import numpy as np
import torch

from wildaffect.data.abaw import parse_annotation, scan_dataset
from wildaffect.data.cache import FeatureCache
from wildaffect.data.labelled import LabelledItem
from wildaffect.data.speech import SpeechItem
from wildaffect.face.regions import DEFAULT_REGIONS
from wildaffect.labels import EXPR_NAMES, SPLITS, Task
from wildaffect.models.registry import create_model
from wildaffect.train.av import (
    AVData,
    read_av_data,
    score_records,
    speaker_fold,
    write_av_clip_tree,
    write_av_tree,
)

VISUAL, AUDIO = "test-visual", "test-audio"
R, DV, DA = len(DEFAULT_REGIONS), 6, 5
HAPPY, SAD = EXPR_NAMES.index("Happiness"), EXPR_NAMES.index("Sadness")


def fake_data(tmp_path) -> tuple[AVData, FeatureCache]:
    """10 people x 2 photos (1 frame), 7 speakers x 2 utterances (9 frames, no face), one
    audio-only actor and one talking face (6 frames, face and voice)."""
    cache = FeatureCache(tmp_path / "cache")
    rng = np.random.default_rng(0)

    def record(name: str, n: int, face: bool, audio: bool) -> None:
        cache.write_record(name, {"n_frames": n, "audio_missing": not audio},
                           {"has_face": np.full(n, face)})
        cache.write_features(VISUAL, name, rng.normal(size=(n, R, DV)).astype(np.float32))
        cache.write_features(AUDIO, name, rng.normal(size=(n, DA)).astype(np.float32))

    photos = [LabelledItem(tmp_path / f"P{p}_{i:04d}.jpg", (HAPPY, SAD)[(p + i) % 2], f"P{p}")
              for p in range(10) for i in range(2)]
    for item in photos:
        record(item.media.stem, 1, True, False)

    def speech(name: str, speaker: str, n: int, face: bool) -> SpeechItem:
        record(name, n, face, True)
        return SpeechItem(tmp_path / f"{name}.wav", HAPPY, speaker, "happiness")

    emodb = [speech(f"s{s}u{u}", f"{s:02d}", 9, False) for s in range(7) for u in range(2)]
    data = AVData(photos, emodb, [speech("1002_A", "1002", 9, False)],
                  [speech("1001_AV", "1001", 6, True)], dropped=[])
    return data, cache


def test_folds_hold_out_photo_identities_and_speakers_together(tmp_path):
    data, cache = fake_data(tmp_path)
    held: dict[str, int] = {}
    for k in range(5):
        tree = tmp_path / "tree"
        splits = write_av_tree(data, cache.root, tree, folds=5, validation_fold=k)
        train, val = (set(splits[s]) for s in SPLITS)
        assert not train & val
        assert "1001_AV" not in train | val  # the talking face stays out of the folds
        assert "1002_A" in train
        for name in val:
            if name.startswith("s"):
                held[name[:2]] = k
        assert {n[:2] for n in val if n.startswith("s")} == {
            f"s{int(s)}" for s, f in speaker_fold(data.speakers, 5).items() if f == k}
        index = scan_dataset(tree, Task.EXPR)
        assert set(index.videos(Task.EXPR, SPLITS[1])) == val
        parsed = parse_annotation(index.path(Task.EXPR, SPLITS[0], "1002_A"), Task.EXPR)
        assert parsed.values.tolist() == [HAPPY] * 9  # a label line per frame
    assert sorted(held) == [f"s{s}" for s in range(7)]  # every speaker held out once


def test_shipped_split_trains_on_every_voice_and_the_talking_face(tmp_path):
    data, cache = fake_data(tmp_path)
    splits = write_av_tree(data, cache.root, tmp_path / "tree", folds=5, validation_fold=None)
    train, val = (set(splits[s]) for s in SPLITS)
    assert {"1001_AV", "1002_A"} <= train
    assert all(n.startswith("P") for n in val) and val  # only fold 0's photos held out
    assert {f"s{s}u{u}" for s in range(7) for u in range(2)} <= train


def test_scoring_with_a_modality_dropped_ignores_it(tmp_path):
    data, cache = fake_data(tmp_path)
    tree = write_av_clip_tree(data, cache.root, tmp_path / "clips")  # the talking face only
    torch.manual_seed(0)
    model = create_model("default-offline", d_visual=DV, d_audio=DA, d_model=16, d_token=8,
                         n_layers=1, d_state=4, hga_heads=2, fusion="concat",
                         tasks=(Task.EXPR,)).eval()
    split = SPLITS[1]

    def scores(drop=None):
        return score_records(model, tree, cache.root, split, VISUAL, AUDIO, drop=drop)

    before = {d: scores(d) for d in (None, "audio", "face")}
    name = "1001_AV"  # face and voice
    assert list(before[None]) == [name]
    cache.write_features(AUDIO, name, np.zeros((6, DA), np.float32))
    after_audio = {d: scores(d) for d in (None, "audio", "face")}
    assert np.allclose(after_audio["audio"][name], before["audio"][name])
    assert not np.allclose(after_audio[None][name], before[None][name])
    cache.write_features(VISUAL, name, np.zeros((6, R, DV), np.float32))
    after_face = {d: scores(d) for d in (None, "audio", "face")}
    assert np.allclose(after_face["face"][name], after_audio["face"][name])
    assert not np.allclose(after_face[None][name], after_audio[None][name])
    for probs in before[None].values():
        assert probs.shape == (len(EXPR_NAMES),) and np.isclose(probs.sum(), 1.0)


def test_the_real_data_inventory(shared_data):
    data = read_av_data(shared_data)
    assert len(data.photos) + len(data.dropped) >= 3805
    assert len(data.emodb) == 374 and len(data.speakers) == 7
    assert [i.path.suffix for i in data.crema_audio] == [".mp3"] * 6
    assert [i.path.suffix for i in data.crema_av] == [".flv"] * 6
    assert {i.speaker for i in data.crema_av} == {"1001"}
    assert sorted(speaker_fold(data.speakers, 5).values()) == [0, 0, 1, 1, 2, 3, 4]


def test_prepare_cache_builds_every_kind_of_record(shared_data, tmp_path):
    """A photo, an utterance, an audio-only clip and a talking face, from an empty cache."""
    from wildaffect.train.av import prepare_cache

    data = read_av_data(shared_data)
    paths = [data.photos[0].media, data.emodb[0].path, data.crema_audio[0].path,
             data.crema_av[0].path]
    names = prepare_cache(paths, tmp_path / "cache", "mediapipe-regions", "logmel-egemaps")
    cache = FeatureCache(tmp_path / "cache")
    frames = [cache.read_features("mediapipe-regions", n).shape[0] for n in names]
    assert frames[0] == 1 and frames[1] == 99  # a photo; 2.0 s at 20 ms
    for name, n in zip(names, frames, strict=True):
        assert cache.read_features("logmel-egemaps", name).shape == (n, 180)
    assert cache.read_array(names[3], "has_face").any()  # the talking face is found
    assert not cache.read_array(names[1], "has_face").any()
    assert prepare_cache(paths, tmp_path / "cache", "mediapipe-regions", "logmel-egemaps") == names
