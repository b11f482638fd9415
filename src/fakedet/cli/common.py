"""CLI layer: what the commands share, exit statuses, stderr messages and stdout handling.

stdout carries records only; everything else (logs, warnings, progress, summary) goes to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import IO, Iterator

import click

STARTED = time.perf_counter()  # about when the process started: the CLI is imported first

EXIT_OK, EXIT_FAKE, EXIT_USAGE, EXIT_UNREADABLE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 3, 130, 141

EXIT_STATUS_HELP = """\b
Exit status:
  0  every input was scored
  1  with --exit-code only: at least one image was labelled fake
  2  usage error, or nothing could run (no inputs found, unreadable
     weights, unavailable device), or the records could not be
     written (disk full)
  3  some inputs could not be read (all others were still scored)
  130 interrupted (Ctrl-C) after flushing the records already made
  141 stdout was closed by its reader (e.g. `| head`); stopped quietly
When several apply, 2 takes precedence over 3, and 3 over 1."""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def err(msg: str) -> None:
    """A message on stderr, prefixed with the program's name."""
    click.echo(f"fakedet: {msg}", err=True)


def stdin_binary():
    return getattr(sys.stdin, "buffer", sys.stdin)


class OutputError(click.ClickException):
    """Standard output cannot take the command's output: status 2, not click's 1 ("fake")."""

    exit_code = EXIT_USAGE


def stdout() -> IO[str]:
    """sys.stdout, or a clear error when it was closed (``fakedet ... >&-``): records written
    nowhere would be lost without a word."""
    if sys.stdout is None:
        raise OutputError("cannot write the output: standard output is closed (use -o FILE)")
    return sys.stdout


def silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def load_errors_exit(ctx: click.Context) -> Iterator[None]:
    """Loading a model: unusable weights or devices end the command with status 2 and the
    reason, an interruption with status 130."""
    from fakedet.inference.device import DeviceError
    from fakedet.model.checkpoint import CheckpointError

    try:
        yield
    except (CheckpointError, DeviceError) as exc:
        err(str(exc))
        ctx.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        err("interrupted")
        ctx.exit(EXIT_INTERRUPTED)


def nan_to_none(obj):
    """JSON has no NaN: undefined figures (an AUC with one class) become null."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj
