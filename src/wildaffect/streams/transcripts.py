"""Transcript files (.srt, .vtt, or .csv with start,end,text) -> timed segments, and segment
embeddings -> per-frame embeddings on a record's frames (MAVEN's text stream, seed 003 ¶8).

Times are seconds from the video's first frame (what a player shows). A frame gets the mean
embedding of the segments overlapping its interval ``[t_i, t_{i+1})``; frames outside every
segment get NaN rows (masked when training).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildaffect.errors import InputError

TRANSCRIPT_SUFFIXES: tuple[str, ...] = (".srt", ".vtt", ".csv")
CSV_COLUMNS = ("start", "end", "text")
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_CUE_TIMES = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]+>")
_VTT_BLOCKS = ("NOTE", "STYLE", "REGION")


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


def read_transcript(path: Path) -> list[Segment]:
    """The non-empty segments of one transcript file, in file order."""
    if path.suffix == ".csv":
        segments = _read_csv(path)
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(path, f"unreadable transcript ({err})") from None
        segments = parse_cues(text, path)
    segments = [s for s in segments if s.text]
    if not segments:
        raise InputError(path, "no timed text in the transcript")
    return segments


def _seconds(groups: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, millis = groups
    fraction = int(millis.ljust(3, "0")) / 1000
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + fraction


def parse_cues(text: str, path: Path) -> list[Segment]:
    """SRT or WebVTT text -> segments: each ``start --> end`` line and the text lines after it
    up to a blank line (cue numbers, identifiers, ``WEBVTT`` / ``NOTE`` blocks, cue settings
    and ``<b>``-style tags are dropped)."""
    segments: list[Segment] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith(_VTT_BLOCKS):  # a WebVTT comment / style block: skip it whole
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        match = _CUE_TIMES.match(lines[i])
        i += 1
        if match is None:
            if "-->" in lines[i - 1]:
                raise InputError(path, "malformed cue times", line=i)
            continue
        start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
        if end < start:
            raise InputError(path, f"cue ends ({end:.3f} s) before it starts ({start:.3f} s)",
                             line=i)  # fmt: skip
        words = []
        while i < len(lines) and lines[i].strip():
            words.append(_TAG.sub("", lines[i]).strip())
            i += 1
        segments.append(Segment(start, end, " ".join(w for w in words if w)))
    return segments


def _read_csv(path: Path) -> list[Segment]:
    import pandas as pd

    try:
        table = pd.read_csv(path, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"needs columns {', '.join(CSV_COLUMNS)}; missing "
                               f"{', '.join(missing)}")  # fmt: skip
    times = table[["start", "end"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(times).all(axis=1) | (times[:, 1] < times[:, 0]))
    if len(bad):
        raise InputError(path, "start/end must be numbers with end >= start", line=int(bad[0]) + 2)
    return [Segment(float(s), float(e), str(t).strip())
            for (s, e), t in zip(times, table["text"], strict=True)]  # fmt: skip


def segments_on_frames(
    segments: list[Segment], embeddings: np.ndarray, frame_times: np.ndarray
) -> np.ndarray:
    """(S,) segments with (S, D) embeddings -> (T, D) float32: per frame, the mean embedding of
    the segments overlapping its interval; NaN rows where none does."""
    from wildaffect.io.align import _frame_ends

    times = np.asarray(frame_times, np.float64)
    times = times - times[0] if len(times) else times
    return segments_on_intervals(segments, embeddings, times, _frame_ends(times), opens=True)


def segments_on_intervals(
    segments: list[Segment], embeddings: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    *, opens: bool,
) -> np.ndarray:  # fmt: skip
    """:func:`segments_on_frames` for consecutive frames given by their intervals
    ``[starts_i, ends_i)`` (s from the video's first frame), e.g. one chunk of a stream, so
    a video taken chunk by chunk gets the same rows. ``opens``: the first of these frames is the
    video's first (it also takes a segment ending exactly where the video starts).

    A frame gets a segment when it overlaps it (``t_i < end`` and ``t_{i+1} > start``) or holds
    its start (a zero-length segment: the frame holding it); segments ending before the video
    are dropped. -> (T, D) float32, NaN rows where no segment is.
    """
    starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    out = np.full((len(starts), embeddings.shape[1]), np.nan, np.float32)
    if not len(starts) or not segments:
        return out
    seg_start = np.asarray([s.start for s in segments], np.float64)[:, None]  # (S, 1)
    seg_end = np.asarray([s.end for s in segments], np.float64)[:, None]  # (S, 1)
    member = (ends > seg_start) & ((starts < seg_end) | (starts <= seg_start))  # (S, T)
    if opens:
        member[:, 0] = ends[0] > seg_start[:, 0]
    member &= seg_end >= 0  # entirely before the video
    count = member.sum(axis=0)  # (T,)
    total = member.T.astype(np.float64) @ np.asarray(embeddings, np.float64)  # (T, D)
    has = count > 0
    out[has] = (total[has] / count[has, None]).astype(np.float32)
    return out


__all__ = ["TRANSCRIPT_SUFFIXES", "Segment", "parse_cues", "read_transcript",
           "segments_on_frames", "segments_on_intervals"]  # fmt: skip
