"""CLI layer: ``python -m fakedet`` and the ``fakedet`` command's entry point.

The CLI's modules (click among them) take a tenth of a second to import, before
:func:`fakedet.cli.main` sets up its signal handling. A Ctrl-C in that window would end in a
traceback; here it ends as one later does: ``fakedet: interrupted`` and status 130.
"""

import sys

from fakedet._interrupt import interruption_in

EXIT_INTERRUPTED = 130  # as fakedet.cli.common's; importing that module is what is guarded
EXIT_INTERNAL = 70  # likewise: a broken install is no "labelled fake" (status 1)


def main() -> None:
    try:
        from fakedet.cli import main as cli_main
    except (KeyboardInterrupt, Exception) as exc:
        if interruption_in(exc) is None:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            raise SystemExit(EXIT_INTERNAL) from None
        sys.stderr.write("fakedet: interrupted\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_INTERRUPTED) from None
    cli_main()


if __name__ == "__main__":
    main()
