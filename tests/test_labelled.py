"""Labelled photos -> ABAW EXPR tree (data/labelled.py) and ``wildaffect data import-expression``."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.data.abaw import parse_annotation, scan_dataset
from wildaffect.data.cache import FeatureCache
from wildaffect.data.dataset import ClipDataset
from wildaffect.data.labelled import (
    LabelledItem,
    faces_identity,
    read_faces_expression,
    write_expression_tree,
)
from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import EXPR_NAMES, SPLITS, Task

ENCODER = "test-enc"
HAPPY, NEUTRAL, SAD = (EXPR_NAMES.index(n) for n in ("Happiness", "Neutral", "Sadness"))


def write_csv(folder, rows: list[str], images: list[str] | None = None):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name in images if images is not None else [r.split(",")[0] for r in rows]:
        (folder / "images" / name).write_bytes(b"jpeg")
    path = folder / "labels.csv"
    path.write_text("image,expression,source_label\n" + "\n".join(rows) + "\n")
    return path


def test_identity_rule():
    assert faces_identity("Aaron_Eckhart_0001.jpg") == "Aaron_Eckhart"
    assert faces_identity("Dwarakish_12.jpg") == "Dwarakish"
    assert faces_identity("facial-expressions_2868582k.jpg") == "facial-expressions"


def test_reader_drops_conflicting_duplicates_and_keeps_exact_ones(tmp_path):
    path = write_csv(tmp_path, [
        "A_B_0001.jpg,Happiness,happiness", "A_B_0002.jpg,neutral,neutral",
        "C_1.jpg,Surprise,surprise", "C_1.jpg,Sadness,sadness",  # disagree: dropped
        "D_0001.jpg,Anger,anger", "D_0001.jpg,Anger,anger",  # same label twice: kept once
    ])
    items, dropped = read_faces_expression(path)
    assert dropped == ["C_1.jpg"]
    assert [(it.media.name, it.label, it.group) for it in items] == [
        ("A_B_0001.jpg", HAPPY, "A_B"), ("A_B_0002.jpg", NEUTRAL, "A_B"),
        ("D_0001.jpg", EXPR_NAMES.index("Anger"), "D"),
    ]


@pytest.mark.parametrize("rows, images, message", [
    (["A_0001.jpg,Happiness,x", "B_0001.jpg,Joy,joy"], None,
     "labels.csv:3: unknown expression 'Joy' for B_0001.jpg"),
    (["A_0001.jpg,Happiness,x", "B_0001.jpg,Sadness,x"], ["A_0001.jpg"],
     "labels.csv:3: image B_0001.jpg not found in"),
])
def test_reader_errors_name_the_line(tmp_path, rows, images, message):
    path = write_csv(tmp_path, rows, images)
    with pytest.raises(InputError) as err:
        read_faces_expression(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_reader_missing_column_and_file(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("image,label\nA_0001.jpg,Happiness\n")
    with pytest.raises(InputError, match=r"labels.csv:1: missing column\(s\) expression"):
        read_faces_expression(path)
    with pytest.raises(InputError, match="file not found"):
        read_faces_expression(tmp_path / "nope.csv")


def fake_cache(root, n_frames: dict[str, int], no_face: set[str] = frozenset()) -> FeatureCache:
    """Records with has_face and tiny features, as preprocess + extract would leave them."""
    cache = FeatureCache(root)
    for name, n in n_frames.items():
        cache.write_record(name, {"n_frames": n}, {"has_face": np.full(n, name not in no_face)})
        cache.write_features(ENCODER, name, np.ones((n, 3, 4), np.float32))
    return cache


def make_items(tmp_path, n_people: int = 10, per_person: int = 3) -> list[LabelledItem]:
    labels = [HAPPY, NEUTRAL, SAD]
    return [
        LabelledItem(tmp_path / f"P{p}_{i:04d}.jpg", labels[(p + i) % 3], f"P{p}")
        for p in range(n_people) for i in range(per_person)
    ]


def test_folds_split_by_group_and_cover_every_item_once(tmp_path):
    items = make_items(tmp_path)
    cache = fake_cache(tmp_path / "cache", {it.media.stem: 1 for it in items},
                       no_face={"P0_0000"})
    group_of = {it.media.stem: it.group for it in items}
    seen: list[str] = []
    for k in range(3):
        summary = write_expression_tree(items, cache, tmp_path / "tree", folds=3,
                                        validation_fold=k, seed=1)
        train, val = (set(summary.videos[s]) for s in SPLITS)
        assert train | val == set(group_of) and not train & val
        assert not {group_of[v] for v in train} & {group_of[v] for v in val}
        index = scan_dataset(tmp_path / "tree", Task.EXPR)
        on_disk = set(index.videos(Task.EXPR, SPLITS[1]))
        assert on_disk == val  # the previous fold's files are gone
        seen += sorted(val)
    assert sorted(seen) == sorted(group_of)
    labels = {it.media.stem: it.label for it in items}
    for split in SPLITS:
        for video in index.videos(Task.EXPR, split):
            parsed = parse_annotation(index.path(Task.EXPR, split, video), Task.EXPR)
            assert parsed.values.tolist() == [labels[video]]  # no-face P0_0000 keeps its label


def test_one_label_line_per_frame_and_the_dataset_reads_it(tmp_path):
    items = make_items(tmp_path, n_people=4, per_person=1)
    frames = {it.media.stem: 1 + i for i, it in enumerate(items)}
    cache = fake_cache(tmp_path / "cache", frames)
    summary = write_expression_tree(items, cache, tmp_path / "tree", folds=2, seed=0)
    assert sum(summary.frames.values()) == sum(frames.values())
    data = ClipDataset(cache, tmp_path / "tree", SPLITS[0], [Task.EXPR], ENCODER, clip_len=1,
                       stride=1)
    labels = {it.media.stem: it.label for it in items}
    assert len(data) == sum(frames[v] for v in summary.videos[SPLITS[0]])
    assert all(int(data[i]["labels"]["EXPR"][0]) == labels[data[i]["video"]]
               for i in range(len(data)))


def test_missing_record_and_bad_fold(tmp_path):
    items = make_items(tmp_path, n_people=3, per_person=2)
    cache = fake_cache(tmp_path / "cache", {items[0].media.stem: 1})
    with pytest.raises(InputError, match=r"P0_0001.jpg: no preprocessed record 'P0_0001'.*"
                       r"5 of 6 items lack one"):
        write_expression_tree(items, cache, tmp_path / "tree", folds=2)
    with pytest.raises(WildaffectError, match="validation fold must be in 0..1"):
        write_expression_tree(items, cache, tmp_path / "tree", folds=2, validation_fold=2)
    with pytest.raises(WildaffectError, match="folds must be between 2 and the number"):
        write_expression_tree(items, cache, tmp_path / "tree", folds=4, validation_fold=0)


def test_cli_import_expression(tmp_path):
    rows = [f"P{p}_{i:04d}.jpg,{EXPR_NAMES[(p + i) % 3]},x" for p in range(6) for i in range(2)]
    path = write_csv(tmp_path / "faces", rows + ["P0_0000.jpg,Fear,fear"])
    names = [r.split(",")[0][:-4] for r in rows if not r.startswith("P0_0000")]
    fake_cache(tmp_path / "cache", dict.fromkeys(names, 1))
    result = CliRunner().invoke(app, [
        "data", "import-expression", str(path), "--cache", str(tmp_path / "cache"),
        "--out", str(tmp_path / "tree"), "--folds", "2", "--validation-fold", "1",
    ])
    assert result.exit_code == 0, result.output
    assert "dropped (conflicting duplicate labels): P0_0000.jpg" in result.output
    index = scan_dataset(tmp_path / "tree", Task.EXPR)
    assert sorted(v for s in SPLITS for v in index.videos(Task.EXPR, s)) == sorted(names)


def test_real_faces_expression_labels(shared_data):
    items, dropped = read_faces_expression(shared_data / "faces-expression" / "labels.csv")
    assert dropped == ["Avinash_30.jpg"]
    assert len(items) == 3805
    assert len({it.group for it in items}) == 1873
    assert sum(it.label == HAPPY for it in items) == 1500
