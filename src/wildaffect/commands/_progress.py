"""Rich progress for batch commands: one bar over the inputs and one per input in work.

``preprocess`` and ``extract`` report progress through small protocols of their own; each
command adapts them to :class:`BatchBars` in a few lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


class BatchBars:
    """``begin(total)`` once, then per input ``start`` / ``update`` / ``finish``."""

    def __init__(self, console: Console, unit: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )  # fmt: skip

        self.unit = unit
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        )  # fmt: skip
        self.total_task = None
        self.item_tasks: dict[str, int] = {}  # input name -> its bar

    def __enter__(self) -> BatchBars:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def begin(self, total: int) -> None:
        self.total_task = self.bar.add_task(self.unit, total=total)

    def start(self, name: str, total: int | None = None) -> None:
        self.item_tasks[name] = self.bar.add_task(f"  {name}", total=total or None)

    def update(self, name: str, done: int, total: int | None) -> None:
        task = self.item_tasks.get(name)
        if task is not None:
            self.bar.update(task, completed=done, total=max(total or 0, done) or None)

    def finish(self, name: str | None) -> None:
        task = self.item_tasks.pop(name or "", None)
        if task is not None:
            self.bar.remove_task(task)
        if self.total_task is not None:
            self.bar.advance(self.total_task)
