"""ABAW ``predictions.txt`` writer and reader (wildaffect.io.submission)."""

from __future__ import annotations

import numpy as np
import pytest
from abaw_tree import build_abaw_tree

from wildaffect.data.abaw import parse_annotation, parse_annotation_bytes, scan_dataset
from wildaffect.errors import InputError
from wildaffect.io.submission import (
    read_sample_locations,
    read_submission,
    submission_header,
    write_submission,
)
from wildaffect.labels import SPLITS, TASK_SPECS, Task

LENGTHS = {"vid_a": 7, "vid_b_left": 5, "vid_b_right": 5, "10-60-1280x720": 3}


def random_predictions(task: Task, rng: np.random.Generator, lengths=LENGTHS):
    out = {}
    for video, n in lengths.items():
        if task is Task.AU:
            out[video] = rng.integers(0, 2, (n, 12))
        elif task is Task.EXPR:
            out[video] = rng.integers(0, 8, n)
        else:
            out[video] = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    return out


def write_sample(path, task: Task, locations, dummy: str = "") -> None:
    width = 1 if task is Task.EXPR else len(TASK_SPECS[task].columns)
    rows = [f"{loc}," + ",".join([dummy] * width) for loc in locations]
    path.write_text(submission_header(task) + "\n" + "\n".join(rows) + "\n")


def all_locations(lengths=LENGTHS):
    return [f"{video}/{i:05d}.jpg" for video, n in lengths.items() for i in range(1, n + 1)]


@pytest.mark.parametrize("task", list(Task))
def test_round_trip(tmp_path, task):
    predictions = random_predictions(task, np.random.default_rng(0))
    path = write_submission(tmp_path / "predictions.txt", task, predictions)
    text = path.read_text()
    assert text.splitlines()[0] == submission_header(task)
    assert text.splitlines()[1].startswith("10-60-1280x720/00001.jpg,")  # sorted videos
    submission = read_submission(path, task)
    by_video = submission.by_video()
    assert set(by_video) == set(predictions)
    for video, values in predictions.items():
        names, got = by_video[video]
        assert names == [f"{i:05d}.jpg" for i in range(1, len(values) + 1)]
        np.testing.assert_array_equal(got, values)  # exact, floats included
        assert got.dtype == (np.float32 if task is Task.VA else np.int64)
    assert len(submission.locations) == sum(LENGTHS.values())


def test_headers():
    assert submission_header(Task.AU) == (
        "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26")
    assert submission_header(Task.EXPR) == (
        "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other")
    assert submission_header(Task.VA) == "image_location,valence,arousal"


@pytest.mark.parametrize("task", list(Task))
def test_order_follows_a_shuffled_sample(tmp_path, task):
    rng = np.random.default_rng(1)
    locations = all_locations()
    rng.shuffle(locations)
    sample = tmp_path / "sample.txt"
    write_sample(sample, task, locations, dummy="0")
    predictions = random_predictions(task, rng)
    path = write_submission(tmp_path / "predictions.txt", task, predictions, sample=sample)
    submission = read_submission(path, task)
    assert submission.locations == locations == read_sample_locations(sample, task)
    for location, values in zip(submission.locations, submission.values):
        video, frame = location.split("/")
        np.testing.assert_array_equal(values, predictions[video][int(frame[:5]) - 1])


def test_sample_with_empty_values_and_subset(tmp_path):
    sample = tmp_path / "sample.txt"
    write_sample(sample, Task.VA, ["vid_a/00003.jpg", "vid_b_left/00001.jpg"], dummy="")
    predictions = random_predictions(Task.VA, np.random.default_rng(2))
    path = write_submission(tmp_path / "p.txt", Task.VA, predictions, sample=sample)
    submission = read_submission(path, Task.VA)
    np.testing.assert_array_equal(submission.values,
                                  [predictions["vid_a"][2], predictions["vid_b_left"][0]])


def test_missing_prediction_names_the_sample_row(tmp_path):
    sample = tmp_path / "sample.txt"
    write_sample(sample, Task.AU, all_locations() + ["vid_a/00009.jpg"])
    predictions = random_predictions(Task.AU, np.random.default_rng(3))
    with pytest.raises(InputError) as caught:
        write_submission(tmp_path / "p.txt", Task.AU, predictions, sample=sample)
    assert caught.value.path == sample
    assert caught.value.line == sum(LENGTHS.values()) + 2
    assert "no prediction for frame 'vid_a/00009.jpg'" in str(caught.value)
    assert not (tmp_path / "p.txt").exists()

    write_sample(sample, Task.AU, ["unknown/00001.jpg"])
    for fill in (False, True):
        with pytest.raises(InputError, match="no prediction for video 'unknown/00001.jpg'"):
            write_submission(tmp_path / "p.txt", Task.AU, predictions, sample=sample, fill=fill)


def test_fill_takes_the_nearest_predicted_frame(tmp_path):
    # predictions for frames 2, 5 and 9 only (e.g. the frames where a face was found)
    names = {"v": ["00002.jpg", "00005.jpg", "00009.jpg"]}
    predictions = {"v": np.array([1, 5, 7])}
    sample = tmp_path / "sample.txt"
    write_sample(sample, Task.EXPR, [f"v/{i:05d}.jpg" for i in range(1, 12)])
    path = write_submission(tmp_path / "p.txt", Task.EXPR, predictions, sample=sample,
                            frame_names=names, fill=True)
    submission = read_submission(path, Task.EXPR)
    assert submission.locations == read_sample_locations(sample, Task.EXPR)
    got = submission.values
    #            frame: 1  2  3  4  5  6  7  8  9 10 11   (3.5 and 7 are ties -> earlier)
    np.testing.assert_array_equal(got, [1, 1, 1, 5, 5, 5, 5, 7, 7, 7, 7])
    assert path.read_text().splitlines()[1] == "v/00001.jpg,1"


def test_va_is_clipped_and_checked(tmp_path):
    path = write_submission(tmp_path / "p.txt", Task.VA, {"v": np.array([[1.5, -2.0], [0.25, 1]])})
    np.testing.assert_array_equal(read_submission(path, Task.VA).values, [[1, -1], [0.25, 1]])
    with pytest.raises(ValueError, match="NaN"):
        write_submission(tmp_path / "p.txt", Task.VA, {"v": np.array([[np.nan, 0.0]])})


@pytest.mark.parametrize("task,values,match", [
    (Task.AU, np.full((2, 12), 0.7), "must be integers"),
    (Task.AU, np.full((2, 12), 2), "must be in 0..1"),
    (Task.AU, np.zeros((2, 11), int), r"must be \(T, 12\)"),
    (Task.EXPR, np.array([0, 8]), "must be in 0..7"),
    (Task.EXPR, np.zeros((2, 8), int), r"must be \(T,\)"),
    (Task.VA, np.zeros(3), r"must be \(T, 2\)"),
])
def test_bad_prediction_arrays(tmp_path, task, values, match):
    with pytest.raises(ValueError, match=match):
        write_submission(tmp_path / "p.txt", task, {"v": values})


def test_reader_errors_name_the_line(tmp_path):
    path = tmp_path / "p.txt"
    cases = [
        ("image_location,valence\nv/00001.jpg,0\n", 1, "expected 'image_location,valence,ar"),
        ("image_location,valence,arousal\n", 1, "header only"),
        ("image_location,valence,arousal\nv/00001.jpg,0,0\nv/00001.jpg,0,0\n", 3,
         "already on line 2"),
        ("image_location,valence,arousal\nv/00001.jpg,0,0\n00002.jpg,0,0\n", 3,
         "is not <video>/<frame>"),
        ("image_location,valence,arousal\nv/00001.jpg\n", 2, "expected image_location and 2"),
        ("image_location,valence,arousal\nv/00001.jpg,0,0\nv/00002.jpg,0,1.5\n", 3,
         "arousal is '1.5'"),
        ("image_location,valence,arousal\nv/00001.jpg,0,0\nv/00002.jpg,-5,-5\n", 3,
         "invalid-label marker"),
        ("image_location,valence,arousal\nv/00001.jpg,0,0,0\n", 2, "found 3"),
    ]
    for text, line, reason in cases:
        path.write_text(text)
        with pytest.raises(InputError) as caught:
            read_submission(path, Task.VA)
        assert caught.value.line == line, text
        assert reason in caught.value.reason, (text, caught.value.reason)
    path.write_text(submission_header(Task.AU) + "\nv/00001.jpg" + ",-1" * 12 + "\n")
    with pytest.raises(InputError, match="invalid-label marker"):
        read_submission(path, Task.AU)


def test_written_file_parses_as_annotations(tmp_path):
    """Drop the image_location column: each video's rows are a valid annotation file."""
    for task in Task:
        predictions = random_predictions(task, np.random.default_rng(4))
        path = write_submission(tmp_path / f"{task.value}.txt", task, predictions)
        rows = path.read_text().splitlines()[1:]
        for video, values in predictions.items():
            body = [r.split(",", 1)[1] for r in rows if r.startswith(video + "/")]
            text = TASK_SPECS[task].header + "\n" + "\n".join(body) + "\n"
            parsed, valid = parse_annotation_bytes(text.encode(), task)
            assert valid.all()
            np.testing.assert_array_equal(parsed, values)


def test_frame_names_from_annotation_lengths(tmp_path):
    """Predictions sized by the validation annotations, written and read back."""
    build_abaw_tree(tmp_path / "abaw", tasks=[Task.AU], n_frames=6)
    rng = np.random.default_rng(5)
    labels = {f.video: parse_annotation(f.path, f.task)
              for f in scan_dataset(tmp_path / "abaw").select(Task.AU, SPLITS[0])}
    predictions = {v: rng.integers(0, 2, (lab.n_frames, 12)) for v, lab in labels.items()}
    path = write_submission(tmp_path / "out" / "predictions.txt", Task.AU, predictions,
                            frame_names={v: lab.frame_names for v, lab in labels.items()})
    for video, (names, values) in read_submission(path, Task.AU).by_video().items():
        assert names == labels[video].frame_names
        np.testing.assert_array_equal(values, predictions[video])


def test_write_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "predictions.txt"
    path.write_text("old content\n")
    write_submission(path, Task.EXPR, {"v": np.array([3, 4])})
    assert path.read_text() == submission_header(Task.EXPR) + "\nv/00001.jpg,3\nv/00002.jpg,4\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.txt"]  # no temp left
    sample = tmp_path / "sample.txt"
    write_sample(sample, Task.EXPR, ["v/00003.jpg"])
    with pytest.raises(InputError):
        write_submission(path, Task.EXPR, {"v": np.array([3, 4])}, sample=sample)
    assert path.read_text().endswith("v/00002.jpg,4\n"), "a failed write keeps the old file"
