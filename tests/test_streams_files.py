"""Behaviour-feature and transcript files: parsing, resampling onto frames, and the one-line
errors that name a malformed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wildaffect.errors import InputError
from wildaffect.streams import BEHAVIOUR, TEXT, VAD, model_streams
from wildaffect.streams.behaviour import read_behaviour, resample
from wildaffect.streams.transcripts import Segment, read_transcript, segments_on_frames

FRAMES = np.arange(10) * 0.1 + 0.5  # 10 frames at 10 fps, the first at 0.5 s (absolute time)

SRT = """1
00:00:00,150 --> 00:00:00,420
Hello <i>there</i>

2
00:00:00,600 --> 00:00:00,800
General
Kenobi
"""
VTT = """WEBVTT

NOTE a comment --> not a cue

intro
00:00.150 --> 00:00.420 align:start
<v Speaker>Hello there

00:00.600 --> 00:00.800
General Kenobi
"""


def test_srt_vtt_and_csv_give_the_same_segments(tmp_path: Path) -> None:
    expected = [Segment(0.15, 0.42, "Hello there"), Segment(0.6, 0.8, "General Kenobi")]
    (tmp_path / "a.srt").write_text(SRT)
    (tmp_path / "a.vtt").write_text(VTT)
    (tmp_path / "a.csv").write_text('start,end,text\n0.15,0.42,Hello there\n0.6,0.8,"General Kenobi"\n')
    for suffix in (".srt", ".vtt", ".csv"):
        assert read_transcript(tmp_path / f"a{suffix}") == expected, suffix
    (tmp_path / "h.srt").write_text("1\n01:02:03,5 --> 01:02:04,250\nhi\n")
    assert read_transcript(tmp_path / "h.srt") == [Segment(3723.5, 3724.25, "hi")]


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("back.srt", "1\n00:00:02,000 --> 00:00:01,000\nx\n", "ends"),
        ("bad.srt", "1\n00:00:xx,000 --> 00:00:01,000\nx\n", "malformed cue times"),
        ("empty.vtt", "WEBVTT\n\n", "no timed text"),
        ("cols.csv", "begin,end,text\n0,1,x\n", "missing start"),
        ("nan.csv", "start,end,text\n0,1,x\n2,abc,y\n", "end >= start"),
    ],
)
def test_malformed_transcripts_are_one_line_naming_the_file(tmp_path, name, text, says) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=says) as err:
        read_transcript(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_segments_on_frames_average_overlaps_and_leave_the_rest_nan() -> None:
    # Frames (relative) cover [0, .1), [.1, .2), ... [.9, 1.0).
    segments = [Segment(0.15, 0.42, "a"), Segment(0.35, 0.38, "b"), Segment(0.65, 0.65, "c"),
                Segment(5.0, 6.0, "after the video")]  # fmt: skip
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [4.0, 4.0], [9.0, 9.0]])
    out = segments_on_frames(segments, embeddings, FRAMES)
    assert out.shape == (10, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], [1, 0])  # [.1, .2) overlaps a
    np.testing.assert_array_equal(out[3], [0.5, 0.5])  # [.3, .4): a and b
    np.testing.assert_array_equal(out[4], [1, 0])  # [.4, .5): a ends at .42
    np.testing.assert_array_equal(out[6], [4, 4])  # the instant .65 lies in frame 6
    assert np.isnan(out[[0, 5, 7, 8, 9]]).all()


def test_behaviour_csv_is_interpolated_in_time_and_masked_outside(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("time_s,f0,f1\n0.22,0,10\n0.42,2,10\n0.62,4,30\n")
    out = read_behaviour(path, FRAMES)
    assert out.shape == (10, 2)
    # relative frame times 0 .. 0.9; rows every 0.2 s: frames within 0.1 s of [.22, .62] count
    assert np.isnan(out[[0, 1, 8, 9]]).all() and np.isfinite(out[2:8]).all()
    np.testing.assert_allclose(out[2:8, 0], [0, 0.8, 1.8, 2.8, 3.8, 4], atol=1e-5)  # clamped
    np.testing.assert_allclose(out[5, 1], 18.0, atol=1e-5)
    assert np.isnan(resample(np.array([1.0]), np.ones((1, 3)), np.array([0.5, 1.0])))[0].all()


def test_behaviour_npy_on_the_frames(tmp_path: Path) -> None:
    values = np.random.default_rng(0).normal(size=(10, 4))
    np.save(tmp_path / "v.npy", values)
    np.testing.assert_allclose(read_behaviour(tmp_path / "v.npy", FRAMES, width=4), values,
                               rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "width", "says"),
    [
        ("short.npy", np.zeros((9, 4)), None, r"shape \(9, 4\), expected \(10, D\)"),
        ("flat.npy", np.zeros(10), None, "expected"),
        ("wide.npy", np.zeros((10, 5)), 4, "5 features per row.*have 4"),
        ("nan.npy", np.where(np.eye(10, 4) > 0, np.nan, 0.0), None, "row 0 holds NaN"),
        ("huge.npy", np.full((10, 4), 1e6), None, "float16"),
        ("notime.csv", "t,f0\n0,1\n", None, "no 'time_s' column"),
        ("nanrow.csv", "time_s,f0\n0,1\n0.1,\n", None, "row 1 holds NaN"),
        ("text.csv", "time_s,f0\n0,1\n0.1,abc\n", None, "row 1"),
        ("order.csv", "time_s,f0\n0.2,1\n0.1,2\n", None, "must increase"),
    ],
)
def test_malformed_behaviour_files_are_one_line_naming_the_file(
    tmp_path, name, content, width, says
) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        np.save(path, content)
    with pytest.raises(InputError, match=says) as err:
        read_behaviour(path, FRAMES, width)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_model_streams_follow_the_config_and_the_overrides() -> None:
    from wildaffect.models.registry import get_config

    grada, maven = get_config("va-grada-moe"), get_config("maven")
    assert model_streams(grada) == (VAD.key, BEHAVIOUR.key)
    assert model_streams(grada, has_audio=False) == (BEHAVIOUR.key,)
    assert model_streams(grada, {"d_behaviour": 0, "vad_gate": False}) == ()
    assert model_streams(maven) == (TEXT.key,)
    assert model_streams(get_config("abaw-full")) == ()
