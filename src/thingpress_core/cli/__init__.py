"""The ``thingpress-core`` command: inspect a manifest, import it, or enqueue it for Lambda.

Needs the ``cli`` extra (typer and rich); ``--sandbox`` also needs the ``sandbox`` extra.
Exit codes: 0 every certificate imported or already present, 1 some failed, 2 a usage or
setup error (a bad option or ``THINGPRESS_*`` value, no region, an unknown profile, an output
path that cannot be written, a missing extra, a pre-flight failure: one ``error:`` line, and
nothing sent to AWS), 130 interrupted (Ctrl-C; the ``--report`` then holds what finished and
what did not), 141 the reader of the output went away (``| head``).
"""

from __future__ import annotations

from thingpress_core.cli import _commands, _enqueue, _example, _ledger, _operations
from thingpress_core.cli._app import app

del _commands, _enqueue, _example, _ledger, _operations  # imported for their effect: they register commands

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
