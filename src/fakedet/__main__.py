"""CLI layer: ``python -m fakedet`` and the ``fakedet`` command's entry point.

The CLI's modules (click among them) take a tenth of a second to import, before
:func:`fakedet.cli.main` sets up its signal handling. A Ctrl-C in that window would end in a
traceback; here it ends as one later does: ``fakedet: interrupted`` and status 130.
"""

import sys

EXIT_INTERRUPTED = 130  # as fakedet.cli.common's; importing that module is what is guarded


def _interruption(exc):
    """Whether ``exc`` is a Ctrl-C, or an error a Ctrl-C caused (an import interrupted half-way
    can surface as another error whose cause or context is the KeyboardInterrupt)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def main() -> None:
    try:
        from fakedet.cli import main as cli_main
    except (KeyboardInterrupt, Exception) as exc:
        if not _interruption(exc):
            raise
        sys.stderr.write("fakedet: interrupted\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_INTERRUPTED) from None
    cli_main()


if __name__ == "__main__":
    main()
