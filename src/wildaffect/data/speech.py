"""Emotional speech corpora as (file, ABAW expression class, speaker) items.

The default model's audio branch learns expressions from acted speech: EmoDB (a ``labels.csv``
of ``file,speaker,emotion`` beside a ``wav/`` folder) and CREMA-D (the emotion is in the file
name, ``<actor>_<sentence>_<emotion>_<level>.<ext>``, e.g. ``1002_DFA_ANG_XX.mp3``). Both name
emotions with words that :data:`EMOTION_TO_EXPR` maps onto the 8 ABAW classes; EmoDB's boredom
has no ABAW class of its own and becomes Other. The speaker is the group for leave-one-speaker-out
splits (a speaker's voice must never be in training and test at once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wildaffect.errors import InputError
from wildaffect.labels import EXPR_NAMES

#: Emotion words of the speech corpora -> ABAW expression class (the one mapping).
EMOTION_TO_EXPR: dict[str, str] = {
    "anger": "Anger",
    "disgust": "Disgust",
    "fear": "Fear",
    "happiness": "Happiness",
    "sadness": "Sadness",
    "neutral": "Neutral",
    "boredom": "Other",
}
#: CREMA-D's emotion codes -> the emotion words above.
CREMA_D_EMOTIONS: dict[str, str] = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happiness",
    "SAD": "sadness",
    "NEU": "neutral",
}
#: ``<actor>_<sentence>_<emotion>_<level>``: CREMA-D's file name stem.
CREMA_D_STEM = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$"
)
EMODB_LABELS = "labels.csv"
EMODB_AUDIO_DIR = "wav"
EMODB_COLUMNS: tuple[str, ...] = ("file", "speaker", "emotion")


@dataclass(frozen=True)
class SpeechItem:
    """One utterance: its file, ABAW class index (into ``EXPR_NAMES``), speaker and source word."""

    path: Path
    expr: int
    speaker: str
    emotion: str

    @property
    def expr_name(self) -> str:
        return EXPR_NAMES[self.expr]


def expr_of_emotion(emotion: str) -> int:
    """ABAW class index of an emotion word (case-insensitive); KeyError for an unknown word."""
    return EXPR_NAMES.index(EMOTION_TO_EXPR[emotion.strip().lower()])


def read_emodb(folder: str | Path) -> list[SpeechItem]:
    """EmoDB's ``labels.csv`` -> items (in file order), audio from ``<folder>/wav/<file>``.

    Raises :class:`InputError` naming labels.csv (and the line) for a missing column, an empty
    field, an unknown emotion, a file listed twice or a listed file that does not exist.
    """
    import pandas as pd

    folder = Path(folder)
    labels = folder / EMODB_LABELS
    try:
        table = pd.read_csv(labels, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(labels, "not found (expected file,speaker,emotion)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(labels, f"not a readable CSV table ({err})") from None
    missing = [c for c in EMODB_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(labels, f"missing column(s) {', '.join(missing)}; "
                                 f"expected {','.join(EMODB_COLUMNS)}")  # fmt: skip
    items, seen = [], set()
    for row, (name, speaker, emotion) in enumerate(
        table[list(EMODB_COLUMNS)].itertuples(index=False), start=2  # line 1 is the header
    ):
        name, speaker, emotion = name.strip(), speaker.strip(), emotion.strip()
        empty = [c for c, v in zip(EMODB_COLUMNS, (name, speaker, emotion), strict=True) if not v]
        if empty:
            raise InputError(labels, f"empty {', '.join(empty)}", line=row)
        try:
            expr = expr_of_emotion(emotion)
        except KeyError:
            raise InputError(labels, f"unknown emotion {emotion!r} (valid: "
                             f"{', '.join(EMOTION_TO_EXPR)})", line=row) from None  # fmt: skip
        if name in seen:
            raise InputError(labels, f"{name} is listed twice", line=row)
        seen.add(name)
        path = folder / EMODB_AUDIO_DIR / name
        if not path.is_file():
            raise InputError(labels, f"{path} not found", line=row)
        items.append(SpeechItem(path, expr, speaker, emotion.lower()))
    if not items:
        raise InputError(labels, "no utterances listed")
    return items


def crema_d_item(path: str | Path) -> SpeechItem:
    """One CREMA-D file -> its item (speaker = the actor id); InputError for another name."""
    path = Path(path)
    match = CREMA_D_STEM.match(path.stem)
    if match is None:
        raise InputError(path, "not a CREMA-D file name (<actor>_<sentence>_<emotion>_<level>, "
                               "e.g. 1002_DFA_ANG_XX)")  # fmt: skip
    code = match["emotion"]
    if code not in CREMA_D_EMOTIONS:
        raise InputError(path, f"unknown CREMA-D emotion {code!r} (valid: "
                               f"{', '.join(CREMA_D_EMOTIONS)})")  # fmt: skip
    emotion = CREMA_D_EMOTIONS[code]
    return SpeechItem(path, expr_of_emotion(emotion), match["actor"], emotion)


def read_crema_d(folder: str | Path, extensions: Iterable[str] | None = None) -> list[SpeechItem]:
    """CREMA-D media files of ``folder`` (sorted) -> items; other files (licence, CSV) are skipped.

    ``extensions`` (e.g. ``{".mp3", ".wav"}`` for the audio-only files) narrows the media files
    read; by default every audio and video file is. A media file whose name does not follow
    CREMA-D's pattern is an :class:`InputError`.
    """
    from wildaffect.io.media import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "CREMA-D folder not found")
    wanted = {e.lower() for e in (extensions or AUDIO_EXTENSIONS | VIDEO_EXTENSIONS)}
    items = [crema_d_item(p) for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix.lower() in wanted]  # fmt: skip
    if not items:
        raise InputError(folder, f"no CREMA-D media files ({', '.join(sorted(wanted))})")
    return items


__all__ = [
    "CREMA_D_EMOTIONS",
    "EMOTION_TO_EXPR",
    "SpeechItem",
    "crema_d_item",
    "expr_of_emotion",
    "read_crema_d",
    "read_emodb",
]
