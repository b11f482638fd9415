"""CLI layer: what the commands share, exit statuses, stderr messages and stdout handling.

stdout carries records only; everything else (logs, warnings, progress, summary) goes to stderr.
"""

from __future__ import annotations

import codecs
import os
import sys
import time
from contextlib import contextmanager
from typing import IO, Callable, Iterator, Optional

import click

from fakedet._interrupt import interruption_in  # noqa: F401  (the CLI's modules import it from here)
from fakedet.cli import pipeout


def _process_start() -> float:
    """When this process started, on the :func:`time.perf_counter` clock: from the kernel's
    start time of the process on Linux (/proc), else now (the CLI is imported first)."""
    now = time.perf_counter()
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        # the fields after the command name, which is in parentheses and may hold spaces
        start_ticks = int(stat.rpartition(b")")[2].split()[19])  # field 22, starttime
        ago = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - ago if 0.0 <= ago < 86400.0 else now


STARTED = _process_start()  # "with start-up" in the scan summary is measured from here

EXIT_OK, EXIT_FAKE, EXIT_USAGE, EXIT_UNREADABLE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 3, 130, 141
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM ended
EXIT_HUNG_UP = 129  # 128 + SIGHUP
EXIT_INTERNAL = 70  # a bug (BSD's EX_SOFTWARE): never 1, which --exit-code gives to "labelled fake"

EXIT_STATUS_HELP = """\b
Exit status:
  0  every input was scored
  1  with --exit-code only: at least one image was labelled fake
  2  usage error, or nothing could run (no inputs found, unreadable
     weights, unavailable device), or the records could not be
     written (disk full), or a --files-from list broke off, or
     inputs were given the wrong way (a list piped as an image,
     read with the wrong separator, '-' inside a list)
  3  some inputs could not be read (all others were still scored)
  130 interrupted (Ctrl-C) after flushing the records already made
  143 terminated (SIGTERM: timeout, kill, docker stop), likewise
  129 hung up (SIGHUP: the terminal or ssh session closed), likewise
  141 stdout was closed by its reader (e.g. `| head`); stopped quietly
  70 internal error (a bug in fakedet or a broken install): a traceback
     on stderr
When several apply, 2 takes precedence over 3, and 3 over 1."""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the handler :func:`handle_signals` installs: a
    KeyboardInterrupt, so that every command stops as on Ctrl-C (records flushed, a json array
    closed, the summary written), then exits with status 143."""


class HungUp(Terminated):
    """SIGHUP (the terminal or ssh session that started the command closed), handled as
    SIGTERM; the exit status is 129. A command started with SIGHUP ignored (``nohup``) keeps it
    ignored."""


def interrupt_status(exc: BaseException) -> int:
    """The exit status for an interruption: 129 for SIGHUP, 143 for SIGTERM, 130 for Ctrl-C."""
    if isinstance(exc, HungUp):
        return EXIT_HUNG_UP
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def interrupt_word(exc: BaseException) -> str:
    if isinstance(exc, HungUp):
        return "hung up"
    return "terminated" if isinstance(exc, Terminated) else "interrupted"


# A SIGTERM this soon after the first is the same stop sent twice (see handle_signals).
REPEAT_IGNORED_S = 1.0

# Interruptions that arrived inside an uninterrupted() block, raised at its end.
_defer_depth = 0
_pending: Optional[BaseException] = None
_settled = False  # see settled()
_handling = False  # handle_signals' handlers are installed
_ending_status: Optional[int] = None  # see ending_status()


def ending_status(code: int) -> None:
    """The status of the ``fakedet`` command's completed work, set as its process starts to end:
    a Ctrl-C, SIGTERM or SIGHUP during the rest of the exit (the interpreter's and libtorch's
    clean-up take a few tenths of a second) ends the process at once with it, instead of
    turning a finished run's 0, 1 or 3 into 130 with nothing said."""
    global _ending_status
    _ending_status = code


def ignore_signals_at_exit() -> None:
    """The last exit handler (``main`` registers it first; they run in reverse): once the
    command's status is known (:func:`ending_status`), Ctrl-C, SIGTERM and SIGHUP are ignored
    for the rest of the exit. As it finalises, Python gives every signal that has a handler of
    its own back its default action, and libtorch's destructors run after that: a signal then
    ended a finished run with 128 + N and nothing said. An ignored signal stays ignored; what is
    left by then is the interpreter's own clean-up (no thread of the command's to wait for), so
    SIGKILL is the only way left to end it, and not needed. It does not end the process itself:
    a caller that runs ``main`` in its own process (a test) keeps its own exit status."""
    import signal

    if _ending_status is None:
        return
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            try:
                signal.signal(getattr(signal, name), signal.SIG_IGN)
            except (ValueError, OSError):
                pass


def flush_std() -> None:
    """Flushes stdout and stderr, as a process about to end must: a stream that cannot take what
    it holds (its reader went away) is pointed at /dev/null, so that the interpreter's own last
    flush cannot fail on the same bytes and end the command with Python's status 120."""
    for f in (sys.stdout, sys.stderr):
        try:
            if f is not None:
                f.flush()
        except OSError:
            _to_devnull(f)
        except (ValueError, RuntimeError):  # RuntimeError: a signal's flush inside a flush
            pass


def _while_ending(signum, frame) -> None:
    """The handler after :func:`handle_signals` (``ending``): see :func:`ending_status`."""
    import signal

    if _ending_status is None:  # not known yet: the signal's default action
        if os.name == "nt":  # (os.kill would end the process with status 2: "usage error")
            flush_std()
            os._exit(128 + signum)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    flush_std()
    os._exit(_ending_status)


def settled() -> None:
    """The command's work is done and its output written: a Ctrl-C or SIGTERM from here on has
    nothing left to stop, so it no longer raises. Raised now it would land wherever the exit
    happens to be: in a thread pool's clean-up callback, where Python prints it and drops it
    (a traceback, and status 0), or in the restoring of the handlers (a traceback, and status 1,
    which means "fake"). The command ends with the status of its completed work, at once; a
    second signal ends the process by the signal's default action. Only where
    :func:`handle_signals` installed the handlers (elsewhere, e.g. a command run in-process by a
    test, nothing changes)."""
    global _settled
    _settled = _handling


def _interrupt(exc: BaseException) -> None:
    global _pending
    pipeout.arm(interrupt_status(exc), interrupt_word(exc))  # a reader that stopped cannot hold it up
    if _settled:
        import signal

        for name in ("SIGINT", "SIGTERM"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        if hasattr(signal, "SIGHUP"):  # hang-ups come in pairs: see handle_signals
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return
    if _defer_depth:
        if _pending is None:
            _pending = exc
        return
    raise exc


@contextmanager
def uninterrupted(error_decides: bool = True) -> Iterator[None]:
    """Ctrl-C or SIGTERM arriving inside the block (a batch of records being written) takes
    effect at its end, so that every record is written whole and a json array can be closed.
    When the block fails, its own error (a closed pipe, a full disk) decides and the
    interruption is dropped; with ``error_decides=False`` (one write to stdout or stderr,
    :mod:`fakedet.cli.pipeout`) the interruption is raised instead, the error as its context:
    a caller that passes over a failed message (:func:`err`) must not lose the Ctrl-C with it.
    Applies where :func:`handle_signals` installed the handlers (the ``fakedet`` command)."""
    global _defer_depth, _pending
    _defer_depth += 1
    try:
        yield
    except BaseException:
        if _defer_depth == 1:
            pending, _pending = _pending, None
            if pending is not None and not error_decides:
                raise pending  # noqa: B904 (the block's error is its context)
        raise
    finally:
        _defer_depth -= 1
    if _defer_depth == 0 and _pending is not None:
        exc, _pending = _pending, None
        raise exc


@contextmanager
def handle_signals(ending: bool = False) -> Iterator[None]:
    """Within the block, Ctrl-C raises KeyboardInterrupt, SIGTERM :class:`Terminated` and SIGHUP
    :class:`HungUp` in the main thread, or at the end of an :func:`uninterrupted` block. A second
    SIGTERM during the clean-up the first one started ends the process at once, as by default,
    unless it comes within :data:`REPEAT_IGNORED_S` of the first: GNU ``timeout`` sends two at
    once (to the command, then to its process group). A second SIGHUP is always ignored, because
    a closing terminal sends two (the kernel's to the foreground job, then the shell's to each
    of its jobs), and the first one's clean-up must finish. Nothing is
    installed outside the main thread, nor for a signal that was ignored when the process
    started (a background job's SIGINT, ``nohup``-style launchers); the previous handlers come
    back afterwards. With ``ending`` (the ``fakedet`` command, whose process ends after the
    block) the signals end the process afterwards instead (:func:`ending_status`): Python's own
    Ctrl-C handler would raise into the interpreter's shutdown (a traceback, "Exception ignored")."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        _interrupt(KeyboardInterrupt())

    def on_sigterm(signum, frame):
        signal.signal(signum, signal.SIG_IGN)  # a second one at once is the same stop ...
        _default_after(signum, REPEAT_IGNORED_S)  # ... a later one ends the process
        _interrupt(Terminated())

    def on_sighup(signum, frame):
        signal.signal(signum, signal.SIG_IGN)
        _interrupt(HungUp())

    installed = []
    for name, handler, replaces in (("SIGINT", on_sigint, signal.default_int_handler),
                                    ("SIGTERM", on_sigterm, signal.SIG_DFL),
                                    ("SIGHUP", on_sighup, signal.SIG_DFL)):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous = signal.getsignal(signum)
            if previous is replaces:
                signal.signal(signum, handler)
                installed.append((signum, previous))
        except (ValueError, OSError):
            pass
    global _settled, _handling
    _handling, _settled = True, False
    try:
        yield
    finally:
        # restoring a handler runs a signal that is pending: it must not raise here
        settled()
        for signum, previous in installed:
            signal.signal(signum, _while_ending if ending else previous)
        _handling = _settled = False


def _default_after(signum: int, seconds: float) -> None:
    """Gives ``signum`` its default action again after ``seconds``, at the kernel's level, from a
    timer thread: Python lets only the main thread set a handler, and by then that thread may be
    busy in C code (a write to a full pipe), where a handler of Python's would not run, nor end
    the process. Where libc cannot be called (ctypes), the signal stays ignored."""
    import threading

    def reset() -> None:
        try:
            import ctypes

            libc_signal = ctypes.CDLL(None).signal
            libc_signal.argtypes, libc_signal.restype = [ctypes.c_int, ctypes.c_void_p], ctypes.c_void_p
            libc_signal(signum, None)  # SIG_DFL, the null handler
        except (OSError, AttributeError, TypeError):
            pass

    timer = threading.Timer(seconds, reset)
    timer.daemon = True
    timer.start()


def err(msg: str) -> None:
    """A message on stderr, prefixed with the program's name. A stderr that cannot take it (the
    terminal is gone after a hang-up: EIO) loses the message, not the command's records."""
    from fakedet.data.writers import control_escape, utf8_text  # a name not UTF-8: its bytes as \xHH

    try:
        click.echo(f"fakedet: {control_escape(utf8_text(msg))}", err=True)
    except BlockingIOError:  # a non-blocking stderr that is full now: this message is lost, not later ones
        pass
    except OSError:
        # the reader of a piped stderr went away (EPIPE): the message stays in the stream's buffer,
        # and the interpreter's last flush would fail on it and end the command with status 120
        silence_stderr()


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same file, or, where it is not there yet, the same
    place once links are followed (a link to nothing, which writing either would make)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_report_folder(report_path: str, stdout_used: bool = True) -> None:
    """Refuses a --report FILE that is ``-`` (stdout holds the records or the table; a file named
    ``-`` is ``./-``), or, where ``stdout_used``, stdout's own file by another name
    (``/dev/stdout``, the file stdout is redirected to), or whose folder is missing."""
    if report_path == "":
        raise click.BadParameter("the HTML report needs a file name", param_hint="--report")
    if report_path == "-":
        raise click.BadParameter("the HTML report needs a file name, not '-' (stdout holds the "
                                 "output; for a file named -, give ./-)", param_hint="--report")
    if stdout_used and _is_stdout(report_path):
        raise click.BadParameter(f"{report_path} is standard output, which holds the output: the report "
                                 "and it would overwrite each other", param_hint="--report")
    if not os.path.isdir(os.path.dirname(os.path.abspath(report_path))):
        raise click.BadParameter(f"cannot write {report_path}: No such file or directory", param_hint="--report")


def _is_stdout(path: str) -> bool:
    """Whether ``path`` names the file that stdout writes to."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # no such file; stdout closed or not a file
        return False


def refuse_an_image(target: str, what: str, hint: str) -> None:
    """Refuses to write the ``what`` (records, a report) over an existing image or video: no
    output of fakedet is one, and an image found in a folder or a list being scanned would be
    lost (a check of the paths typed cannot see those). Only a regular file is looked at, and
    only its first bytes are read."""
    if not os.path.isfile(target):
        return
    kind = None
    try:
        with open(target, "rb") as fh:
            head = fh.read(16)
        if head[4:8] == b"ftyp":  # ISO media: HEIC, AVIF, MP4, MOV
            kind = "an image or video"
        else:
            from PIL import Image

            with Image.open(target) as img:
                kind = f"an image ({img.format})"
    except Exception:  # not an image (or unreadable): nothing to protect
        return
    raise click.BadParameter(f"{target} is {kind}: writing the {what} there would overwrite it",
                             param_hint=hint)


def stdin_binary():
    return getattr(sys.stdin, "buffer", sys.stdin)


class OutputError(click.ClickException):
    """Standard output cannot take the command's output: status 2, not click's 1 ("fake")."""

    exit_code = EXIT_USAGE


def _bytes_or_escape(exc: UnicodeError):
    """Encoding error handler of a stdout whose encoding is not UTF-8: a file name's bytes that
    are not UTF-8 (surrogate escapes) are written as they are, as ``surrogateescape`` does; a
    character the encoding lacks (中 in latin-1) as its JSON escape (``\\u4e2d``), valid in jsonl
    and json, and legible in tsv and csv. No record is lost to a character. UTF-16 and UTF-32
    write no single bytes (a lone byte would also shift every character after it): there such a
    byte is written as the text ``\\xHH``, as json records write it."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    part = exc.object[exc.start:exc.end]
    wide = codecs.lookup(exc.encoding).name.startswith(("utf-16", "utf-32"))

    def byte(c: str) -> bool:  # a file name's byte that is not UTF-8, as surrogateescape holds it
        return "\udc80" <= c <= "\udcff"

    # the encoder hands over one run of what it cannot encode (中 then a bad byte, say): answer
    # for its leading stretch of one kind; it asks again for the rest
    k = next((i for i, c in enumerate(part) if byte(c) != byte(part[0])), len(part))
    if byte(part[0]):
        if wide:
            return "".join(f"\\x{ord(c) - 0xDC00:02x}" for c in part[:k]), exc.start + k
        return bytes(ord(c) - 0xDC00 for c in part[:k]), exc.start + k
    out = []
    for c in part[:k]:
        n = ord(c)
        if n > 0xFFFF:  # as JSON writes it: a UTF-16 surrogate pair
            n -= 0x10000
            out.append(f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}")
        else:
            out.append(f"\\u{n:04x}")
    return "".join(out), exc.start + k


codecs.register_error("fakedet-bytes-or-escape", _bytes_or_escape)


def stdout(hint: str = "send it to a file: > FILE") -> IO[str]:
    """sys.stdout, or a clear error when it was closed (``fakedet ... >&-``): records written
    nowhere would be lost without a word; ``hint`` says what the command offers instead. File
    names that are not UTF-8 are written as their bytes, as tsv records write them (a UTF-8
    stdout would refuse them); with another encoding (a Windows code page,
    ``PYTHONIOENCODING``) what it cannot hold is escaped instead of ending the scan."""
    if sys.stdout is None:
        raise OutputError(f"cannot write the output: standard output is closed ({hint})")
    try:
        utf8 = codecs.lookup(sys.stdout.encoding or "utf-8").name == "utf-8"
        sys.stdout.reconfigure(errors="surrogateescape" if utf8 else "fakedet-bytes-or-escape")
    except (AttributeError, ValueError, OSError, LookupError):  # not a TextIOWrapper (a test's capture)
        pass
    return sys.stdout


def silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    _to_devnull(sys.stdout)


class BarStream:
    """stderr as a progress bar's file: a stderr that cannot take the bar (its reader went away,
    ``2>&1 | head``; the terminal hung up) loses the bar, not the command's records or figures,
    and the command goes on as it would without ``--progress``. Everything but writing is
    stderr's own (``isatty``, ``fileno`` for the bar's width)."""

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
            except BlockingIOError:  # a non-blocking stderr that is full now: this drawing is lost
                pass
            except OSError:
                self.broken = True
                silence_stderr()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BlockingIOError:
                pass
            except OSError:
                self.broken = True
                silence_stderr()

    def __getattr__(self, name):
        return getattr(self.stream, name)

    # tqdm measures the terminal's width (and flushes the other stream first) only for a file
    # that equals sys.stderr or sys.stdout: this one does, as the stream it writes to
    def __eq__(self, other) -> bool:
        return other is self or other is self.stream

    __hash__ = object.__hash__


def silence_stderr() -> None:
    """After stderr failed (closed, full), point it at /dev/null: the interpreter's final flush,
    and any later message, then cannot fail and turn the exit status into another."""
    _to_devnull(sys.stderr)


def _to_devnull(stream) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def load_errors_exit(ctx: click.Context, dependency_hint: str = "",
                     interrupted_note: Optional[Callable[[], str]] = None) -> Iterator[None]:
    """Loading a model: unusable weights, devices or packages end the command with status 2 and the
    reason (a missing package's followed by ``dependency_hint``, the command's own way round it),
    an interruption with status 130 (143 for SIGTERM), its message followed by
    ``interrupted_note()`` (a scan's: that no record was written, and that its -o file was kept)."""
    from fakedet.inference.device import DependencyError, DeviceError
    from fakedet.model.checkpoint import CheckpointError

    try:
        yield
    except (CheckpointError, DeviceError, DependencyError) as exc:
        err(str(exc) + (dependency_hint if isinstance(exc, DependencyError) else ""))
        ctx.exit(EXIT_USAGE)
    except (KeyboardInterrupt, Exception) as exc:
        # an interruption, or one that came out wrapped: Python reports a Ctrl-C during
        # ``import torch`` inside a class body's __set_name__ as a RuntimeError caused by it
        signal_exc = interruption_in(exc)
        if signal_exc is None:
            raise
        err(interrupt_word(signal_exc) + (interrupted_note() if interrupted_note else ""))
        ctx.exit(interrupt_status(signal_exc))
