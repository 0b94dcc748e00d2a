"""`slaclock replay` (placeholder until the engine lands)."""

import typer


def register_replay(app: typer.Typer) -> None:
    pass
