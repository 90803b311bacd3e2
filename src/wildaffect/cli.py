"""The ``wildaffect`` command line: a thin Typer layer over the library.

Each command group lives in :mod:`wildaffect.commands`; those modules import heavy
libraries inside the command functions so that ``wildaffect --help`` stays instant.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from wildaffect import __version__
from wildaffect.errors import WildaffectError

app = typer.Typer(
    name="wildaffect",
    help="Per-frame facial Action Units, expression and valence/arousal from face and voice.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"wildaffect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Per-frame facial Action Units, expression and valence/arousal from face and voice."""


def _register_commands() -> None:
    """One line per command group; the groups' modules import nothing heavy at top level."""
    from wildaffect.commands import download

    app.command("download")(download.download)
    from wildaffect.commands import data
    app.add_typer(data.app, name="data")
    from wildaffect.commands import train as train_commands
    app.command("synth")(train_commands.synth)
    app.command("train")(train_commands.train)
    from wildaffect.commands import preprocess
    app.command("preprocess")(preprocess.preprocess)
    from wildaffect.commands import extract
    app.command("extract")(extract.extract)
    from wildaffect.commands import predict
    app.command("predict")(predict.predict)
    from wildaffect.commands import demo
    app.command("demo")(demo.demo)
    from wildaffect.commands import evaluate
    app.command("evaluate")(evaluate.evaluate)
    app.command("ablate")(evaluate.ablate)


_register_commands()


def main() -> None:
    """Console-script entry: user errors become one line on stderr and exit status 1."""
    try:
        app()
    except WildaffectError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
