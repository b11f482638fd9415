"""Finding a Ctrl-C (or SIGTERM, which the CLI raises as a KeyboardInterrupt subclass) along an
exception's chain. Kept apart from the CLI, with no imports, so that the entry point
(:mod:`fakedet.__main__`) can use it while the CLI itself is still importing."""

from __future__ import annotations

from typing import Optional


def interruption_in(exc: Optional[BaseException]) -> Optional[KeyboardInterrupt]:
    """The Ctrl-C (KeyboardInterrupt) or SIGTERM (``fakedet.cli.common.Terminated``) that ``exc``
    is, or that caused it through its chain of causes and contexts; None when there is none."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
