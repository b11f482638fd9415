"""CLI layer (top): the ``fakedet`` command group, a thin layer over the inference layer's public API.

One command per module: :mod:`~fakedet.cli.scan`, :mod:`~fakedet.cli.eval`,
:mod:`~fakedet.cli.info`, :mod:`~fakedet.cli.explain`; :mod:`~fakedet.cli.options` holds the options they share and
:mod:`~fakedet.cli.common` the exit statuses and output handling. A new command is a new module
here, registered on the group below. Heavy modules (torch, timm)
are imported inside the commands, so ``fakedet --version`` and ``fakedet --help`` answer at once.
"""

from __future__ import annotations

import errno
import os
import re
import sys

import click

from fakedet._version import __version__
from fakedet.cli import pipeout
from fakedet.cli.common import (
    CONTEXT,
    EXIT_HUNG_UP,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_TERMINATED,
    EXIT_USAGE,
    ending_status,
    err,
    flush_std,
    handle_signals,
    ignore_signals_at_exit,
    interrupt_status,
    interrupt_word,
    interruption_in,
    silence_stderr,
    silence_stdout,
    uninterrupted,
)
from fakedet.cli.eval import eval_
from fakedet.cli.explain import explain
from fakedet.cli.info import info
from fakedet.cli.scan import scan

__all__ = ["cli", "main"]


def _mistyped_command(arg: str, commands) -> "str | None":
    """The command ``arg`` looks like a typo of (``evl`` for ``eval``), when it is no file: a word
    without a dot or a slash, close to one command's name. A missing photo is no typo."""
    import difflib
    import os

    if arg.startswith("-") or any(c in arg for c in "./\\") or os.path.lexists(arg):
        return None
    close = difflib.get_close_matches(arg.lower(), commands, n=1, cutoff=0.7)
    return close[0] if close else None


class DefaultGroup(click.Group):
    """A group that runs ``scan`` when the first argument is not a subcommand, so that
    ``fakedet photo.jpg`` means ``fakedet scan photo.jpg``. ``fakedet help [COMMAND]`` shows the
    help. (A file named like a subcommand, or ``help``, needs the explicit form: ``fakedet scan
    info``.)"""

    default_command = "scan"

    def parse_args(self, ctx, args):
        if args and args[0] == "help":  # `fakedet help [COMMAND]` (a file named help: `fakedet scan help`)
            # `fakedet help help` (or -h, --help): the program's own help
            rest = [] if args[1:] in (["help"], ["-h"], ["--help"]) else args[1:]
            names = ", ".join(sorted(self.commands))
            if len(rest) > 1:
                ctx.fail(f"help takes one command name ({names}); to score a file named help: fakedet scan help")
            if rest and rest[0] not in self.commands:
                import difflib

                like = difflib.get_close_matches(rest[0].lower(), list(self.commands), n=1, cutoff=0.7)
                ctx.fail(f"no command {rest[0]!r}" + (f"; did you mean: fakedet help {like[0]}?" if like else "")
                         + f"; the commands: {names}; to score a file named help: fakedet scan help")
            args = [*rest, "--help"]
        elif args and args[0] not in self.commands and args[0] not in ("-h", "--help", "-V", "--version"):
            named = args[:args.index("--")] if "--" in args else args  # after --, names are files
            command = next((a for a in named if a in self.commands), None)
            if args[0].startswith("-") and command is not None:
                # `fakedet -q eval data/` would score a file named eval: options follow the command
                ctx.fail(f"options go after the command's name: fakedet {command} [OPTIONS] ...; "
                         f"to scan a file named {command}: fakedet scan [OPTIONS] ./{command}")
            typo = _mistyped_command(args[0], [*self.commands, "help"])
            if typo:
                ctx.fail(f"{args[0]!r} is no command and no file; did you mean: fakedet {typo}?")
            args = [self.default_command, *args]
        try:  # --help and --version print while the arguments are parsed
            return super().parse_args(ctx, args)
        except BrokenPipeError:
            silence_stdout()
            raise click.exceptions.Exit(EXIT_PIPE) from None

    def invoke(self, ctx):
        # A reader that goes away (`fakedet info | head -1`) ends every command as it ends
        # scan, with status 141, instead of click's status 1 (which here means "fake").
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            silence_stdout()
            return EXIT_PIPE


TOP_EPILOG = """\b
Examples:
  fakedet photo.jpg                 the same as: fakedet scan photo.jpg
  fakedet scan -f jsonl photos/ > scores.jsonl
  fakedet info
  fakedet help scan                 a command's options, examples and exit statuses

Exit status: 0 ok, 1 fake found (scan --exit-code), 2 usage error, 3 unreadable
inputs, 130/143/129 interrupted, 141 output closed early, 70 internal error; the details:
fakedet scan --help"""


@click.group(cls=DefaultGroup, context_settings=CONTEXT, epilog=TOP_EPILOG)
@click.version_option(__version__, "-V", "--version", prog_name="fakedet")
def cli():
    """Detect deepfake and AI-generated images.

    `fakedet PATH...` is short for `fakedet scan PATH...`; `fakedet help COMMAND` (or
    `fakedet COMMAND --help`) shows a command's help.
    """


cli.add_command(scan)
cli.add_command(info)
cli.add_command(eval_)
cli.add_command(explain)

# errno values that mean "the output cannot be written" rather than anything else going wrong
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF}


def main() -> None:
    import atexit

    atexit.register(ignore_signals_at_exit)  # first, so that it runs last
    install_streams()
    quiet_decoders()
    try:
        code = _main()
    except Exception:  # a bug: its traceback, its own status (1 means "labelled fake"), the exit below
        import traceback

        traceback.print_exc()
        code = EXIT_INTERNAL
    _exit(code)


def quiet_decoders() -> None:
    """Pillow's and torchvision's warnings about one file's oddities (an invalid APNG, corrupt
    EXIF data, a palette's transparency) are not printed: what matters to the score is in the
    file's record. Set once on the process's filters before any thread starts; the decoding
    threads leave the filters alone (``warnings.catch_warnings`` there raced, and could leave
    every warning of the process ignored)."""
    import warnings

    warnings.filterwarnings("ignore", module=r"(PIL|torchvision\.io)(\.|$)")


def install_streams() -> None:
    """stdout and stderr, where they are pipes, as :mod:`fakedet.cli.pipeout` writes them: one
    signal ends the command even when nobody reads them any more."""
    pipeout.install(lambda: uninterrupted(error_decides=False))


def _main() -> int:
    # Click's own handling turns Ctrl-C into "Aborted!" and exit status 1, which here means
    # "labelled fake"; every command reports an interruption as status 130 instead. SIGTERM
    # (timeout, kill, docker stop, systemd) takes the same path, ending with status 143.
    try:
        with handle_signals(ending=True):
            code = cli.main(prog_name="fakedet", standalone_mode=False)
            # known before the handlers of the exit are put in place (see ending_status)
            ending_status(code if isinstance(code, int) else EXIT_OK)
    except click.exceptions.Abort as exc:
        cause = exc.__cause__ or exc.__context__
        err(interrupt_word(cause))
        return interrupt_status(cause)
    except click.ClickException as exc:
        from fakedet.data.writers import control_escape, utf8_text

        # a file name in it cannot drive the terminal, and shows bytes that are not UTF-8 as \xHH,
        # also where click quoted the value with repr() (its \udcHH text for an undecodable byte)
        exc.message = re.sub(r"\\udc([89a-f][0-9a-f])", r"\\x\1", control_escape(utf8_text(exc.message)))
        if isinstance(exc, click.UsageError):
            exc.message += dash_name_hint(sys.argv[1:])
        try:
            exc.show()
        except OSError:  # stderr cannot take it (closed, full): the status still says what happened
            silence_stderr()
        return exc.exit_code
    except OSError as exc:  # info's or eval's output (scan handles its own): a full disk, say
        if exc.errno in _WRITE_ERRORS:
            silence_stdout()  # so that the interpreter's last flush does not fail again
            err(f"cannot write the output: {exc.strerror or exc}")
        else:
            err(str(exc))
        return EXIT_USAGE
    except Exception as exc:
        # an interruption that came out wrapped in another error (Ctrl-C during an import
        # becomes a RuntimeError caused by it): still status 130/143, not a traceback and 1
        signal_exc = interruption_in(exc)
        if signal_exc is None:
            raise
        err(interrupt_word(signal_exc))
        return interrupt_status(signal_exc)
    return code if isinstance(code, int) else EXIT_OK


def dash_name_hint(argv: list[str]) -> str:
    """For a usage error: a file name among ``argv`` that starts with ``-`` (``-dash.jpg``) is
    read as options (``-d ash.jpg``); the way to name it, or "" where there is none."""
    from fakedet.data.sources import is_image_name
    from fakedet.data.writers import control_escape

    for arg in argv:
        if arg == "--":
            return ""
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 and (
                is_image_name(arg) or os.path.lexists(arg)):
            name = control_escape(arg)
            return (f"\n(a file named {name}? a name that starts with - is read as options: write ./{name}, "
                    "or put -- before it)")
    return ""


def _exit(code: int) -> None:
    """Ends the process with ``code``. A scan interrupted while its model was still loading (in a
    background thread, see fakedet.inference.stream) ends at once with ``os._exit``, once its
    output is flushed: a normal exit would run libtorch's exit-time destructors under that
    thread and abort the process. So does a scan that stopped while still reading a list of
    paths (``--files-from -``) in a background thread: Python's shutdown aborts under a thread
    blocked reading stdin (see fakedet.inference.pipeline.reading). So does an interrupted
    command whose threads are still running: a second Ctrl-C can cut short the joining of the
    pipeline's threads, and the interpreter's shutdown would then abort under them ("terminate
    called without an active exception", status 134); its records are already written."""
    import threading

    ending_status(code)  # a signal from here on ends the process with this status at once
    stream = sys.modules.get("fakedet.inference.stream")
    pipeline = sys.modules.get("fakedet.inference.pipeline")
    threads_left = code in (EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_HUNG_UP) and any(
        t is not threading.main_thread() and t.is_alive() and not isinstance(t, threading.Timer)
        and t.name != pipeout.WATCHER for t in threading.enumerate())
    # what is left goes out now: a stopped reader can still be given up on (pipeout), and a stream
    # that cannot take it is silenced before the interpreter's last flush fails on it (status 120)
    flush_std()
    if (stream is not None and stream.loading()) or (pipeline is not None and pipeline.reading()) or threads_left:
        os._exit(code)  # (flushed above)
    sys.exit(code)


if __name__ == "__main__":
    main()
