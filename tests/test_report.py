"""Report rendering on the real CREMA-D demo clip: timeline PNG, overlay MP4, rich summary.

There is no trained model here: the prediction table is made from a seeded RNG (a helper
below), the face geometry comes from the real face pipeline run on the clip.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from wildaffect.data.cache import FeatureCache
from wildaffect.errors import InputError, WildaffectError
from wildaffect.io.media import iter_frames
from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_NAMES
from wildaffect.predict.table import COLUMNS as PREDICTION_COLUMNS
from wildaffect.preprocess import preprocess_file
from wildaffect.report import overlay, plot_timeline, summarise, write_overlay
from wildaffect.report.style import BOX_RGB
from wildaffect.report.timeline import DPI, FIGSIZE, MAX_COLUMNS, _bin_mean, _bins

DEMO = Path(__file__).resolve().parents[1] / "src" / "wildaffect" / "assets" / "demo"
CLIP = DEMO / "1001_DFA_HAP_XX.flv"  # 56 frames, 480x360
N_FRAMES, WIDTH, HEIGHT = 56, 480, 360
PNG_SHAPE = (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI))  # (H, W)
GAP_GREY = 217  # matplotlib "0.85", the heat map's no-face colour


def make_table(
    n: int, seed: int = 0, no_face: slice | None = None, audio_only: bool = False
) -> pd.DataFrame:
    """A prediction table with deterministic values: Happiness favoured, AU12 high."""
    rng = np.random.default_rng(seed)
    au = rng.random((n, len(AU_NAMES)))  # (T, 12)
    au[:, AU_NAMES.index("AU12")] = 0.8 + 0.2 * rng.random(n)
    logits = rng.normal(size=(n, len(EXPR_NAMES)))  # (T, 8)
    logits[:, EXPR_NAMES.index("Happiness")] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    va = np.tanh(rng.normal(0.3, 0.5, size=(n, 2)))  # (T, 2)
    table = pd.DataFrame(
        {"frame": np.arange(1, n + 1), "time_s": np.arange(n) / 29.97, "face": np.ones(n, int)}
    )
    table[list(AU_NAMES)] = au
    table[list(EXPR_NAMES)] = probs
    table["expression"] = np.asarray(EXPR_NAMES)[probs.argmax(axis=1)]
    table[list(VA_NAMES)] = va
    empty = [c for c in PREDICTION_COLUMNS if c not in ("frame", "time_s", "face")]
    if audio_only:
        table["face"] = 0
        table[list(AU_NAMES)] = np.nan
    elif no_face is not None:
        rows = table.index[no_face]
        table.loc[rows, "face"] = 0
        table.loc[rows, empty] = np.nan
    return table[list(PREDICTION_COLUMNS)]


@pytest.fixture(scope="module")
def geometry(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """(56, 4) boxes and (56, 68, 2) landmarks of the demo clip, from the real face pipeline."""
    cache = FeatureCache(tmp_path_factory.mktemp("cache"))
    result = preprocess_file(CLIP, cache, crops="none")
    arrays = cache.read_arrays(result.video, ["bbox", "landmarks68_px"])
    return arrays["bbox"], arrays["landmarks68_px"]


@pytest.fixture(scope="module")
def source_frames() -> list[np.ndarray]:
    return [frame.image for frame in iter_frames(CLIP)]


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} does not decode"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _heat_map_region(image: np.ndarray) -> np.ndarray:
    """The middle of the top panel (the AU heat map), away from labels and colour bar."""
    h, w = image.shape[:2]
    return image[int(0.12 * h) : int(0.45 * h), int(0.12 * w) : int(0.75 * w)]


def _decode(path: Path) -> tuple[str, list[np.ndarray], bool]:
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context.name
        has_audio = bool(container.streams.audio)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return codec, frames, has_audio


# --------------------------------------------------------------------------------------------
# Timeline.


def test_timeline_png_has_the_figure_size_and_shows_the_no_face_gap(tmp_path):
    gap = _read_png(plot_timeline(make_table(N_FRAMES, no_face=slice(20, 30)), tmp_path / "g.png"))
    assert gap.shape[:2] == PNG_SHAPE
    grey = (_heat_map_region(gap) == GAP_GREY).all(axis=-1)
    assert grey.mean() > 0.05  # 10 of 56 frames without a face: a visible grey band
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic writer left nothing behind


def test_timeline_of_one_frame_and_of_audio_only(tmp_path):
    one = _read_png(plot_timeline(make_table(1), tmp_path / "one.png"))
    audio = _read_png(plot_timeline(make_table(100, audio_only=True), tmp_path / "audio.png"))
    assert one.shape[:2] == audio.shape[:2] == PNG_SHAPE
    colours = lambda image: len(np.unique(_heat_map_region(image).reshape(-1, 3), axis=0))
    assert colours(one) > 5  # 12 AU colours fill the heat map
    assert not (_heat_map_region(one) == GAP_GREY).all(axis=-1).any()  # a face: no gap colour
    region = _heat_map_region(audio)
    assert (region == 255).all(axis=-1).mean() > 0.9  # no heat map, only the "no face" note
    assert (region < 128).all(axis=-1).any()  # ... which is written there


def test_timeline_of_an_hour_is_drawn_from_bounded_bins(tmp_path):
    n = 30 * 3600
    bins = _bins(n, MAX_COLUMNS)
    assert bins[-1] + 1 == MAX_COLUMNS and np.all(np.diff(bins) >= 0)
    values = np.array([[0.2], [np.nan], [0.4], [np.nan]])
    np.testing.assert_allclose(_bin_mean(values, np.array([0, 0, 0, 1]), 2)[:, 0], [0.3, np.nan])
    image = _read_png(
        plot_timeline(make_table(n, no_face=slice(40_000, 50_000)), tmp_path / "h.png")
    )
    assert image.shape[:2] == PNG_SHAPE
    assert (_heat_map_region(image) == GAP_GREY).all(axis=-1).mean() > 0.05


# --------------------------------------------------------------------------------------------
# Overlay.


def _assert_box_drawn(drawn: np.ndarray, source: np.ndarray, box: np.ndarray) -> None:
    """A pixel on the left border of ``box`` is the box's colour, unlike the source pixel;
    a corner far from every drawing keeps the source picture."""
    x0, y0, _, y1 = (round(float(v)) for v in box)
    y = (y0 + y1) // 2
    pixel, before = drawn[y, x0].astype(int), source[y, x0].astype(int)
    assert np.abs(pixel - np.array(BOX_RGB)).max() < 60, (pixel, BOX_RGB)
    assert np.abs(pixel - before).sum() > 120, (pixel, before)
    corner = np.abs(drawn[-20:, -20:].astype(int) - source[-20:, -20:].astype(int))
    assert corner.mean() < 10


def test_overlay_mp4_has_every_frame_the_source_size_and_the_drawn_box(
    tmp_path, geometry, source_frames
):
    boxes, landmarks = geometry
    out = write_overlay(CLIP, make_table(N_FRAMES), boxes, landmarks, tmp_path / "o.mp4")
    codec, frames, has_audio = _decode(out)
    assert codec == "h264"  # libx264 is in this PyAV build
    assert has_audio  # the clip's speech is kept
    assert len(frames) == N_FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)
    for index in (0, 30, 55):
        _assert_box_drawn(frames[index], source_frames[index], boxes[index])


def test_overlay_falls_back_to_the_next_encoder(tmp_path, geometry, source_frames, monkeypatch):
    with pytest.raises(WildaffectError, match="none of the video encoders"):
        overlay.pick_encoder(("no-such-encoder",))
    monkeypatch.setattr(overlay, "VIDEO_ENCODERS", ("no-such-encoder", "mpeg4"))
    boxes, landmarks = geometry
    table = make_table(N_FRAMES, no_face=slice(40, None))
    boxes, landmarks = boxes.copy(), landmarks.copy()
    boxes[40:], landmarks[40:] = np.nan, np.nan
    out = write_overlay(CLIP, table, boxes, landmarks, tmp_path / "o.mp4", fps=10)
    codec, frames, has_audio = _decode(out)
    assert codec == "mpeg4" and not has_audio  # re-timed at 10 fps: audio left out
    assert len(frames) == N_FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)
    _assert_box_drawn(frames[5], source_frames[5], boxes[5])
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == 10


@pytest.mark.parametrize("n_rows", [N_FRAMES - 1, N_FRAMES + 1])
def test_overlay_refuses_a_table_of_another_length(tmp_path, geometry, n_rows):
    boxes, landmarks = geometry
    boxes = np.resize(boxes, (n_rows, 4))
    landmarks = np.resize(landmarks, (n_rows, 68, 2))
    target = tmp_path / "o.mp4"
    with pytest.raises(
        InputError, match=rf"{CLIP.name}: has .*frames but the prediction table has {n_rows} rows"
    ):
        write_overlay(CLIP, make_table(n_rows), boxes, landmarks, target)
    assert not target.exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_overlay_refuses_geometry_that_does_not_match_the_table(tmp_path, geometry):
    boxes, landmarks = geometry
    with pytest.raises(WildaffectError, match="face geometry does not match"):
        write_overlay(CLIP, make_table(N_FRAMES), boxes[:10], landmarks, tmp_path / "o.mp4")


def test_overlay_of_an_image_is_a_png_and_audio_has_none(tmp_path, fixtures_dir):
    photo = fixtures_dir / "media" / "single_face.jpg"  # 572x562
    (source,) = [frame.image for frame in iter_frames(photo)]
    box = np.array([[150.0, 120.0, 420.0, 440.0]])
    out = write_overlay(photo, make_table(1), box, np.full((1, 68, 2), np.nan), tmp_path / "p.mp4")
    assert out == tmp_path / "p.png"
    drawn = _read_png(out)
    assert drawn.shape == source.shape
    _assert_box_drawn(drawn, source, box[0])
    speech = fixtures_dir / "media" / "1002_DFA_HAP_XX.mp3"
    with pytest.raises(InputError, match="audio only"):
        write_overlay(
            speech,
            make_table(5, audio_only=True),
            np.full((5, 4), np.nan),
            np.full((5, 68, 2), np.nan),
            tmp_path / "a.mp4",
        )


# --------------------------------------------------------------------------------------------
# Summary.


def _render(renderable) -> str:
    console = Console(record=True, width=120)
    console.print(renderable)
    return console.export_text()


def test_summary_of_a_video_table():
    table = make_table(N_FRAMES, no_face=slice(50, None))
    text = _render(summarise(table))
    faces = table[table["face"] == 1]
    share = (faces["expression"] == "Happiness").mean()
    assert "frames with a face" in text and "50 (89%)" in text
    assert f"Happiness ({share:.0%} of face frames)" in text
    assert f"{faces['valence'].mean():+.2f}" in text and f"{faces['arousal'].mean():+.2f}" in text
    assert "AU12" in text.split("most active AUs")[1].split(",")[0]  # highest mean first
    assert "audio only" not in text


def test_summary_of_audio_only_says_so():
    text = _render(summarise(make_table(40, audio_only=True)))
    assert "audio only" in text and "frames with a face" not in text
    assert "of estimated frames" in text and "n/a (audio only)" in text


def test_overlay_of_an_odd_sized_video_is_padded_to_even(tmp_path):
    """yuv420p H.264 needs even sizes: a 101x75 source gives a 102x76 overlay."""
    source = tmp_path / "odd.mkv"
    rng = np.random.default_rng(1)
    with av.open(str(source), mode="w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 101, 75, "yuv444p"
        for _ in range(5):
            image = rng.integers(0, 255, (75, 101, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    boxes = np.tile([[20.0, 10.0, 80.0, 60.0]], (5, 1))
    out = write_overlay(
        source, make_table(5), boxes, np.full((5, 68, 2), np.nan), tmp_path / "o.mp4"
    )
    _, frames, has_audio = _decode(out)
    assert len(frames) == 5 and frames[0].shape == (76, 102, 3) and not has_audio
