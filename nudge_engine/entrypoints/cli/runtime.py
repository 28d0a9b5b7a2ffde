"""The composition root for one CLI command: built from the environment, disposed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nudge_engine.bootstrap import Container


@contextmanager
def open_container() -> Iterator[Container]:
    """``Container.from_env()`` for the duration of a command (connections closed at the end)."""
    from nudge_engine.bootstrap import Container

    container = Container.from_env()
    try:
        yield container
    finally:
        container.dispose()
