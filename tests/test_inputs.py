"""collect_inputs: files, folders, globs; bad items become errors and the batch goes on."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from wildaffect.errors import InputError
from wildaffect.io.inputs import collect_inputs

NOBODY = 65534  # uid of the unprivileged user on Linux


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """clips/{a.mp4, b.MOV, notes.txt, sub/c.wav, sub/d.jpg, .hidden/e.mp4, ._f.mp4}, empty/."""
    root = tmp_path / "clips"
    for name in [
        "a.mp4",
        "b.MOV",
        "notes.txt",
        "sub/c.wav",
        "sub/d.jpg",
        ".hidden/e.mp4",
        "._f.mp4",
    ]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # collect_inputs judges names only; decoding comes later
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no media here")
    return tmp_path


def test_folder_is_searched_recursively_for_media_only(tree: Path) -> None:
    files, errors = collect_inputs([tree / "clips"])
    root = tree / "clips"
    assert files == [root / "a.mp4", root / "b.MOV", root / "sub/c.wav", root / "sub/d.jpg"]
    assert errors == []


def test_glob_patterns(tree: Path) -> None:
    files, errors = collect_inputs([str(tree / "clips" / "*.mp4")])
    assert files == [tree / "clips" / "a.mp4"]  # glob skips dot files by itself
    files, errors = collect_inputs([str(tree / "**" / "*.wav")])
    assert files == [tree / "clips" / "sub" / "c.wav"] and errors == []


def test_bad_items_are_reported_and_the_rest_collected(tree: Path) -> None:
    items = [
        tree / "missing.mp4",
        tree / "empty",
        str(tree / "clips" / "*.avi"),
        tree / "clips" / "a.mp4",
    ]
    files, errors = collect_inputs(items)
    assert files == [tree / "clips" / "a.mp4"]
    assert all(isinstance(e, InputError) for e in errors)
    assert [(e.path, e.reason.split(" (")[0]) for e in errors] == [
        (tree / "missing.mp4", "no such file or folder"),
        (tree / "empty", "folder contains no media files"),
        (tree / "clips" / "*.avi", "pattern matches no media files"),
    ]
    assert str(errors[0]).startswith(str(tree / "missing.mp4"))


def test_duplicates_removed_in_first_seen_order(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    items = [
        "clips/sub/c.wav",
        tree / "clips",  # holds c.wav again, absolute this time
        "clips/a.mp4",
        "clips/./a.mp4",
    ]
    files, errors = collect_inputs(items)
    assert files == [
        Path("clips/sub/c.wav"),
        tree / "clips" / "a.mp4",
        tree / "clips" / "b.MOV",
        tree / "clips" / "sub" / "d.jpg",
    ]
    assert errors == []


def test_an_explicit_file_is_kept_whatever_its_extension(tree: Path) -> None:
    files, errors = collect_inputs([tree / "clips" / "notes.txt"])
    assert files == [tree / "clips" / "notes.txt"] and errors == []


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions only")
def test_a_folder_that_cannot_be_entered_is_an_error() -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        private = Path(folder) / "private"
        private.mkdir(mode=0o700)
        (private / "clip.mp4").write_bytes(b"x")
        ok = Path(folder) / "ok.mp4"
        ok.write_bytes(b"x")
        was_root = os.geteuid() == 0
        if was_root:
            os.seteuid(NOBODY)  # root enters anything: look as a normal user
        try:
            files, errors = collect_inputs([private / "clip.mp4", private, ok])
        finally:
            if was_root:
                os.seteuid(0)
    assert files == [ok]
    assert len(errors) == 2 and all("permission denied" in e.reason.lower() for e in errors)


def test_real_media_folder(fixtures_dir: Path) -> None:
    files, errors = collect_inputs([fixtures_dir / "media"])
    assert [f.name for f in files] == [
        "1001_DFA_HAP_XX.flv",
        "1002_DFA_HAP_XX.mp3",
        "sbwe5n.mpg",
        "single_face.jpg",
    ]
    assert errors == []
