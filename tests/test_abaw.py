"""ABAW annotation parsing, tree layout and frame lookup (wildaffect.data.abaw)."""

from __future__ import annotations

import numpy as np
import pytest
from abaw_tree import build_abaw_tree, task_dir

from wildaffect.data.abaw import (
    AnnotationRoot,
    Layout,
    _parse_fast,
    audio_video_name,
    find_annotation_root,
    find_frames_dir,
    frame_path,
    frames_present,
    parse_annotation,
    parse_annotation_bytes,
    parse_annotation_reference,
    scan_dataset,
)
from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import CROPPED_DIR, SPLITS, TASK_SPECS, Task

AU_HEADER = TASK_SPECS[Task.AU].header
EXPR_HEADER = TASK_SPECS[Task.EXPR].header
VA_HEADER = TASK_SPECS[Task.VA].header


def parse_both(data: bytes, task: Task):
    """Parse with the public entry and with the reference; they must agree."""
    values, valid = parse_annotation_bytes(data, task, "f.txt")
    ref_values, ref_valid = parse_annotation_reference(data, task, "f.txt")
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(valid, ref_valid)
    assert values.dtype == ref_values.dtype
    return values, valid


# ------------------------------------------------------------------ trees in both layouts


@pytest.mark.parametrize("layout", ["challenge", "legacy"])
def test_tree_round_trip(tmp_path, layout):
    tree = build_abaw_tree(tmp_path, layout=layout, n_frames={"1-30-1280x720": 7,
                           "2-30-640x360_left": 9, "2-30-640x360_right": 9, "3-25-1920x1080": 5})
    index = scan_dataset(tmp_path)
    assert index.layout is Layout(layout)
    assert index.tasks == list(Task)
    assert len(index) == len(tree.labels) == 3 * 4
    for entry in index:
        labels = parse_annotation(entry.path, entry.task)
        values, valid = tree.labels[(entry.task, entry.split, entry.video)]
        assert labels.video == entry.video and labels.task is entry.task
        np.testing.assert_array_equal(labels.values, values)
        np.testing.assert_array_equal(labels.valid, valid)
        assert labels.n_frames == tree.n_frames[entry.video]
        assert labels.frame_names[0] == "00001.jpg"
        assert labels.frame_names[-1] == f"{labels.n_frames:05d}.jpg"
        assert not labels.valid.all(), "the builder writes some invalid rows"
    assert index.videos(Task.AU, SPLITS[0]) == tree.videos(Task.AU, SPLITS[0])


def test_value_shapes_and_dtypes(tmp_path):
    tree = build_abaw_tree(tmp_path, n_frames=6)
    video = "3-25-1920x1080"
    au = parse_annotation(tree.paths[(Task.AU, SPLITS[1], video)], Task.AU)
    expr = parse_annotation(tree.paths[(Task.EXPR, SPLITS[1], video)], "EXPR")
    va = parse_annotation(tree.paths[(Task.VA, SPLITS[1], video)], Task.VA)
    assert au.values.shape == au.valid.shape == (6, 12) and au.values.dtype == np.float32
    assert expr.values.shape == expr.valid.shape == (6,) and expr.values.dtype == np.int64
    assert va.values.shape == va.valid.shape == (6, 2) and va.values.dtype == np.float32
    assert au.valid.dtype == expr.valid.dtype == va.valid.dtype == bool


def test_legacy_annotations_folder_given_directly(tmp_path):
    build_abaw_tree(tmp_path, layout="legacy", tasks=[Task.VA])
    found = find_annotation_root(tmp_path / "annotations")
    assert isinstance(found, AnnotationRoot)
    assert found.layout is Layout.LEGACY and list(found.task_dirs) == [Task.VA]


def test_crlf_tree(tmp_path):
    tree = build_abaw_tree(tmp_path, line_ending="\r\n", tasks=[Task.AU, Task.VA])
    for key, path in tree.paths.items():
        assert b"\r\n" in path.read_bytes()
        np.testing.assert_array_equal(parse_annotation(path, key[0]).values, tree.labels[key][0])


def test_speaker_pair_shares_audio():
    assert audio_video_name("2-30-640x360_left") == "2-30-640x360"
    assert audio_video_name("2-30-640x360_right") == "2-30-640x360"
    assert audio_video_name("video_leftover") == "video_leftover"
    assert audio_video_name("1-30-1280x720") == "1-30-1280x720"


# ------------------------------------------------------------------ tolerated variants


def test_tolerated_encoding_details():
    body = "0.5,-0.25\n-5,-5.0\n1,-1\n"
    variants = [
        VA_HEADER + "\n" + body,
        VA_HEADER + "\n" + body.rstrip("\n"),  # no final newline
        (VA_HEADER + "\n" + body).replace("\n", "\r\n"),
        (VA_HEADER + "\n" + body).replace("\n", "\r"),  # old Mac endings
        "\ufeff" + VA_HEADER + "\n" + body,  # UTF-8 BOM
        " Valence ,\tAROUSAL \n 0.5 ,\t-0.25\n-5.00 , -5e0\n+1., -1.0\n",
        VA_HEADER + "\n" + body + "\n \n\t\n",  # trailing blank lines
    ]
    for text in variants:
        values, valid = parse_both(text.encode("utf-8"), Task.VA)
        np.testing.assert_array_equal(values, np.float32([[0.5, -0.25], [-5, -5], [1, -1]]))
        np.testing.assert_array_equal(valid, [[True, True], [False, False], [True, True]])


def test_va_validity_is_per_dimension():
    values, valid = parse_both(f"{VA_HEADER}\n-5,0.3\n0.2,-5.0\n".encode(), Task.VA)
    np.testing.assert_array_equal(valid, [[False, True], [True, False]])
    assert values[0, 1] == np.float32(0.3) and values[1, 0] == np.float32(0.2)


def test_expr_accepts_integral_floats():
    values, valid = parse_both(f"{EXPR_HEADER}\n3.0\n-1.0\n7\n0\n".encode(), Task.EXPR)
    np.testing.assert_array_equal(values, [3, -1, 7, 0])
    np.testing.assert_array_equal(valid, [True, False, True, True])


def test_au_markers_and_float_spellings():
    lines = ["1.0," + ",".join(["0"] * 11), ",".join(["-1.0"] * 12), ",".join(["-1"] * 12)]
    values, valid = parse_both((AU_HEADER + "\n" + "\n".join(lines)).encode(), Task.AU)
    assert values[0, 0] == 1 and values[0, 1:].sum() == 0
    np.testing.assert_array_equal(valid.sum(axis=1), [12, 0, 0])


def test_fast_path_takes_a_large_file():
    rng = np.random.default_rng(0)
    rows = rng.integers(-1, 2, (20_000, 12))
    data = (AU_HEADER + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n").encode()
    fast = _parse_fast(data, Task.AU)
    assert fast is not None, "a valid file must not need the slow path"
    np.testing.assert_array_equal(fast[0], rows.astype(np.float32))
    ref = parse_annotation_reference(data, Task.AU)
    np.testing.assert_array_equal(fast[0], ref[0])
    np.testing.assert_array_equal(fast[1], rows != -1)


# ------------------------------------------------------------------ malformed files

AU_ROW = ",".join(["0"] * 12)

MALFORMED = [
    # (id, task, bytes, line, substring of the reason)
    ("empty", Task.VA, b"", None, "empty file"),
    ("whitespace only", Task.VA, b" \n\r\n", None, "empty file"),
    ("header only", Task.VA, b"valence,arousal\n", 1, "no frame lines"),
    ("wrong header", Task.VA, b"valence,dominance\n0,0\n", 1, "expected 'valence,arousal'"),
    ("AU header in VA file", Task.VA, (AU_HEADER + "\n" + AU_ROW).encode(), 1,
     "expected 'valence,arousal'"),
    ("header wrong order", Task.AU,
     ("AU2,AU1," + ",".join(TASK_SPECS[Task.AU].columns[2:]) + "\n" + AU_ROW).encode(), 1,
     "expected 'AU1,AU2,AU4"),
    ("too many values", Task.VA, b"valence,arousal\n0,0\n0,0,0\n", 3, "found 3"),
    ("too few values", Task.AU, (AU_HEADER + "\n" + AU_ROW + "\n0,1\n").encode(), 3,
     "expected 12 value(s) per line, found 2"),
    ("expr with 8 columns", Task.EXPR, (EXPR_HEADER + "\n0,0,0,1,0,0,0,0\n").encode(), 2,
     "expected 1 value(s)"),
    ("trailing comma", Task.VA, b"valence,arousal\n0.1,0.2,\n", 2, "found 3"),
    ("blank line inside", Task.VA, b"valence,arousal\n0,0\n\n0,0\n", 3, "blank line"),
    ("non numeric", Task.VA, b"valence,arousal\n0,0\n0,0\n0,abc\n", 4,
     "arousal: 'abc' is not a number"),
    ("empty cell", Task.VA, b"valence,arousal\n,0.1\n", 2, "valence: '' is not a number"),
    ("nan", Task.VA, b"valence,arousal\n0,0\nNaN,0\n", 3, "is not a finite number"),
    ("inf", Task.VA, b"valence,arousal\n0,-inf\n", 2, "is not a finite number"),
    ("overflow", Task.VA, b"valence,arousal\n0,1e400\n", 2, "is not a finite number"),
    ("underscore", Task.VA, b"valence,arousal\n1_0,0\n", 2, "is not a number"),
    ("quoted", Task.VA, b'valence,arousal\n"0.5",0\n', 2, "is not a number"),
    ("va out of range", Task.VA, b"valence,arousal\n0,0\n0,1.01\n", 3,
     "arousal is '1.01'; expected a value in [-1, 1] or -5"),
    ("va wrong marker", Task.VA, b"valence,arousal\n-1.5,0\n", 2, "valence is '-1.5'"),
    ("au value 2", Task.AU, (AU_HEADER + "\n" + AU_ROW + "\n0,0,2" + ",0" * 9).encode(), 3,
     "AU4 is '2'; expected 0, 1 or -1"),
    ("au value 0.5", Task.AU, (AU_HEADER + "\n0.5" + ",0" * 11).encode(), 2, "AU1 is '0.5'"),
    ("au marker -5", Task.AU, (AU_HEADER + "\n-5" + ",0" * 11).encode(), 2, "AU1 is '-5'"),
    ("expr 3.5", Task.EXPR, (EXPR_HEADER + "\n1\n3.5\n").encode(), 3, "'3.5' is not an integer"),
    ("expr 8", Task.EXPR, (EXPR_HEADER + "\n8\n").encode(), 2, "'8' is not one of 0..7 or -1"),
    ("expr -5", Task.EXPR, (EXPR_HEADER + "\n-5\n").encode(), 2, "is not one of 0..7"),
    ("bad utf8 header", Task.VA, b"val\xe9nce,arousal\n0,0\n", 1, "not valid UTF-8 (byte 0xe9"),
    ("bad utf8 body", Task.VA, b"valence,arousal\r\n0,0\r\n0,0\r\n0,\xff0\r\n", 4,
     "not valid UTF-8 (byte 0xff at column 3)"),
    ("latin-1 file", Task.EXPR, (EXPR_HEADER + "\n1\n2 \xa0\n").encode("latin-1"), 3,
     "not valid UTF-8"),
    ("crlf line numbers", Task.VA, b"valence,arousal\r\n0,0\r\n0,0\r\n0,0\r\n0,9\r\n", 5,
     "arousal is '9'"),
    ("bom then error", Task.VA, b"\xef\xbb\xbfvalence,arousal\n2,0\n", 2, "valence is '2'"),
    ("second bom", Task.VA, b"\xef\xbb\xbf\xef\xbb\xbfvalence,arousal\n0,0\n", 1, "header is"),
    ("nul byte", Task.VA, b"valence,arousal\n0,\x000\n", 2, "is not a number"),
]


@pytest.mark.parametrize("task,data,line,reason", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_file_names_the_line(tmp_path, task, data, line, reason):
    path = tmp_path / "video.txt"
    path.write_bytes(data)
    with pytest.raises(InputError) as caught:
        parse_annotation(path, task)
    err = caught.value
    assert err.line == line
    assert reason in err.reason
    where = f"{path}:{line}" if line is not None else str(path)
    assert str(err).startswith(f"{where}: ")
    assert _parse_fast(data, task) is None
    with pytest.raises(InputError) as again:
        parse_annotation_reference(data, task, path)
    assert str(again.value) == str(err)


def test_first_error_wins():
    data = b"valence,arousal\n0,0\n0,7\nabc,0\n"
    with pytest.raises(InputError) as caught:
        parse_annotation_bytes(data, Task.VA, "f.txt")
    assert caught.value.line == 3


def test_unreadable_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        parse_annotation(tmp_path / "missing.txt", Task.AU)


def test_every_frame_line_is_a_row():
    n = 1000
    data = (VA_HEADER + "\n" + "\n".join("-5,-5" if i % 7 else "0.1,0.2" for i in range(n)))
    values, valid = parse_both(data.encode(), Task.VA)
    assert len(values) == n and valid[:, 0].sum() == len(range(0, n, 7))


# ------------------------------------------------------------------ tree errors


def test_root_errors(tmp_path):
    with pytest.raises(WildaffectError, match="not a directory"):
        scan_dataset(tmp_path / "nope")
    (tmp_path / "something").mkdir()
    with pytest.raises(WildaffectError, match="no ABAW annotations found"):
        scan_dataset(tmp_path)


def test_missing_split_is_an_error(tmp_path):
    build_abaw_tree(tmp_path, tasks=[Task.AU])
    for path in (task_dir(tmp_path, Task.AU, "challenge") / SPLITS[1]).iterdir():
        path.unlink()
    with pytest.raises(WildaffectError, match=r"Validation_Set: no \.txt annotation files"):
        scan_dataset(tmp_path)
    (task_dir(tmp_path, Task.AU, "challenge") / SPLITS[1]).rmdir()
    with pytest.raises(WildaffectError, match="missing the Validation_Set/ folder"):
        scan_dataset(tmp_path)


def test_hidden_and_other_files_are_ignored(tmp_path):
    tree = build_abaw_tree(tmp_path, tasks=[Task.EXPR])
    folder = task_dir(tmp_path, Task.EXPR, "challenge") / SPLITS[0]
    (folder / "._1-30-1280x720.txt").write_bytes(b"\x00\x05\x16\x07\xff")  # macOS fork
    (folder / "notes.md").write_text("not a label file")
    index = scan_dataset(tmp_path)
    assert [f.path for f in index] == sorted(tree.paths.values(), key=lambda p: (
        p.parent.name, p.name))


def test_task_filter(tmp_path):
    build_abaw_tree(tmp_path, tasks=[Task.AU, Task.VA])
    index = scan_dataset(tmp_path, task="VA")
    assert {f.task for f in index} == {Task.VA}
    assert len(index.select(split=SPLITS[0])) == 3
    with pytest.raises(WildaffectError, match=r"no EXPR annotations \(EXPR_Recognition_Challenge/"):
        scan_dataset(tmp_path, task=Task.EXPR)


# ------------------------------------------------------------------ frames


def test_frames_present_matches_the_jpegs_written(tmp_path):
    tree = build_abaw_tree(tmp_path, with_frames=True, n_frames=15, missing_frame_rate=0.3)
    frames_dir = find_frames_dir(tmp_path)
    assert frames_dir == tmp_path / CROPPED_DIR
    some_missing = False
    for video, expected in tree.frames_present.items():
        present = frames_present(frames_dir, video, 15)
        np.testing.assert_array_equal(present, expected)
        some_missing |= not expected.all()
        for i in range(15):
            assert frame_path(frames_dir, video, i).is_file() == expected[i]
    assert some_missing
    # annotation longer than the folder: extra rows have no image; unknown video: none
    assert frames_present(frames_dir, "1-30-1280x720", 20)[15:].sum() == 0
    assert not frames_present(frames_dir, "no-such-video", 4).any()


def test_frame_path_and_frames_dir(tmp_path):
    assert frame_path(tmp_path, "v_left", 0) == tmp_path / "v_left" / "00001.jpg"
    assert frame_path(tmp_path, "v", 41) == tmp_path / "v" / "00042.jpg"
    with pytest.raises(ValueError):
        frame_path(tmp_path, "v", -1)
    assert find_frames_dir(tmp_path) is None
    (tmp_path / CROPPED_DIR).mkdir()
    assert find_frames_dir(tmp_path / "annotations") == tmp_path / CROPPED_DIR  # beside it
    assert find_frames_dir(tmp_path, tmp_path) == tmp_path
    with pytest.raises(WildaffectError, match="frames folder not found"):
        find_frames_dir(tmp_path, tmp_path / "missing")
