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
    ends = _frame_ends(times)  # (T,)
    total = np.zeros((len(times), embeddings.shape[1]), np.float64)
    count = np.zeros(len(times), np.int64)
    for segment, embedding in zip(segments, embeddings, strict=True):
        if not len(times) or segment.end < 0 or segment.start >= ends[-1]:
            continue  # entirely outside the video
        # frames with t_i < end and t_{i+1} > start (a zero-length segment: the frame holding it)
        first = int(np.searchsorted(ends, segment.start, side="right"))
        last = max(int(np.searchsorted(times, segment.end, side="left")), first + 1)
        total[first:last] += embedding
        count[first:last] += 1
    out = np.full(total.shape, np.nan, np.float32)
    has = count > 0
    out[has] = (total[has] / count[has, None]).astype(np.float32)
    return out


__all__ = ["TRANSCRIPT_SUFFIXES", "Segment", "parse_cues", "read_transcript",
           "segments_on_frames"]  # fmt: skip
