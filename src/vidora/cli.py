"""The `vidora` command line: generate, judge, world, train, eval, serve, worker, keys.

Commands are thin: they parse arguments, call the library, and print. Heavy imports
(torch, the server) happen inside the commands so that `vidora --help` stays instant.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="vidora",
    help="Open, self-hosted text-to-video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
world_app = typer.Typer(help="Shapes World: sample, export and inspect the built-in world.", no_args_is_help=True)
app.add_typer(world_app, name="world")


# --- world -----------------------------------------------------------------------------


# --- judge -----------------------------------------------------------------------------


# --- generate / eval / train ----------------------------------------------------------


# --- serve / worker / keys -------------------------------------------------------------


if __name__ == "__main__":
    app()
