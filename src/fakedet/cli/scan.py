"""CLI layer: ``fakedet scan``, one record per input on stdout (or -o FILE), a summary on stderr."""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import re
import shlex
import stat
import sys
import threading
import time
from typing import IO, Iterator, Optional

import click

from fakedet.cli import engine, pipeout
from fakedet.cli.common import (
    CONTEXT,
    EXIT_FAKE,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_STATUS_HELP,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    STARTED,
    BarStream,
    HungUp,
    check_report_folder,
    err,
    interrupt_status,
    interrupt_word,
    interruption_in,
    load_errors_exit,
    refuse_an_image,
    same_file,
    settled,
    silence_stdout,
    stdin_binary,
    stdout,
    uninterrupted,
)
from fakedet.cli.htmlreport import THUMBNAIL, HtmlReport, ReportWriteError
from fakedet.cli.options import (
    TWO_WAY_HELP,
    batch_for,
    crop_option,
    face_expert_option,
    faces_option,
    progress_option,
    run_options,
    threshold_option,
    weights_option,
)
from fakedet.cli.wholefile import RecordEnds
from fakedet.data.provenance import telling_evidence
from fakedet.data.writers import tsv_escape

EXAMPLES = """\b
Examples:
  fakedet scan photo.jpg                   one image (or just: fakedet photo.jpg)
  fakedet scan --faces -f csv -o scores.csv photos/   photos of people: each face scored too
  find /data -name '*.jpg' -print0 | fakedet scan --files-from - -0
  curl -s https://example.com/x.jpg | fakedet scan -
"""


@click.command(context_settings=CONTEXT, epilog=EXAMPLES + "\n" + EXIT_STATUS_HELP,
               short_help="Score images, folders or stdin: one record per input.")
@click.argument("paths", nargs=-1, metavar="PATH...")
@click.option("--files-from", "files_from", metavar="FILE", multiple=True,
              help="Read more paths from FILE, one per line ('-' = stdin); once.")
@click.option("-0", "--null", is_flag=True, help="Paths in --files-from are NUL-separated.")
@click.option("-H", "--hidden", is_flag=True,
              help="Also scan hidden files and folders (names starting with '.') inside folders.")
@click.option("-E", "--exclude", "exclude", multiple=True, metavar="GLOB",
              help="Skip files and folders matching GLOB inside folders (repeatable): a pattern "
                   "without '/' matches names ('*.png', 'thumbs'), one with '/' paths relative to "
                   "the folder given ('raw/*.tif'); a trailing '/' matches folders only. Paths "
                   "named on the command line or in --files-from are always scanned.")
@click.option("-f", "--format", "fmt", type=click.Choice(["tsv", "csv", "jsonl", "json", "parquet"]),
              default="tsv", show_default=True,
              help="Record format (tsv has no header; parquet needs -o and pyarrow).")
@threshold_option(TWO_WAY_HELP)
@weights_option
@run_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write records to FILE instead of stdout.")
@click.option("--resume", is_flag=True,
              help="With -o FILE (tsv, csv or jsonl): skip the inputs FILE has records for already "
                   "and add the new records at its end, so that a scan that was stopped carries on "
                   "where it stopped (give the same PATHs and options). An unfinished last record "
                   "(a scan killed outright) is taken off first and its input scanned again. The "
                   "summary counts the records added; the exit status and --exit-code count the "
                   "skipped inputs' records too, as one whole scan would.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write a self-contained HTML report to FILE (thumbnails, verdicts, scores, "
                   "face boxes, evidence; sortable and filterable), written as the records are.")
@progress_option
@click.option("-q", "--quiet", is_flag=True, help="No summary, warnings or progress on stderr.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when any image is labelled fake (uncertain does not count).")
@click.option("--no-provenance", "no_provenance", is_flag=True,
              help="Do not read provenance metadata (C2PA, XMP/EXIF, generation parameters) or "
                   "watermarks: labels then come from the model alone.")
@faces_option("Find faces and score each one; p_fake is the highest face score, labelled with "
              "face-mode thresholds (an image with no face found: the whole image's score and "
              "thresholds; jsonl/json add a 'faces' list of boxes and scores and p_whole). With the "
              "shipped face expert each face's score is the fused one, and the whole image's counts "
              "only when it reaches its own fake threshold, or -t when that is lower (real still "
              "needs it below the real threshold, so a low p_fake can be uncertain); with --no-face-expert "
              "the whole image always counts.")
@face_expert_option
@crop_option
@engine.engine_options
def scan(paths, files_from, null, hidden, exclude, fmt, threshold, weights, device, batch_size,
         workers, output, resume, report_path, progress, quiet, exit_code, no_provenance, faces, face_expert,
         crop, **engine_opts):
    """Score images: one record per input (path, p_fake, label, error) on stdout.

    PATH is an image file, a folder (searched recursively for image files, in sorted order,
    skipping hidden entries unless --hidden) or '-' for one image's bytes on stdin.

    label is one of three verdicts (`fakedet info` shows the thresholds and how often
    each verdict was wrong on the test data):

    \b
      fake       the model found evidence of manipulation or generation
      uncertain  the score lies where real photos of some sources also fall;
                 most fakes get this verdict too
      real       no evidence found (not proof that the image is genuine)

    p_fake is the model's score, not the chance that the image is fake: some real
    photos score high, and fakes of kinds it never saw score near 0. Scores on images
    from sources unlike the training data are unreliable: read a verdict as a pointer,
    never as proof. Inside plain margins (a phone's screenshot of an app, a border, a
    letterbox, a meme's caption bands) the picture alone is scored, as on a story's
    blurred or gradient backdrop where its picture is found (often not once the
    screenshot was sent on as a JPEG: such a story is then scored whole, and where its
    backdrop can be told, named in the summary and given no fake verdict by its score,
    which such margins move both ways); --no-crop scores the whole image.

    Each image's provenance metadata is read too (C2PA Content Credentials, XMP/EXIF
    source type and software, Stable Diffusion front-ends' generation parameters; the
    invisible watermark with the watermark extra): jsonl, json and parquet list it as 'evidence', and
    evidence that the image was generated labels it fake whatever its score
    ('label_by': 'evidence'). Metadata can be removed or forged: its absence says nothing.
    """
    from fakedet.data.sources import WalkFilter, open_error, several_inputs

    with _whole_document_if_interrupted(output, fmt):  # numpy and the pipeline: a tenth of a second
        from fakedet.inference.stream import load_and_score

    ctx = click.get_current_context()
    if len(files_from) > 1:  # the last would silently replace the others
        raise click.UsageError("--files-from can be given once: join the lists "
                               "(cat a.txt b.txt | fakedet scan --files-from -)")
    files_from = files_from[0] if files_from else None
    if files_from == "":  # an unset variable ("--files-from $LIST"): its paths would be missing
        raise click.BadParameter("needs a file name ('-' for stdin)", param_hint="--files-from")
    if output == "":
        raise click.BadParameter("needs a file name ('-' for stdout)", param_hint="--output")
    if not paths and not files_from:
        raise click.UsageError("no input: give PATH... or --files-from FILE")
    if null and not files_from:  # a list meant for --files-from, perhaps, sent to the wrong place
        raise click.UsageError("-0/--null separates the paths of a --files-from list, and none is given "
                               "(find ... -print0 | fakedet scan -0 --files-from -)")
    if not face_expert and not faces and not quiet:
        err("warning: --no-face-expert has no effect without --faces")
    from fakedet.data.sources import spaced_names

    spaced = spaced_names(list(paths))  # read once: the records and the warning say the same
    if not quiet:  # each part gets a record saying so; the terminal is told once, before the scan
        for joined in dict.fromkeys(spaced.values()):
            err(f"warning: {shlex.quote(joined)} exists, given without quotes as separate names: "
                "quote a name that holds spaces")
    if list(paths).count("-") > 1:
        raise click.UsageError("'-' (stdin) can be given only once")
    if "-" in paths and files_from == "-":
        raise click.UsageError("'-' and --files-from - cannot both read stdin")
    if ("-" in paths or files_from == "-") and not quiet and _stdin_is_a_terminal():
        # nothing on the screen would otherwise say why the scan waits
        err("reading paths from the terminal, one per line; Ctrl-D ends the list" if files_from == "-" else
            "reading an image's bytes from the terminal; Ctrl-D ends them (fakedet scan - < photo.jpg reads a file)")

    list_stream = None
    readers: list = []  # the thread that reads the list, once started
    if files_from:
        if files_from == "-":
            list_stream = stdin_binary()
            if list_stream is None:  # started with stdin closed (``<&-``): no list, not an empty one
                raise click.BadParameter("cannot read -: standard input is closed", param_hint="--files-from")
        else:
            try:
                list_stream = open(files_from, "rb")
            except OSError as exc:
                raise click.BadParameter(f"cannot open {files_from}: {open_error(exc, files_from)}",
                                         param_hint="--files-from") from exc
            ctx.call_on_close(lambda: _close_list(list_stream, readers))  # also when a later step fails

    if output not in (None, "-"):
        _refuse_an_input(output, "records", "--output", paths, files_from)
        _check_not_busy(output)
        _check_writable(output)
    if (output in (None, "-") or _names_stdout(output)) and fmt != "parquet":
        _share_stdout_file()

    if report_path is not None:
        _check_report_path(report_path, output, paths, files_from)
    engine.check(ctx, engine_opts, fmt, output, faces, report_path)

    if quiet:  # before the first image decodes, which is while the model loads
        from fakedet.data.decode import quiet_decoders

        quiet_decoders()
    done, append_at = (_resumed(output, fmt, report_path, engine_opts["engine"], quiet, faces=faces,
                                two_way=threshold is not None) if resume
                       else ({}, None))
    folders = collections.Counter()  # folders that could not be listed, by path, awaiting their record
    filt = WalkFilter(hidden=hidden, exclude=exclude, done=done)
    own = {os.path.realpath(p): what for p, what in ((output, "records"), (report_path, "report"))
           if p not in (None, "-")}
    items = _items(paths, list_stream, null, quiet, folders, filt, files_from, own, spaced)
    with load_errors_exit(ctx, interrupted_note=lambda: " after 0 records" + _kept_unopened(output)), \
            _whole_document_if_interrupted(output, fmt):
        if list_stream is not None:
            # Paths from a list may arrive slowly (`inotifywait -m ... | fakedet scan --files-from -`):
            # read in a thread, each is scored as it comes instead of when a batch is full.
            from fakedet.inference.pipeline import LiveItems

            items = LiveItems(items)
            readers.append(items)
        # the first batches decode while the model loads
        if engine_opts["engine"] == "ray":
            stream = engine.ray_stream(items, weights, engine_opts, device=device, threshold=threshold,
                                       batch_size=batch_for(batch_size, faces), provenance=not no_provenance, filt=filt,
                                       crop=crop, several=several_inputs(paths, files_from))
        else:
            stream = load_and_score(items, weights, device=device, threshold=threshold,
                                    batch_size=batch_for(batch_size, faces), workers=workers, faces=faces,
                                    provenance=not no_provenance, expert="auto" if face_expert else None,
                                    crop=crop, **({"thumbnail": THUMBNAIL} if report_path else {}))

    if progress is None:
        progress = sys.stderr.isatty()
    if quiet:
        progress = False

    try:
        out_stream = _open_output(output, fmt, append_at)  # only once the model has loaded: a bad -w leaves no file
    except BaseException:
        stream.close()
        raise
    counter = None
    if progress and files_from != "-":  # a stream on stdin cannot be read twice
        counter = _Counter(paths, files_from, null, filt)
    report = HtmlReport(report_path, "scan", stream.detector) if report_path else None  # opened at the first batch
    code = _run_scan(stream, fmt, out_stream, progress, quiet, exit_code, folders, counter, filt, report,
                     local=engine_opts["engine"] == "local")
    settled()
    ctx.exit(code)


def _stdin_is_a_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):  # closed
        return False


def _close_list(stream, readers) -> None:
    """Closes the --files-from file, unless it is a pipe or FIFO that its reader thread still
    reads (its writer has not ended): closing would wait for that read, so such a file is left
    to the process's end, which is then at once (see fakedet.cli._exit). A regular file's read
    never waits long."""
    import stat

    from fakedet.inference.pipeline import LiveItems

    try:
        regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        regular = False
    if regular or not any(r in LiveItems.running for r in readers):
        stream.close()


@contextlib.contextmanager
def _whole_document_if_interrupted(output, fmt: str):
    """Ctrl-C or SIGTERM before the scan's first batch: stdout still gets a whole document
    (csv's header, json's ``[]``), as it does after one."""
    try:
        yield
    except BaseException as exc:  # an interruption may come out wrapped (Ctrl-C during an import)
        if (output in (None, "-") or (fmt != "parquet" and _names_stdout(output))) \
                and interruption_in(exc) is not None:
            _close_empty_output(fmt)
        raise


SCAN_HINT = "use -o FILE, or > FILE"  # what a scan with standard output closed can do instead


def _close_empty_output(fmt: str) -> None:
    """What a scan that scored nothing writes on stdout: csv's header, json's ``[]``, nothing
    in tsv and jsonl (a broken pipe is no error)."""
    from fakedet.data.writers import Writer

    try:
        Writer(stdout(SCAN_HINT), fmt).close()
    except (OSError, click.ClickException):
        silence_stdout()


def _resumed(output: Optional[str], fmt: str, report_path: Optional[str], engine_name: str,
             quiet: bool, faces: bool = False, two_way: bool = False) -> tuple[dict, Optional[int]]:
    """``--resume``: the paths the ``-o`` file has records for (:func:`fakedet.data.sources.done_key`),
    each with its record's outcome (:func:`fakedet.data.writers.recorded`), and where the new
    records go: after the file's whole records (its length, less a last record without its
    newline, a scan killed outright while writing it, which the first new record's write takes
    off), or None where the file is new or holds nothing whole. Refuses records that another
    kind of scan made where they say so: jsonl's of face mode, or not (``faces``), and three
    verdicts' (an ``uncertain`` label) carried on by the two-way rule of -t (``two_way``)."""
    from fakedet.data.sources import done_key, open_error
    from fakedet.data.writers import RESUMABLE, recorded

    if output in (None, "-") or _names_stdout(output):
        raise click.UsageError("--resume needs -o FILE: the records file to carry on (a file, not stdout)")
    if fmt not in RESUMABLE:
        raise click.BadParameter(f"--resume adds records to a tsv, csv or jsonl file, not to {fmt} "
                                 "(a json array is closed, a parquet file finished)", param_hint="--format")
    if report_path is not None:
        raise click.UsageError("--resume and --report: the report would hold only the inputs scanned this "
                               "time; make the report in a scan of its own")
    if engine_name != "local":
        raise click.UsageError("--resume works with the local engine only")
    try:
        with open(output, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise click.BadParameter(f"--resume reads the records of a regular file, and {output} is "
                                         "not one", param_hint="--output")
            modes: set = set()
            paths, whole = recorded(fh, fmt, modes)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        return {}, None
    except ValueError as exc:
        raise click.BadParameter(f"cannot resume {output}: its {exc} (-f names the format it was written "
                                 "in)", param_hint="--output") from None
    except OSError as exc:
        raise click.BadParameter(f"cannot read {output}: {open_error(exc, output)}", param_hint="--output") from exc
    other = ("were made with --faces (a face-mode scan's): give --faces again" if not faces and "faces" in modes
             else "were made without --faces: leave --faces out" if faces and "whole" in modes
             else "have three verdicts (uncertain among them): leave -t out" if two_way and "uncertain" in
             paths.values() else "")
    if other:
        raise click.UsageError(f"cannot resume {tsv_escape(output)}: its records {other} to carry on, or write to "
                               "another file (one file would mix records of two kinds)")
    if whole < size and not quiet:
        err(f"warning: {tsv_escape(output)} ends in an unfinished record (a scan stopped while writing it): "
            "it is taken off when the first record is added, and its input scanned again")
    return {done_key(p): outcome for p, outcome in paths.items()}, whole if whole else None


def _open_output(output: Optional[str], fmt: str = "tsv", append_at: Optional[int] = None) -> IO[str]:
    if output is None or output == "-":
        return stdout(SCAN_HINT)  # undecodable file names pass through
    parent = os.path.dirname(os.path.abspath(output))  # (click refuses a directory itself)
    if not os.path.isdir(parent):
        raise click.BadParameter(f"cannot write {output}: No such file or directory", param_hint="--output")
    try:
        st = os.stat(output)
    except OSError:
        return _LazyFile(output)
    if fmt == "parquet":  # written by pyarrow to the path, which says what a pipe cannot take
        return _LazyFile(output)
    if _is_stdout(st):  # -o /dev/stdout: stdout itself, given up on as stdout is (pipeout)
        return stdout(SCAN_HINT)
    return _LazyFile(output, fifo=stat.S_ISFIFO(st.st_mode), append_at=append_at)


def _resume_hint(out_stream, fmt: str, n: int, report: bool = False, local: bool = True) -> str:
    """For the last message of a stopped scan that wrote records to an ``-o`` file it can carry
    on in: how (``report``: the scan made a --report, which --resume cannot; ``local``: the local
    engine, the only one --resume runs on)."""
    from fakedet.data.writers import RESUMABLE

    if n == 0 or not local or fmt not in RESUMABLE or not isinstance(out_stream, _LazyFile) or out_stream.fifo:
        return ""
    how = "with --resume instead of --report" if report else "with --resume"
    gone = getattr(out_stream, "gone", None)
    if gone == "deleted":
        return (f"; {tsv_escape(out_stream.path)} was deleted while the scan wrote it: its records are lost, and "
                "the same command without --resume scans every input again")
    if gone == "moved":
        return (f"; {tsv_escape(out_stream.path)} was moved or replaced while the scan wrote it (a log rotation): "
                f"its records are in the file it was moved to, which the same command {how} and -o naming that "
                "file carries on")
    return f"; the same command {how} scans the rest into {tsv_escape(out_stream.path)}"


def _gone(fh, path: str, ident) -> Optional[str]:
    """Before the ``-o`` file is closed: "deleted" where the file written has no name left,
    "moved" where ``path`` names another file or none, else None (``ident``: the file's device
    and inode, None where it is no regular file)."""
    if ident is None:
        return None
    try:
        if os.fstat(fh.fileno()).st_nlink == 0:
            return "deleted"
        st = os.stat(path)
    except FileNotFoundError:
        return "moved"
    except (OSError, ValueError):
        return None
    return None if (st.st_dev, st.st_ino) == ident else "moved"


def _file_kept(out_stream) -> str:
    """What to add to the last message of a scan that made no record where its ``-o`` file was
    there before: it is left as it was, and holds an earlier scan's records, not this one's
    (nothing where the file was opened, or is not there, or is a named pipe)."""
    if not isinstance(out_stream, _LazyFile) or out_stream.fh is not None or out_stream.fifo:
        return ""
    return _kept_unopened(out_stream.path)


def _kept_unopened(output: Optional[str]) -> str:
    """The same for an ``-o`` file not opened yet (a scan stopped while its model loaded): a
    regular file only (not a named pipe, nor /dev/null)."""
    if output in (None, "-"):
        return ""
    try:
        if not stat.S_ISREG(os.stat(output).st_mode) or _names_stdout(output):
            return ""
    except OSError:  # not there, or a dangling link: the scan would have made the file
        return ""
    return f"; {tsv_escape(output)} was not written: what it holds is from before this scan"


def _names_stdout(path: str) -> bool:
    """Whether ``path`` is stdout's own file by another name (``/dev/stdout``)."""
    try:
        return _is_stdout(os.stat(path))
    except OSError:
        return False


def _is_stdout(st: os.stat_result) -> bool:
    try:
        return sys.stdout is not None and os.path.samestat(st, os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # closed, or no descriptor (a test's capture)
        return False


class OutputBusy(OSError):
    """The ``-o`` file is being written by another scan (:func:`_lock`)."""


def _busy_text(path: str) -> str:
    return (f"{tsv_escape(path)} is being written by another fakedet scan: two scans into one -o file would "
            "lose or mix their records (wait for it to end, or write to another file)")


def _file_lock(fd: int, command: str, kind: str) -> "bool | None":
    """An open file description's lock on the whole file (Linux's F_OFD_SETLK / F_OFD_GETLK):
    held until every descriptor of this open file is closed, so that opening and closing the
    file elsewhere (:mod:`fakedet.cli.wholefile` reads it back) does not drop it, as it would a
    POSIX lock; and apart from ``flock`` locks, so that a job run under ``flock FILE`` on the
    ``-o`` file itself is not refused. ``command`` "set": takes it, raising BlockingIOError
    where another scan holds one; "test": whether another scan holds one (nothing taken). A
    POSIX lock of another program (an office suite's on a csv) is not a scan's: nothing is
    checked against it, as before such locks were taken. None where the platform or the file
    system has no such locks (nothing is checked then)."""
    import struct

    layout = "hhqqi4x"  # struct flock: type, whence, start, length (0: to the end), pid (0 for OFD)
    try:
        import fcntl

        lock_type = {"write": fcntl.F_WRLCK, "read": fcntl.F_RDLCK}[kind]
        query = struct.pack(layout, lock_type, os.SEEK_SET, 0, 0, 0)
        if command == "set":
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, query)
                return False
            except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held; by a scan?
                busy = _file_lock(fd, "test", kind)
        else:
            held, _, _, _, pid = struct.unpack(layout, fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query))
            return held != fcntl.F_UNLCK and pid == -1  # -1: an open file description's lock, a scan's
    except (ImportError, AttributeError):  # not Linux
        return None
    except OSError:  # ENOLCK, EINVAL: no such locks here
        return None
    if busy:
        raise BlockingIOError(errno.EAGAIN, "locked")
    return None  # another program's POSIX lock: written unlocked, as before


def _lock(fd: int, path: str) -> None:
    """Takes the ``-o`` file for this scan (:func:`_file_lock`, released when the process ends,
    however it ends); raises :class:`OutputBusy` where another scan holds it."""
    try:
        _file_lock(fd, "set", "write")
    except BlockingIOError:
        raise OutputBusy(errno.EAGAIN, _busy_text(path)) from None


def _check_not_busy(output: Optional[str]) -> None:
    """Before the model loads: refuses an ``-o`` file that another scan is writing (which
    holds the lock :func:`_lock` takes), leaving it untouched and taking no lock."""
    if output in (None, "-"):
        return
    try:  # a regular file only: a named pipe or a device is not opened here (its reader would see it)
        if not stat.S_ISREG(os.stat(output).st_mode):
            return
        fd = os.open(output, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return  # not there (made at the first record), or unreadable: told where it is written
    try:
        if _file_lock(fd, "test", "write"):
            raise click.UsageError(_busy_text(output))
    finally:
        os.close(fd)


_SHARED: list = []  # the descriptor that holds stdout's file's shared lock, for the process's life


def _share_stdout_file() -> None:
    """Records going to a regular file through stdout (``>> scores.jsonl``): takes a shared lock
    on it (:func:`_file_lock`, through a descriptor of its own: stdout's is write-only), so that
    an ``-o`` scan into the same file is refused while this one writes (it emptied the file),
    and this one is refused while an ``-o`` scan writes it. Several scans appending through
    stdout share it. Nothing where stdout is no regular file, or the file cannot be read."""
    try:
        if not stat.S_ISREG(os.fstat(sys.stdout.fileno()).st_mode):
            return
        fd = os.open(f"/proc/self/fd/{sys.stdout.fileno()}", os.O_RDONLY)
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's capture), no /proc
        return
    try:
        _file_lock(fd, "set", "read")
    except BlockingIOError:
        os.close(fd)
        raise click.UsageError("standard output's file is being written by another fakedet scan (its -o file): "
                               "two scans into one file would lose or mix their records") from None
    _SHARED.append(fd)


def _check_writable(output: str) -> None:
    """Before the model loads: refuses an ``-o`` FILE in a folder that is not there, or where
    this user cannot make it (read-only, another user's), which was found only at the first
    record or once the model had loaded."""
    if os.path.lexists(output):
        return  # (click checks an existing file; the first write reports the rest)
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise click.BadParameter(f"cannot write {output}: " + (
            f"Not a directory ({parent} is a file, not a folder)" if os.path.exists(parent) else
            f"No such file or directory (its folder, {parent}, is not there)"), param_hint="--output")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write {output}: Permission denied (its folder, {parent}, does not let "
                                 "this user make files)", param_hint="--output")


class _LazyFile:
    """A file for the records, opened (and so truncated) only when the first record is ready
    (:meth:`ensure_open`, which the scan calls where a signal can still stop it: a named pipe's
    open waits for its reader): a scan that finds no image, or stops before scoring one, leaves
    an existing file as it was. A named pipe (``fifo``) is written as stdout's pipe is
    (:func:`fakedet.cli.pipeout.open_output`). ``append_at`` (``--resume``): the records go after
    the file's first ``append_at`` bytes, its whole records (what follows, an unfinished record,
    is taken off then)."""

    def __init__(self, path: str, fifo: bool = False, append_at: Optional[int] = None):
        self.path, self.fh, self.fifo, self.append_at = path, None, fifo, append_at
        self.ident = None  # the regular file opened: (device, inode), to tell when it was moved
        self.gone = None  # at close: "deleted" or "moved" where the path no longer names that file

    @property
    def appending(self) -> bool:
        return self.append_at is not None

    def ensure_open(self) -> None:
        if self.fh is None and self.fifo:
            self.fh = pipeout.open_output(self.path)
        elif self.fh is None:
            # opened without truncating it, locked, and only then cut: a second scan into the
            # same file (another list, a second --resume) must not empty the records of a first.
            # Appending, always: a file emptied under the scan (a log rotation's copytruncate)
            # gets the next records at its start, not after a hole of NULs, as a `>>` file does
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):  # not /dev/null, which every scan may share
                    self.ident = (st.st_dev, st.st_ino)
                    _lock(fd, self.path)
                    size = os.fstat(fd).st_size
                    keep = self.append_at if self.appending else 0
                    if size > keep:
                        os.ftruncate(fd, keep)
                self.fh = open(fd, "a", encoding="utf-8", errors="surrogateescape", newline="")
            except BaseException:
                if self.fh is None:
                    os.close(fd)
                raise

    def write(self, text: str) -> int:
        self.ensure_open()
        return self.fh.write(text)

    def fileno(self) -> int:
        if self.fh is None:
            raise ValueError("not open yet")
        return self.fh.fileno()

    encoding, errors = "utf-8", "surrogateescape"  # as the file is opened

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.gone = _gone(self.fh, self.path, self.ident)
            self.fh.close()
        elif self.fifo:  # never opened (no record): a reader waiting on the pipe gets its end
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader (ENXIO): nobody to tell
                pass


def _check_report_path(report_path: str, output, paths, files_from) -> None:
    """Refuses a --report FILE that is an input or the -o file, or whose folder is missing."""
    check_report_folder(report_path, stdout_used=output in (None, "-"))
    if output not in (None, "-") and (same_file(output, report_path)
                                      or os.path.abspath(output) == os.path.abspath(report_path)):
        raise click.BadParameter("the report and the records cannot go to the same file", param_hint="--report")
    _refuse_an_input(report_path, "report", "--report", paths, files_from)


def _refuse_an_input(target: str, what: str, hint: str, paths, files_from) -> None:
    """Refuses to write the ``what`` to ``target`` when it is one of the inputs or the list file,
    or an existing image (which a folder or list being scanned may hold)."""
    for path in (*paths, *([files_from] if files_from not in (None, "-") else [])):
        if path != "-" and same_file(path, target):
            raise click.BadParameter(f"{target} is also an input: writing the {what} there would "
                                     "overwrite it", param_hint=hint)
    refuse_an_image(target, what, hint)


class InputsError(Exception):
    """The inputs cannot be read further (the --files-from list failed mid-way): the scan
    stops, keeping the records made, with status 2."""


def _items(paths, list_stream, null, quiet, folders: collections.Counter, filt,
           files_from: Optional[str] = None, own: Optional[dict] = None,
           spaced: Optional[dict] = None) -> Iterator:
    """All inputs, warning (on stderr) about folders that hold no image and counting in
    ``folders`` the error records that stand for a folder that could not be listed. A read
    error of the list of paths becomes an :class:`InputsError` naming it. ``own`` maps the
    real paths of this scan's output files (-o, --report) to what goes there: found in a folder
    or a list (an earlier run's report named ``x.png``, say), such a file is no input, and is
    skipped with a note instead of being read and then overwritten. ``spaced``: the PATHs'
    :func:`fakedet.data.sources.spaced_names`, read once before the scan."""
    from fakedet.data.sources import iter_items

    def warn(path):
        own = filt.last if filt.last is not None else filt  # what this folder's walk skipped
        skipped = f" ({_skipped_text(own)})" if own.skipped else ""
        err(f"warning: no image files found in {path}{skipped}")

    try:
        for item in iter_items(paths, list_stream, null, stdin_binary(),
                               on_empty=None if quiet else warn, filt=filt, spaced=spaced):
            if item.folder:
                folders[item.path] += 1
            elif own and item.error is None and isinstance(item.source, str) \
                    and os.path.realpath(item.path) in own:
                if not quiet:
                    err(f"skipped {item.path}: this scan writes its {own[os.path.realpath(item.path)]} there")
                continue
            yield item
    except OSError as exc:
        what = f"--files-from {files_from}" if files_from not in (None, "-") else \
            "--files-from - (stdin)" if files_from == "-" else "the inputs"
        raise InputsError(f"cannot read {what}: {exc.strerror or exc}") from exc


class _Counter:
    """Counts the inputs in a background thread, so that the progress bar gets its total (and
    an ETA) without the first records waiting for a long folder walk."""

    def __init__(self, paths, files_from: Optional[str], null: bool, filt=None):
        self.total: Optional[int] = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.count, args=(list(paths), files_from, null, filt),
                                       name="fakedet-count", daemon=True)
        self.thread.start()

    def count(self, paths, files_from, null, filt) -> None:
        from fakedet.data.sources import count_items

        self.total = count_items(paths, files_from, null, stop=self.stopping.is_set, filt=filt)

    def stop(self) -> None:
        self.stopping.set()


def _same_terminal(a, b) -> bool:
    """Whether two streams write to the same terminal."""
    try:
        return a.isatty() and b.isatty() and os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
    except (AttributeError, ValueError, OSError):
        return False


def _run_scan(stream, fmt, out_stream, progress, quiet, exit_code,
              folders: Optional[collections.Counter] = None, counter: Optional[_Counter] = None,
              filt=None, report: Optional[HtmlReport] = None, local: bool = True) -> int:
    from tqdm import tqdm

    from fakedet.data.sources import MISGIVEN
    from fakedet.data.writers import Writer

    det = stream.detector
    writer = None  # made at the first batch: an -o file stays untouched until a record exists

    ends = RecordEnds()  # a write failing half-way leaves a file of whole records

    def get_writer() -> Writer:
        nonlocal writer
        if writer is None:
            writer = Writer(ends.tee(out_stream) if fmt != "parquet" else out_stream, fmt, faces=bool(det.faces),
                            header=not getattr(out_stream, "appending", False))
        return writer

    folders = collections.Counter() if folders is None else folders
    n = n_fake = n_unc = n_real = n_err = n_noface = n_folders = n_evidence = n_by_evidence = 0
    n_misgiven = 0  # inputs given the wrong way (a list read as an image): a usage error
    reasons: collections.Counter = collections.Counter()  # the images not scored, by why
    fakes: list[str] = []  # the first few images labelled fake, to name them
    reals: list[str] = []  # ... and real
    by_evidence: list[str] = []  # the first few images labelled fake by their provenance, to name them
    framed: list[str] = []  # ... and of those in a larger flat frame, and of animations
    animated: list[str] = []
    n_framed = n_animated = 0
    cropped: list[str] = []  # ... and of those scored on the picture inside their margins
    n_cropped = 0
    nofaces: list[str] = []  # ... and, in face mode, of those in which no face was found
    t0 = time.perf_counter()
    # Records and the bar on one terminal: the bar is wiped before each batch is written and drawn
    # again below it, so that no record starts on the bar's line. A json array's last record of a
    # batch waits for the next one's comma on its line, where the bar would be drawn: json records
    # on the bar's terminal get no bar (they show the progress themselves).
    shared = progress and out_stream is sys.stdout and _same_terminal(sys.stdout, sys.stderr)
    if shared and fmt == "json":
        progress = shared = False
    bar = tqdm(unit="img", file=BarStream(), disable=not progress, dynamic_ncols=True)
    interrupted: Optional[BaseException] = None
    write_error = None
    inputs_error: Optional[InputsError] = None
    finished = False  # every batch was read
    pipe_closed = False  # the records' reader went away
    report_error: Optional[ReportWriteError] = None
    try:
        for results in stream:
            if writer is None and fmt != "parquet":
                if isinstance(out_stream, _LazyFile):
                    # here, a signal ends a named pipe's wait for its reader (parquet is written
                    # under a temporary name and renamed onto the file when whole: never
                    # truncated first)
                    out_stream.ensure_open()
                ends.start(out_stream, fmt, out_stream.path if isinstance(out_stream, _LazyFile) else None)
            # a batch is written whole and counted, or not at all: an interruption arriving
            # inside the block takes effect at its end
            with uninterrupted():
                if shared:
                    bar.clear()
                get_writer().write(results)
                ends.mark()
                n += len(results)
                n_err += sum(1 for r in results if r.error is not None)
                n_misgiven += sum(1 for r in results if r.error in MISGIVEN)
                n_fake += sum(1 for r in results if r.label == "fake")
                fakes += [r.path for r in results if r.label == "fake"][:3 - len(fakes)]
                n_unc += sum(1 for r in results if r.label == "uncertain")
                n_real += sum(1 for r in results if r.label == "real")
                reals += [r.path for r in results if r.label == "real"][:3 - len(reals)]
                n_noface += sum(1 for r in results if r.faces == [])
                nofaces += [r.path for r in results if r.faces == []][:3 - len(nofaces)]
                n_evidence += sum(1 for r in results if telling_evidence(r.evidence))
                n_by_evidence += sum(1 for r in results if r.label_by == "evidence")
                by_evidence += [r.path for r in results if r.label_by == "evidence"][:3 - len(by_evidence)]
                n_framed += sum(1 for r in results if r.framed)
                framed += [r.path for r in results if r.framed][:3 - len(framed)]
                n_cropped += sum(1 for r in results if r.cropped is not None)
                cropped += [r.path for r in results if r.cropped is not None][:3 - len(cropped)]
                n_animated += sum(1 for r in results if r.animated)
                animated += [r.path for r in results if r.animated][:3 - len(animated)]
                for r in results:
                    if r.error is None:
                        continue
                    if folders[r.path] > 0:
                        folders[r.path] -= 1
                        n_folders += 1
                    else:
                        reasons[error_kind(r.error)] += 1
                if counter is not None and bar.total is None and counter.total is not None:
                    bar.total = max(counter.total, n)
                    bar.refresh()
                bar.update(len(results))
                if shared or bar.n == len(results):
                    # the first records: shown at once (tqdm skips an update within 0.1 s of
                    # the last it drew, and of a slow list the next may be long in coming)
                    bar.refresh()
                if report is not None:
                    try:
                        report.add(results)
                    except ReportWriteError as exc:  # the report's file, not the records: they go on
                        report.abandon()
                        report_error, report = exc, None
                        err(f"{exc.strerror}; the scan goes on without the report")
        finished = True
        if writer is not None or out_stream is sys.stdout:  # stdout gets json's [] even for none
            with uninterrupted():  # a signal now takes effect once the array is closed
                get_writer().close()
    except BrokenPipeError:
        # The reader went away (`fakedet scan dir | head`): stop quietly (but for a report that
        # could not be made, below).
        silence_stdout()
        pipe_closed = True
    except (KeyboardInterrupt, InputsError) as exc:
        # Ctrl-C, SIGTERM or SIGHUP (common.Terminated), or the list of paths broke off: the
        # records made are kept, a json array closed
        if isinstance(exc, InputsError):
            inputs_error = exc
        else:
            interrupted = exc
        try:
            if writer is not None or out_stream is sys.stdout:
                try:
                    with uninterrupted():
                        get_writer().close()
                except KeyboardInterrupt:  # a second signal: the first decides the status
                    pass
        except BrokenPipeError:
            silence_stdout()
        except OSError as exc:
            write_error = exc
    except OSError as exc:  # a full disk, a lost network share: the records cannot be kept
        write_error = exc
    finally:
        if writer is not None:  # a parquet file not finished (a write error, a crash): its
            writer.abort()  # temporary file goes, and the -o file keeps what it held
        if counter is not None:
            counter.stop()
            if bar.total is None and counter.total is not None:
                bar.total = max(counter.total, n)
        bar.close()
        if report is not None:  # the summary, and the end of the document
            try:
                line = _summary(det, n - n_folders, n_fake, n_unc, n_err - n_folders, n_folders,
                                time.perf_counter() - t0, time.perf_counter() - STARTED)
                stop = (f"{interrupt_word(interrupted)} after {n} record{'s' if n != 1 else ''}; " if interrupted else
                        f"{inputs_error}; stopped after {n} record{'s' if n != 1 else ''}; " if inputs_error else
                        f"the records' reader closed the output after {n} record{'s' if n != 1 else ''}; "
                        if pipe_closed else
                        f"the records could not be written ({write_error.strerror or write_error}) after {n} "
                        f"record{'s' if n != 1 else ''}; " if write_error is not None else "")
                line = "\n".join([line, *_skipped_notes(filt, exit_code),
                                  *_fake_notes(det, n_fake, fakes, n_real, reals, n_unc),
                                  *_error_notes(reasons),
                                  *_face_notes(det, n - n_err, n_noface, nofaces),
                                  *_evidence_notes(n_evidence, n_by_evidence, by_evidence),
                                  *_picture_notes(n_framed, framed, n_animated, animated, n_cropped, cropped),
                                  *_unmatched_notes(filt)])
                with uninterrupted():  # a signal now takes effect once the report is whole
                    report.close(stop + line, complete=finished and write_error is None and not pipe_closed)
            except OSError as exc:
                write_error = write_error or exc
        if out_stream is not sys.stdout:
            try:
                out_stream.close()
            except OSError as exc:
                write_error = write_error or exc
    elapsed = time.perf_counter() - t0
    if report is not None and not report.started and isinstance(report.target, str):
        # a report is made of records: none was made, so the file was never created (say so,
        # whatever the reason given next)
        err(f"no report written to {report.target}: " + (
            "the records' reader went away before the first batch was written whole" if pipe_closed
            else "no record was written"))
    if pipe_closed:
        ends.close()
        return EXIT_PIPE
    if (write_error is not None and isinstance(interrupted, HungUp) and out_stream is sys.stdout
            and not isinstance(write_error, ReportWriteError)):
        silence_stdout()  # the records were going to the terminal that hung up: it is gone
        write_error = None
    if write_error is not None:
        if isinstance(write_error, ReportWriteError):  # the report's file, not the records
            ends.close()
            err(write_error.strerror)
        else:
            if out_stream is sys.stdout:
                silence_stdout()  # the interpreter's final flush would fail the same way
            cut = ends.cut()
            ends.close()
            where = f" to {tsv_escape(out_stream.path)}" if isinstance(out_stream, _LazyFile) else ""
            err((write_error.strerror if isinstance(write_error, OutputBusy) else  # (it names the file)
                 f"cannot write the records{where}: {write_error.strerror or write_error}") + (
                "; the unfinished record was taken off the end of the file, which ends with a "
                "whole record" if cut else "") + _resume_hint(out_stream, fmt, n, report is not None, local))
        return EXIT_USAGE
    ends.close()
    kept = _file_kept(out_stream) if n == 0 else ""
    if interrupted is not None:
        err(f"{interrupt_word(interrupted)} after {n} record{'s' if n != 1 else ''}{_so_far(n_fake, n_err)}{kept}"
            + _resume_hint(out_stream, fmt, n, report is not None, local))
        return interrupt_status(interrupted)
    if inputs_error is not None:
        err(f"{inputs_error}; stopped after {n} record{'s' if n != 1 else ''}{_so_far(n_fake, n_err)}{kept}"
            + _resume_hint(out_stream, fmt, n, report is not None, local))
        return EXIT_USAGE
    if n == 0 and filt is not None and filt.skipped_done:
        if not quiet:
            k = filt.skipped_done
            err(f"nothing left to scan: {k} input{'s' if k != 1 else ''} found, each with a record in the -o file "
                f"already (--resume){_done_outcomes(filt, exit_code)}")
        return _status(filt.done_errors, filt.done_fakes, exit_code)
    if n == 0:
        err(f"no images found{kept}")
        return EXIT_USAGE
    if not quiet:
        err(_summary(det, n - n_folders, n_fake, n_unc, n_err - n_folders, n_folders, elapsed,
                     time.perf_counter() - STARTED))
        for line in [*_skipped_notes(filt, exit_code), *_fake_notes(det, n_fake, fakes, n_real, reals, n_unc),
                     *_error_notes(reasons),
                     *_face_notes(det, n - n_err, n_noface, nofaces),
                     *_evidence_notes(n_evidence, n_by_evidence, by_evidence),
                     *_picture_notes(n_framed, framed, n_animated, animated, n_cropped, cropped),
                     *_unmatched_notes(filt)]:
            err(line)
    if report_error is not None:  # every record was written, the report was not
        return EXIT_USAGE
    if n_misgiven:  # said under -q too: it is why the status is 2, not 3
        err(f"usage error: {n_misgiven} input{'s' if n_misgiven != 1 else ''} given the wrong way (a list of paths "
            f"read as an image, a list read with the wrong separator, or '-' inside a list): "
            f"{'its' if n_misgiven == 1 else 'each'} record's error says how to give it")
        return EXIT_USAGE
    if filt is not None:  # --resume: the records the -o file has already count too
        n_err, n_fake = n_err + filt.done_errors, n_fake + filt.done_fakes
    return _status(n_err, n_fake, exit_code)


def _so_far(n_fake: int, n_err: int) -> str:
    """For the last message of a stopped scan, which gives no summary: the records so far that
    are fake or errors, which the status of a stopped scan does not tell."""
    parts = [f"{k} {what}" for k, what in ((n_fake, "labelled fake"), (n_err, "error" if n_err == 1 else "errors"))
             if k]
    return f" ({', '.join(parts)})" if parts else ""


def _status(n_err: int, n_fake: int, exit_code: bool) -> int:
    """A finished scan's exit status: 3 where an input had an error record, else 1 where one was
    labelled fake and ``--exit-code`` asks, else 0."""
    if n_err:
        return EXIT_UNREADABLE
    if exit_code and n_fake:
        return EXIT_FAKE
    return EXIT_OK


def _done_outcomes(filt, exit_code: bool) -> str:
    """What the records of the inputs ``--resume`` skipped say, where any is fake or an error:
    the exit status counts them (fakes with ``exit_code`` only), as it would have in one scan."""
    parts = [f"{k} {what}" for k, what in ((filt.done_fakes, "labelled fake"),
                                           (filt.done_errors, "with an error record")) if k]
    if not parts:
        return ""
    counted = ("which the exit status counts" if exit_code or not filt.done_fakes
               else "which the exit status counts with --exit-code" if not filt.done_errors
               else "which the exit status counts (the fakes with --exit-code)")
    return f"; of these, {' and '.join(parts)}, {counted}"


def _fake_notes(det, n_fake: int, fakes: list, n_real: int = 0, reals: Optional[list] = None,
                n_unc: int = 0) -> list[str]:
    """The summary's lines naming the first few images labelled fake, and real (three verdicts
    only: under ``-t`` the summary says that real means only a score below it), each with what
    the verdict does not say (the records name them all), and what uncertain means where any
    image got it (the commonest verdict, of real and fake images alike)."""
    out = []
    if n_fake:
        out.append(f"labelled fake{_named(fakes, n_fake)}: a reason to look closer, not proof")
    if n_unc and getattr(det, "three_way", False):
        out.append(f"labelled uncertain ({n_unc} image{'s' if n_unc != 1 else ''}): the score lies where real photos "
                   "of some sources also fall, and most fakes get this verdict too: it says little either way")
    if n_real and getattr(det, "three_way", False):
        out.append(f"labelled real{_named(reals or [], n_real)}: no evidence of manipulation found, which is not "
                   "proof that an image is genuine (fakes get this verdict too, most often of kinds the model "
                   "never saw)")
    return out


def error_kind(error: str) -> str:
    """An error record's reason in a few words, for counting: its text without what is in
    brackets, up to the first '; ' and the first ': ' ("one colour only", "image too large",
    "video files are not supported"), except after a format's name, whose words after it say
    what to do ("HEIC/HEIF image: reading it needs pillow-heif")."""
    text = re.sub(r"\s*\([^()]*\)", "", error).split("; ", 1)[0].strip()
    head, sep, rest = text.partition(": ")
    if sep and re.fullmatch(r"[A-Z][A-Z0-9/]* image", head):
        return f"{head}: {rest.split(': ', 1)[0]}"
    return head.strip() or error


def _error_notes(reasons: collections.Counter) -> list[str]:
    """The summary's line on the images not scored, by reason, the commonest first (the records
    say each one's whole error)."""
    if not reasons:
        return []
    common = reasons.most_common(4)
    rest = sum(reasons.values()) - sum(k for _, k in common)
    parts = [f"{k} {tsv_escape(why)}" for why, k in common] + ([f"{rest} for other reasons"] if rest else [])
    return [f"not scored: {'; '.join(parts)} (each record's 'error' says why)"]


def _face_notes(det, n_scored: int, n_noface: int, nofaces: Optional[list] = None) -> list[str]:
    """A face-mode scan's line for its summary (none outside face mode): how faces were scored,
    and how the images without one were, naming the first few (``nofaces``): a counsellor's
    portrait whose face was missed got `uncertain` at a score below another's `real`, and the
    line did not say which image it was."""
    if not det.faces:
        return []
    from fakedet.evaluation.verdicts import threshold_text

    expert = "with the face expert" if det.expert is not None else "by the network alone"
    fake_at, real_below = det.cutoffs
    whole = (f"fake at >= {fake_at:.6f}, real below {threshold_text(real_below)}" if real_below < fake_at
             else f"threshold {threshold_text(fake_at)}")
    gated = ""
    if det.whole_gate is not None and det.real_below < det.threshold:
        # p_fake leaves out a whole image under the gate; the real verdict does not
        gated = (f"; with a face, real needs every score, the whole image's too, below "
                 f"{threshold_text(det.real_below)}: a p_fake under it may still be uncertain")
    noface = (f"{n_noface} image{'s' if n_noface != 1 else ''}{_named(nofaces or [], n_noface)} without a face "
              f"found scored as a whole (whole-image thresholds: {whole})" if n_noface else
              "a face found in every image scored" if n_scored > 0 else "no image scored")
    return [f"faces scored {expert}; {noface}{gated}"]


def _unmatched_notes(filt) -> list[str]:
    return [_unmatched_text(filt.unmatched)] if filt is not None and filt.unmatched else []


def _unmatched_text(patterns: list) -> str:
    """The warning for --exclude patterns that skipped nothing in the folders walked (a typo, or
    a case that differs: patterns are case-sensitive, as fd's are)."""
    quoted = ", ".join(shlex.quote(tsv_escape(p)) for p in patterns)  # a newline in one as \n
    return (f"warning: -E/--exclude {quoted} matched nothing in the folders walked (patterns are "
            "case-sensitive; one without '/' matches names, one with '/' paths from the folder given)")


def _evidence_notes(n_evidence: int, n_by_evidence: int, by_evidence: list) -> list[str]:
    """The summary's line on images whose metadata or watermark says how they were made, naming
    the first few labelled fake by it (a tsv record does not say why a low score is labelled
    fake)."""
    if not n_evidence:
        return []
    named = ""
    if by_evidence:
        more = f" and {n_by_evidence - len(by_evidence)} more" if n_by_evidence > len(by_evidence) else ""
        named = f" ({', '.join(tsv_escape(p) for p in by_evidence)}{more})"
    return [f"{n_evidence} image{'s' if n_evidence != 1 else ''} with provenance evidence of how "
            f"{'they were' if n_evidence != 1 else 'it was'} made, {n_by_evidence} labelled fake by it"
            f"{named}; -f jsonl (or json, parquet, --report) shows what it says, and what could not be read"]


def _picture_notes(n_framed: int, framed: list, n_animated: int, animated: list, n_cropped: int = 0,
                   cropped: Optional[list] = None) -> list[str]:
    """The summary's lines on pictures a scan may have misread: inside wide margins (a
    screenshot's app around a fake took it from fake to a low score) and scored whole all the
    same, or the first frame of an animation (or page of a TIFF); and on those scored on the picture inside plain
    margins (:data:`fakedet.data.decode.FRAME_SHARE` of the image or more, or bands around it
    from :data:`fakedet.data.decode.CUT_SHARE` on) or on a story's smooth backdrop."""
    out = []
    if n_cropped:
        out.append(f"{n_cropped} image{'s' if n_cropped != 1 else ''}{_named(cropped or [], n_cropped)} "
                   f"{'have' if n_cropped != 1 else 'has'} margins around the picture, as a screenshot, "
                   f"a border, a letterbox, a meme's caption bands or a story's backdrop give (or a plain "
                   f"backdrop): the picture inside "
                   f"{'them' if n_cropped != 1 else 'it'} "
                   "was scored ('cropped' in jsonl, json and parquet gives its box; --no-crop scores the whole image)")
    if n_framed:
        out.append(f"{n_framed} image{'s' if n_framed != 1 else ''}{_named(framed, n_framed)} "
                   f"{'have' if n_framed != 1 else 'has'} wide margins around the picture, as a screenshot, "
                   "a border or a story's blurred or gradient backdrop gives, and "
                   f"{'were' if n_framed != 1 else 'was'} scored whole: crop "
                   f"{'each' if n_framed != 1 else 'it'} to the picture and scan again; such margins can bring "
                   "a fake's score down to a real photo's, and a story's backdrop raised real photos' scores to "
                   "'fake', so that their score alone gives no 'fake' verdict (uncertain instead)")
    if n_animated:
        out.append(f"{n_animated} animation{'s' if n_animated != 1 else ''} or file{'s' if n_animated != 1 else ''} "
                   f"of several pages{_named(animated, n_animated)}: only {'their' if n_animated != 1 else 'its'} "
                   "first frame or page was scored")
    return out


def _named(paths: list, n: int) -> str:
    """" (a.jpg, b.png and 3 more)": the first few of ``n`` images, for a summary line."""
    more = f" and {n - len(paths)} more" if n > len(paths) else ""
    return f" ({', '.join(tsv_escape(p) for p in paths)}{more})" if paths else ""


def _listed(paths: list, n: int) -> str:
    """"a.jpg, b and 3 more; ": the first few of ``n`` skipped entries, to open a bracket."""
    from fakedet.data.sources import NAMED

    paths = paths[:NAMED]
    if not paths:
        return ""
    more = f" and {n - len(paths)} more" if n > len(paths) else ""
    return f"{', '.join(tsv_escape(p) for p in paths)}{more}; "


def _skipped_text(filt, exit_code: bool = False) -> str:
    """What a folder walk skipped, for the summary: "skipped 2 hidden entries (...), 1 excluded
    entry, 3 files not an image by name or first bytes (...)"; ``exit_code``: the scan's
    --exit-code, which decides whether --resume's skipped fakes count in the exit status."""
    def entries(n, kind):
        return f"{n} {kind} entr{'ies' if n != 1 else 'y'}"

    parts = []
    if filt.skipped_hidden:
        parts.append(f"{entries(filt.skipped_hidden, 'hidden')} ({_listed(filt.named_hidden, filt.skipped_hidden)}"
                     "--hidden scans them)")
    if filt.skipped_excluded:
        parts.append(entries(filt.skipped_excluded, "excluded"))
    if filt.skipped_other:
        n = filt.skipped_other
        parts.append(f"{n} file{'s' if n != 1 else ''} not an image by name or first bytes "
                     f"({_listed(filt.named_other, n)}"
                     "name one on the command line to get its record)")
    if filt.skipped_again:
        n = filt.skipped_again
        parts.append(f"{n} folder{'s' if n != 1 else ''} reached a second time, by a symbolic link or by its own "
                     "path after a link to it (walked once, under the first path)")
    if filt.skipped_twice:
        n = filt.skipped_twice
        parts.append(f"{n} image{'s' if n != 1 else ''} reached a second time, through a folder and by "
                     "name or through two folders (scored once, under the first path)")
    if filt.skipped_done:
        n = filt.skipped_done
        parts.append(f"{n} input{'s' if n != 1 else ''} with a record in the -o file already (--resume)"
                     + _done_outcomes(filt, exit_code))
    return "skipped " + ", ".join(parts)


def _summary(det, n_images, n_fake, n_unc, n_err, n_folders, elapsed, wall) -> str:
    """The summary line: images by verdict, unreadable ones, folders that could not be listed
    (each has its own error record, but is no image), the time and the scoring rate (none when
    nothing was scored), the wall time since the process started, and the verdict rule. The
    entries the folder walk skipped (hidden or excluded) are on a line of their own
    (:func:`_skipped_notes`): a persona's messenger's hidden folder of statuses went unseen in
    the middle of this one."""
    from fakedet.evaluation.verdicts import threshold_text

    three_way = det.three_way
    unc = f"{n_unc} uncertain, " if three_way else ""
    rule = (f"fake at >= {det.threshold:.6f}, real below {threshold_text(det.real_below)}" if three_way
            else f"threshold {threshold_text(det.threshold)}: two verdicts, for measuring the model, where "
                 "real means only a score below it")
    scored = n_images - n_err
    line = (f"{n_images} image{'s' if n_images != 1 else ''}: {n_fake} fake, {unc}"
            f"{scored - n_fake - n_unc} real, {n_err} error{'s' if n_err != 1 else ''}")
    if n_folders:
        line += f"; {n_folders} folder{'s' if n_folders != 1 else ''} could not be read"
    rate = f", {scored / max(elapsed, 1e-9):.1f} img/s" if scored else ""
    return f"{line} ({elapsed:.1f} s{rate}; {wall:.1f} s with start-up; {det.device}, {rule})"


def _skipped_notes(filt, exit_code: bool = False) -> list[str]:
    """The summary's line on the entries the folder walk skipped, if any: a line of its own, as a
    skipped folder may hold what was looked for."""
    lines = [_skipped_text(filt, exit_code)] if filt is not None and filt.skipped else []
    if filt is not None and filt.done and not filt.skipped_done:
        lines.append("warning: --resume skipped nothing: the -o file's records name no input of this scan "
                     "(give the PATHs as the scan that made them did: /home/me/photos and photos name files apart)")
    return lines
