"""Errors a user can act on.

The CLI prints a :class:`WildaffectError` as one line (no traceback) and exits non-zero;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class WildaffectError(Exception):
    """A problem with the user's input or setup, explained in one line."""


class InputError(WildaffectError):
    """A file the user gave us is malformed or unreadable.

    The message always starts with ``path`` (and ``:line`` when known) so that the user can
    jump straight to the offending place.
    """

    def __init__(self, path: str | Path, reason: str, line: int | None = None):
        self.path = Path(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")
