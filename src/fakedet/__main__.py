"""CLI layer: ``python -m fakedet`` and the ``fakedet`` command's entry point.

The CLI's modules (click among them) take a tenth of a second to import, before
:func:`fakedet.cli.main` sets up its signal handling. A Ctrl-C in that window would end in a
traceback; here it ends as one later does: ``fakedet: interrupted`` and status 130.
"""

import os
import sys

from fakedet._interrupt import interruption_in

EXIT_INTERRUPTED = 130  # as fakedet.cli.common's; importing that module is what is guarded
EXIT_INTERNAL = 70  # likewise: a broken install is no "labelled fake" (status 1)


def _no_closed_stderr() -> None:
    """A command started with standard error closed (``2>&-``, some daemons and cron set-ups)
    writes its messages to /dev/null instead: without this Python has no ``sys.stderr`` (the
    progress check and every message would raise), and the next file opened would take
    descriptor 2, so that a library writing to it would write into that file (an ``-o`` file, a
    report)."""
    try:
        os.fstat(2)
        if sys.stderr is not None:
            return
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 2:
            os.dup2(fd, 2)
            os.close(fd)
    sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)


def main() -> None:
    _no_closed_stderr()
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
