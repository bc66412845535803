"""The `lumo` command line."""

from __future__ import annotations

from lumo.cli import agent, data, digest, doctor, mail, payments, reads, record, serve, users, web, worker  # noqa: F401  (registers the commands)
from lumo.cli.app import app, main

__all__ = ["app", "main"]
