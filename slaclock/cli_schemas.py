"""`slaclock schemas export` and `slaclock policy check` (placeholder until schemas land)."""

import typer

schemas_app = typer.Typer(no_args_is_help=True, help="Export JSON Schemas.")
policy_app = typer.Typer(no_args_is_help=True, help="Validate policy files.")
