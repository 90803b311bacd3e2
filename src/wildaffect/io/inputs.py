"""Turn what the user typed (files, folders, glob patterns) into a list of media files.

A batch command must go on when one argument is wrong, so problems are returned as
:class:`~wildaffect.errors.InputError` values beside the files instead of being raised.
This module only looks at names; whether a file really decodes is for :mod:`.media`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from wildaffect.errors import InputError
from wildaffect.io.media import MEDIA_EXTENSIONS

_GLOB_CHARS = frozenset("*?[")


def _is_pattern(text: str) -> bool:
    return any(char in _GLOB_CHARS for char in text)


def _is_hidden(path: Path, root: Path) -> bool:
    """Dot files and folders below ``root`` (e.g. macOS ``._clip.mp4`` resource forks)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _media_in_folder(folder: Path) -> list[Path]:
    """Media files anywhere below ``folder``, hidden entries skipped, sorted by path.

    A folder that cannot be listed raises PermissionError (rglob alone would silently find
    nothing); unreadable sub-folders deeper down are skipped.
    """
    with os.scandir(folder):
        pass
    found = (
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in MEDIA_EXTENSIONS and p.is_file() and not _is_hidden(p, folder)
    )
    return sorted(found)


def _expand_pattern(pattern: str) -> list[Path]:
    """Media files matched by a glob (``**`` recurses); matched folders are searched too."""
    files: list[Path] = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = Path(match)
        if path.is_dir():
            files.extend(_media_in_folder(path))
        elif path.suffix.lower() in MEDIA_EXTENSIONS and path.is_file():
            files.append(path)
    return files


def _extensions_hint() -> str:
    return " ".join(sorted(MEDIA_EXTENSIONS))


def _unique(paths: Iterable[Path]) -> list[Path]:
    """Drop repeats of the same file (however it was spelled), keeping the first."""
    seen: set[Path] = set()
    kept: list[Path] = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept


def collect_inputs(items: Sequence[str | Path]) -> tuple[list[Path], list[InputError]]:
    """Expand files, folders (recursively) and glob patterns into media files, in order.

    An explicitly named file is kept whatever its extension (decoding will judge it);
    folders and patterns only contribute files with a media extension. A missing path, a
    folder without media or a pattern that matches nothing becomes an error in the second
    list, and the other items are still collected.
    """
    files: list[Path] = []
    errors: list[InputError] = []
    for item in items:
        try:
            _collect_one(item, files, errors)
        except OSError as exc:  # e.g. a parent folder we may not enter
            errors.append(InputError(item, f"cannot access it ({exc.strerror or exc})"))
    return _unique(files), errors


def _collect_one(item: str | Path, files: list[Path], errors: list[InputError]) -> None:
    """Add the media files of one item to ``files``, or its problem to ``errors``."""
    text = str(item)
    path = Path(item)
    if path.is_file():
        files.append(path)
    elif path.is_dir():
        found = _media_in_folder(path)
        if not found:
            errors.append(
                InputError(path, f"folder contains no media files ({_extensions_hint()})")
            )
        files.extend(found)
    elif _is_pattern(text):
        found = _expand_pattern(text)
        if not found:
            errors.append(InputError(path, "pattern matches no media files"))
        files.extend(found)
    else:
        errors.append(InputError(path, "no such file or folder"))


__all__ = ["collect_inputs"]
