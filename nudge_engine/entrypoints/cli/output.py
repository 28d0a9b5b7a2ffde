"""Shared CLI output: Rich consoles and the mapping of typed errors to exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from nudge_engine.domain.errors import (
    ConfigurationError,
    IntegrityError,
    InvalidInput,
    InvalidRuleSet,
    NotFound,
    NudgeEngineError,
)

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@contextmanager
def fail_on_error() -> Iterator[None]:
    """Turn typed errors into one stderr line and the contract's exit code."""
    try:
        yield
    except InvalidRuleSet as exc:
        for problem in exc.problems:
            err_console.print(f"error: {problem}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    except IntegrityError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    except (InvalidInput, NotFound, ConfigurationError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    except NudgeEngineError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
