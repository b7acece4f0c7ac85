"""Commands for operating runs in bulk (listing, logs, cleanup, hand-off)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add the operations commands to the `cpf` group."""
