"""Speech corpus readers: EmoDB's labels.csv and CREMA-D file names -> ABAW items."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from wildaffect.data.speech import (
    EMOTION_TO_EXPR,
    crema_d_item,
    read_crema_d,
    read_emodb,
)
from wildaffect.errors import InputError
from wildaffect.labels import EXPR_NAMES

HEADER = "file,speaker,emotion\n"


def _emodb(tmp_path: Path, rows: str, files: tuple[str, ...] = ("a.wav", "b.wav")) -> Path:
    (tmp_path / "wav").mkdir()
    for name in files:
        (tmp_path / "wav" / name).write_bytes(b"RIFF")
    (tmp_path / "labels.csv").write_text(rows)
    return tmp_path


def test_emodb_real_labels(shared_data: Path) -> None:
    items = read_emodb(shared_data / "speech-emotion")
    assert len(items) == 374
    assert len({i.speaker for i in items}) == 7 and all(i.path.is_file() for i in items)
    # The counts per ABAW class are those of the source words (boredom -> Other, no Surprise).
    words = Counter(i.emotion for i in items)
    classes = Counter(i.expr_name for i in items)
    assert set(classes) == set(EXPR_NAMES) - {"Surprise"}
    assert all(classes[EMOTION_TO_EXPR[w]] == n for w, n in words.items())
    first = items[0]
    assert (first.path.name, first.speaker, first.emotion, first.expr_name) == (
        "08a01Ab.wav", "08", "fear", "Fear"
    )


def test_emodb_mapping_and_case(tmp_path: Path) -> None:
    items = read_emodb(_emodb(tmp_path, HEADER + "a.wav,03,Boredom\nb.wav,10, neutral\n"))
    assert [(i.expr_name, i.speaker, i.emotion) for i in items] == [
        ("Other", "03", "boredom"), ("Neutral", "10", "neutral")
    ]
    assert items[0].expr == EXPR_NAMES.index("Other") == 7


@pytest.mark.parametrize(
    ("rows", "message", "line"),
    [
        ("file,speaker\na.wav,03\n", "missing column(s) emotion", None),
        (HEADER + "a.wav,03,anger\nb.wav,03,contempt\n", "unknown emotion 'contempt'", 3),
        (HEADER + "a.wav,,anger\n", "empty speaker", 2),
        (HEADER + "a.wav,03,anger\na.wav,04,fear\n", "a.wav is listed twice", 3),
        (HEADER + "c.wav,03,anger\n", "c.wav not found", 2),
        (HEADER, "no utterances listed", None),
    ],
)
def test_emodb_malformed_rows(tmp_path: Path, rows: str, message: str, line: int | None) -> None:
    folder = _emodb(tmp_path, rows)
    with pytest.raises(InputError) as err:
        read_emodb(folder)
    assert err.value.path == folder / "labels.csv" and err.value.line == line
    assert message in err.value.reason


def test_emodb_missing_table(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="labels.csv: not found"):
        read_emodb(tmp_path)


def test_crema_d_real_files(shared_data: Path) -> None:
    folder = shared_data / "media" / "crema-d"
    audio = read_crema_d(folder, {".mp3"})
    assert [i.path.name for i in audio][:2] == ["1002_DFA_ANG_XX.mp3", "1002_DFA_DIS_XX.mp3"]
    assert {i.speaker for i in audio} == {"1002"}
    assert [i.expr_name for i in audio] == [
        "Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness"
    ]
    everything = read_crema_d(folder)  # the .flv videos too; LICENSE.txt and the CSV skipped
    assert len(everything) == 12 and {i.speaker for i in everything} == {"1001", "1002"}


def test_crema_d_bad_names(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown CREMA-D emotion 'XYZ'"):
        crema_d_item(tmp_path / "1002_DFA_XYZ_XX.mp3")
    with pytest.raises(InputError, match="not a CREMA-D file name"):
        crema_d_item(tmp_path / "angry_1002.mp3")
    (tmp_path / "notes.txt").write_text("not media")
    with pytest.raises(InputError, match="no CREMA-D media files"):
        read_crema_d(tmp_path)
    (tmp_path / "clip.mp3").write_bytes(b"")
    with pytest.raises(InputError, match="clip.mp3: not a CREMA-D file name"):
        read_crema_d(tmp_path)
