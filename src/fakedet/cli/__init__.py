"""The ``fakedet`` command line: a thin layer over :class:`fakedet.inference.detector.Detector`.

stdout carries records only; everything else (logs, warnings, progress, summary) goes to stderr.
Heavy modules (torch, timm) are imported inside the commands, so ``fakedet --version`` and
``fakedet --help`` answer at once.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import IO, Iterator, Optional

import click

from fakedet._version import __version__

_STARTED = time.perf_counter()  # about when the process started: the CLI is imported first

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


class DefaultGroup(click.Group):
    """A group that runs ``scan`` when the first argument is not a subcommand, so that
    ``fakedet photo.jpg`` means ``fakedet scan photo.jpg``. (A file named like a subcommand needs
    the explicit form: ``fakedet scan info``.)"""

    default_command = "scan"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "-V", "--version"):
            args = [self.default_command, *args]
        try:  # --help and --version print while the arguments are parsed
            return super().parse_args(ctx, args)
        except BrokenPipeError:
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_PIPE) from None

    def invoke(self, ctx):
        # A reader that goes away (`fakedet info | head -1`) ends every command as it ends
        # scan, with status 141, instead of click's status 1 (which here means "fake").
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_PIPE


class DeviceType(click.ParamType):
    name = "DEVICE"

    def convert(self, value, param, ctx):
        v = str(value).strip().lower()
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        self.fail(f"{value!r} is not one of auto, cpu, cuda, cuda:N", param, ctx)


def _stdin():
    return getattr(sys.stdin, "buffer", sys.stdin)


def _err(msg: str) -> None:
    click.echo(f"fakedet: {msg}", err=True)


@click.group(cls=DefaultGroup, context_settings=CONTEXT, epilog=EXIT_STATUS_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="fakedet")
def cli():
    """Detect deepfake and AI-generated images.

    \b
    fakedet scan PATH...     score images, folders, '-' (stdin)
    fakedet PATH...          the same (shorthand)
    fakedet info             describe the loaded model
    fakedet eval DATA        measure the model on labelled images
    """


# ----------------------------------------------------------------------------- scan
@cli.command(context_settings=CONTEXT, epilog=EXIT_STATUS_HELP)
@click.argument("paths", nargs=-1, metavar="PATH...")
@click.option("--files-from", "files_from", metavar="FILE",
              help="Read more paths from FILE, one per line ('-' = stdin).")
@click.option("-0", "--null", is_flag=True, help="Paths in --files-from are NUL-separated.")
@click.option("-f", "--format", "fmt", type=click.Choice(["tsv", "csv", "jsonl", "json"]),
              default="tsv", show_default=True, help="Record format (tsv has no header).")
@click.option("-t", "--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Label 'fake' when p_fake >= P  [default: the checkpoint's threshold].")
@click.option("-w", "--weights", type=click.Path(dir_okay=False), default=None,
              help="A .safetensors checkpoint  [default: the shipped weights].")
@click.option("-d", "--device", type=DeviceType(), default="auto", show_default=True,
              help="auto (GPU when present), cpu, cuda or cuda:N.")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("-j", "--workers", type=click.IntRange(min=0), default=None,
              help="Decoding threads (0 = decode in the main thread)  [default: CPU count, at most 8].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write records to FILE instead of stdout.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr  [default: on when stderr is a terminal].")
@click.option("-q", "--quiet", is_flag=True, help="No summary, warnings or progress on stderr.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when any image is labelled fake.")
@click.option("--faces", is_flag=True,
              help="Find faces and score each one; p_fake is the maximum over the faces and the "
                   "whole image, labelled with the checkpoint's face-mode threshold (jsonl/json add "
                   "a 'faces' list of boxes and scores).")
def scan(paths, files_from, null, fmt, threshold, weights, device, batch_size, workers, output,
         progress, quiet, exit_code, faces):
    """Score images: one record per input (path, p_fake, label, error) on stdout.

    PATH is an image file, a folder (searched recursively for image files, in sorted order) or
    '-' for one image's bytes on stdin.
    """
    ctx = click.get_current_context()
    if not paths and not files_from:
        raise click.UsageError("no input: give PATH... or --files-from FILE")
    if list(paths).count("-") > 1:
        raise click.UsageError("'-' (stdin) can be given only once")
    if "-" in paths and files_from == "-":
        raise click.UsageError("'-' and --files-from - cannot both read stdin")

    list_stream = None
    if files_from:
        if files_from == "-":
            list_stream = _stdin()
        else:
            try:
                list_stream = open(files_from, "rb")
            except OSError as exc:
                raise click.BadParameter(f"cannot open {files_from}: {exc.strerror}",
                                         param_hint="--files-from")

    if output not in (None, "-"):
        for path in (*paths, *([files_from] if files_from not in (None, "-") else [])):
            if path != "-" and _same_file(path, output):
                raise click.BadParameter(f"{output} is also an input: writing the records there would "
                                         "overwrite it", param_hint="--output")

    items = _items(paths, list_stream, null, quiet)
    kw = dict(device=device, threshold=threshold, batch_size=batch_size, workers=workers, faces=faces)
    pipe = None
    if faces or device not in ("auto", "cpu"):
        det = _load_detector(ctx, weights, **kw)
        batches = det.iter_batches(items)
    else:
        det, batches, pipe = _start_on_cpu(ctx, weights, items, **kw)

    if progress is None:
        progress = sys.stderr.isatty()
    if quiet:
        progress = False

    try:
        out_stream = _open_output(output)  # only once the model has loaded: a bad -w leaves no file
    except BaseException:
        if pipe is not None:
            pipe.close()
        raise
    code = _run_scan(det, batches, fmt, out_stream, progress, quiet, exit_code)
    if list_stream is not None and files_from != "-":
        list_stream.close()
    ctx.exit(code)


def _load_detector(ctx, weights, future=None, **kw):
    """Detector.load (or the result of one started in ``future``), with unusable weights or
    devices reported as exit status 2."""
    from fakedet.model.checkpoint import CheckpointError
    from fakedet.inference.detector import Detector, DeviceError

    try:
        return future.result() if future is not None else Detector.load(weights, **kw)
    except (CheckpointError, DeviceError) as exc:
        _err(str(exc))
        ctx.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        _err("interrupted")
        ctx.exit(EXIT_INTERRUPTED)


def _start_on_cpu(ctx, weights, items, **kw):
    """(detector, result batches, pipeline or None) for a CPU scan.

    The first batches decode while the model loads in a background thread (``import torch`` is
    most of a short scan's start-up). On a machine with a GPU driver ``--device auto`` may mean
    CUDA, which only torch can tell: there the model loads first, as with ``--device cuda``."""
    from concurrent.futures import ThreadPoolExecutor

    from fakedet.model.checkpoint import CheckpointError, default_weights_path, read_meta
    from fakedet.model.config import ModelConfig
    from fakedet.inference.detector import DecodePipeline, Detector, Task, chunks, default_workers, gpu_driver_present

    if kw["device"] == "auto" and gpu_driver_present():
        det = _load_detector(ctx, weights, **kw)
        return det, det.iter_batches(items), None
    try:
        meta = read_meta(weights if weights is not None else default_weights_path())
        pre = ModelConfig.from_dict(meta.model).preprocess
    except (CheckpointError, ValueError, TypeError, KeyError) as exc:
        _err(str(exc))
        ctx.exit(EXIT_USAGE)
    workers = default_workers() if kw["workers"] is None else kw["workers"]
    loader = ThreadPoolExecutor(1, thread_name_prefix="fakedet-load")
    future = loader.submit(Detector.load, weights, **dict(kw, device="cpu"))
    loader.shutdown(wait=False)
    if workers == 0:  # no decoding threads: nothing to overlap
        det = _load_detector(ctx, weights, future=future)
        return det, det.iter_batches(items), None
    # Importing torch holds the GIL most of the time; the decoding threads need it briefly between
    # their C calls. A shorter switch interval while the model loads lets them have it promptly.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    pipe = None
    try:
        try:
            pipe = DecodePipeline(chunks(items, kw["batch_size"]), Task(pre), kw["batch_size"], workers)
            pipe.prefill(future.done)
        except KeyboardInterrupt:
            _err("interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        det = _load_detector(ctx, weights, future=future)
    except BaseException:
        if pipe is not None:
            pipe.close()
        raise
    finally:
        sys.setswitchinterval(switch)
    return det, pipe.run(det._score), pipe


def _open_output(output: Optional[str]) -> IO[str]:
    if output is None or output == "-":
        stream = _stdout()
        try:
            stream.reconfigure(errors="surrogateescape")  # undecodable file names pass through
        except (AttributeError, ValueError, OSError):
            pass
        return stream
    parent = os.path.dirname(os.path.abspath(output))  # (click refuses a directory itself)
    if not os.path.isdir(parent):
        raise click.BadParameter(f"cannot write {output}: No such file or directory", param_hint="--output")
    return _LazyFile(output)


class _LazyFile:
    """A file for the records, opened (and so truncated) only when the first record is written:
    a scan that finds no image, or stops before scoring one, leaves an existing file as it was."""

    def __init__(self, path: str):
        self.path, self.fh = path, None

    def write(self, text: str) -> int:
        if self.fh is None:
            self.fh = open(self.path, "w", encoding="utf-8", errors="surrogateescape", newline="")
        return self.fh.write(text)

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _items(paths, list_stream, null, quiet) -> Iterator:
    """All inputs, warning (on stderr) about folders that hold no image."""
    from fakedet.data.sources import iter_items

    def warn(path):
        _err(f"warning: no image files found in {path}")

    return iter_items(paths, list_stream, null, _stdin(), on_empty=None if quiet else warn)


def _run_scan(det, batches, fmt, out_stream, progress, quiet, exit_code) -> int:
    from tqdm import tqdm

    from fakedet.data.writers import Writer

    writer = None  # made at the first batch: an -o file stays untouched until a record exists

    def get_writer() -> Writer:
        nonlocal writer
        if writer is None:
            writer = Writer(out_stream, fmt)
        return writer

    n = n_fake = n_err = n_noface = 0
    t0 = time.perf_counter()
    bar = tqdm(unit="img", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    interrupted = False
    write_error = None
    try:
        for results in batches:
            get_writer().write(results)
            n += len(results)
            n_err += sum(1 for r in results if r.error is not None)
            n_fake += sum(1 for r in results if r.label == "fake")
            n_noface += sum(1 for r in results if r.faces == [])
            bar.update(len(results))
        if writer is not None or out_stream is sys.stdout:  # stdout gets json's [] even for none
            get_writer().close()
    except BrokenPipeError:
        # The reader went away (`fakedet scan dir | head`): stop quietly.
        _silence_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        interrupted = True
        try:
            if writer is not None or out_stream is sys.stdout:
                get_writer().close()
        except BrokenPipeError:
            _silence_stdout()
        except OSError as exc:
            write_error = exc
    except OSError as exc:  # a full disk, a lost network share: the records cannot be kept
        write_error = exc
    finally:
        bar.close()
        if out_stream is not sys.stdout:
            try:
                out_stream.close()
            except OSError as exc:
                write_error = write_error or exc
    elapsed = time.perf_counter() - t0
    if write_error is not None:
        if out_stream is sys.stdout:
            _silence_stdout()  # the interpreter's final flush would fail the same way
        _err(f"cannot write the records: {write_error.strerror or write_error}")
        return EXIT_USAGE
    if interrupted:
        _err(f"interrupted after {n} records")
        return EXIT_INTERRUPTED
    if n == 0:
        _err("no images found")
        return EXIT_USAGE
    if not quiet:
        _err(f"{n} image{'s' if n != 1 else ''}: {n_fake} fake, {n - n_fake - n_err} real, "
             f"{n_err} error{'s' if n_err != 1 else ''} ({elapsed:.1f} s, {n / max(elapsed, 1e-9):.1f} img/s; "
             f"{time.perf_counter() - _STARTED:.1f} s with start-up; {det.device}, threshold {det.threshold:.4f})")
        if det.faces:
            _err(f"{n_noface} image{'s' if n_noface != 1 else ''} without a face scored as a whole")
    if n_err:
        return EXIT_UNREADABLE
    if exit_code and n_fake:
        return EXIT_FAKE
    return EXIT_OK


class OutputError(click.ClickException):
    """Standard output cannot take the command's output: status 2, not click's 1 ("fake")."""

    exit_code = EXIT_USAGE


def _stdout() -> IO[str]:
    """sys.stdout, or a clear error when it was closed (``fakedet ... >&-``): records written
    nowhere would be lost without a word."""
    if sys.stdout is None:
        raise OutputError("cannot write the output: standard output is closed (use -o FILE)")
    return sys.stdout


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# ----------------------------------------------------------------------------- info
@cli.command(context_settings=CONTEXT)
@click.option("-w", "--weights", type=click.Path(dir_okay=False), default=None,
              help="A .safetensors checkpoint  [default: the shipped weights].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(weights, as_json):
    """Describe the model: backbone, input handling, threshold, training and evaluation."""
    import json

    from fakedet.model.checkpoint import CheckpointError
    from fakedet.inference.detector import Detector

    _stdout()
    try:
        det = Detector.load(weights, device="cpu")
    except CheckpointError as exc:
        _err(str(exc))
        sys.exit(EXIT_USAGE)
    d = det.info()
    if as_json:
        click.echo(json.dumps(_nan_to_none(d), indent=2, allow_nan=False))
        return
    click.echo(f"model:        {d['name']}")
    click.echo(f"backbone:     {d['backbone']} (timm)")
    click.echo(f"branches:     {', '.join(d['branches'])}")
    click.echo(f"parameters:   {d['parameters']:,}")
    for k, v in d["input"].items():
        click.echo(f"input:        {k}: {v}")
    click.echo(f"threshold:    {d['threshold']:.4f}  ({d['training'].get('threshold_rule', 'n/a')})")
    if d.get("face_threshold") is not None:
        click.echo(f"face mode:    threshold {d['face_threshold']:.4f} for --faces  "
                   f"({d['training'].get('face_threshold_rule', 'n/a')})")
    click.echo(f"temperature:  {d['temperature']:.4f}")
    tr = d["training"]
    click.echo(f"trained on:   {', '.join(tr.get('train_sets', [])) or 'n/a'}")
    if tr.get("steps"):
        secs = tr.get("train_seconds")
        took = f", {secs / 60:.0f} min" if secs else ""
        click.echo(f"training:     {tr.get('steps')} steps x {tr.get('batch_size')} images, seed {tr.get('seed')}"
                   f"{took} ({tr.get('script', '')})")
    ev = d["evaluation"]
    if "test_ece_uncalibrated" in ev and "all" in ev.get("test", {}):
        click.echo(f"calibration:  test ECE {ev['test_ece_uncalibrated']:.4f} at T=1, "
                   f"{ev['test']['all']['ece']:.4f} at T={d['temperature']:.3f}")
    test = d["evaluation"].get("test", {})
    if test:
        click.echo("evaluation (test splits):")
        click.echo(f"  {'set':<22} {'n':>6} {'AUC':>7} {'TPR@5%FPR':>10} {'acc':>7} {'FPR':>7}")
        for name, r in test.items():
            click.echo(f"  {name:<22} {r['n']:>6} {_f(r.get('auc'))} {_f(r.get('tpr_at_5pct_fpr'), 10)}"
                       f" {_f(r.get('accuracy'))} {_f(r.get('fpr'))}")
    click.echo(f"weights:      {d['weights']}")
    click.echo(f"sha256:       {d['sha256']}")


# ----------------------------------------------------------------------------- eval
@cli.command("eval", context_settings=CONTEXT)
@click.argument("data", nargs=-1, required=True, metavar="DATA...")
@click.option("--split", default=None, help="Use only manifest rows of this split (train/val/test).")
@click.option("-w", "--weights", type=click.Path(dir_okay=False), default=None,
              help="A .safetensors checkpoint  [default: the shipped weights].")
@click.option("-t", "--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Decision threshold  [default: the checkpoint's].")
@click.option("-d", "--device", type=DeviceType(), default="auto", show_default=True)
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("-j", "--workers", type=click.IntRange(min=0), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--plots", type=click.Path(file_okay=False), default=None,
              help="Write ROC, histogram and reliability PNGs to DIR (needs matplotlib).")
@click.option("--progress/--no-progress", default=None)
@click.option("--faces", is_flag=True, help="Score as scan --faces does (maximum over faces and whole image).")
def eval_(data, split, weights, threshold, device, batch_size, workers, as_json, plots, progress, faces):
    """Measure the model on labelled images.

    DATA is a folder with real/ and fake/ subfolders, a folder holding a manifest.csv, or a
    manifest CSV (columns file,label[,split]; label 0/real or 1/fake). Prints AUC, AP,
    accuracy and balanced accuracy at the threshold, FPR, TPR at 1 % and 5 % FPR, expected
    calibration error and counts, per DATA and over all of them.
    """
    import json

    from tqdm import tqdm

    from fakedet.evaluation.report import format_table, report, write_plots
    from fakedet.data.labelled import read_labelled

    ctx = click.get_current_context()
    _stdout()
    datasets = {}
    # "all" names the row over every DATA, so no single DATA may take that name; two DATA with
    # the same name (or the same DATA twice) get a numbered suffix rather than merging.
    taken = {"all"} if len(data) > 1 else set()
    for d in data:
        name = os.path.basename(os.path.normpath(d))
        if name == "manifest.csv":
            name = os.path.basename(os.path.dirname(os.path.abspath(d)))
        key, k = name, 1
        while key in taken or key in datasets:
            k += 1
            key = f"{name}#{k}"
        try:
            datasets[key] = read_labelled(d, split)
        except OSError as exc:
            raise click.BadParameter(f"cannot read {d}: {exc.strerror or exc}", param_hint="DATA")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="DATA")
    if not any(datasets.values()):
        present = set()
        if split is not None:  # say which splits there are instead
            for d in data:
                try:
                    present |= {im.split for im in read_labelled(d, None) if im.split}
                except (OSError, ValueError):
                    pass
        _err("no labelled images found" + (f" with split {split!r} (the splits there: "
                                            f"{', '.join(sorted(present)) or 'none'})" if split else ""))
        ctx.exit(EXIT_USAGE)
    for name, images in datasets.items():
        if not images:
            _err(f"warning: {name}: no labelled images" + (f" with split {split!r}" if split else ""))
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            _err("--plots needs matplotlib: pip install matplotlib (or the package's plots extra)")
            ctx.exit(EXIT_USAGE)
    det = _load_detector(ctx, weights, device=device, threshold=threshold, batch_size=batch_size,
                         workers=workers, faces=faces)
    total = sum(len(v) for v in datasets.values())
    bar = tqdm(total=total, unit="img", file=sys.stderr,
               disable=not (sys.stderr.isatty() if progress is None else progress))
    rep = report(det, datasets, progress=bar)
    bar.close()
    scores = rep.pop("_scores")
    rep["weights"] = str(det.weights_path)
    rep["split"] = split
    unreadable = rep["unreadable"]
    for u in unreadable[:UNREADABLE_SHOWN]:
        _err(f"cannot score {u['path']}: {u['error']}")
    if len(unreadable) > UNREADABLE_SHOWN:
        _err(f"... and {len(unreadable) - UNREADABLE_SHOWN} more unreadable images (--json lists them all)")
    if as_json:
        click.echo(json.dumps(_nan_to_none(rep), indent=2))
    else:
        for line in format_table(rep):
            click.echo(line)
    if plots:  # after the figures: a plot that cannot be written must not lose them
        try:
            for path in write_plots(scores, det.threshold, plots):
                _err(f"wrote {path}")
        except OSError as exc:
            _err(f"cannot write the plots to {plots}: {exc.strerror or exc}"
                 + (f" ({exc.filename})" if exc.filename else ""))
            ctx.exit(EXIT_USAGE)
    errors = sum(rep["sets"][k].get("errors", 0) for k in datasets)
    ctx.exit(EXIT_UNREADABLE if errors else EXIT_OK)


UNREADABLE_SHOWN = 20  # eval names this many unreadable images on stderr


def _nan_to_none(obj):
    """JSON has no NaN: undefined figures (an AUC with one class) become null."""
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


def _f(x, width: int = 7) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return f"{'-':>{width}}"
    return f"{x:>{width}.4f}"


# errno values that mean "the output cannot be written" rather than anything else going wrong
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF}


def main() -> None:
    # Click's own handling turns Ctrl-C into "Aborted!" and exit status 1, which here means
    # "labelled fake"; every command reports an interruption as status 130 instead.
    try:
        code = cli.main(prog_name="fakedet", standalone_mode=False)
    except click.exceptions.Abort:
        _err("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OSError as exc:  # info's or eval's output (scan handles its own): a full disk, say
        if exc.errno in _WRITE_ERRORS:
            _silence_stdout()  # so that the interpreter's last flush does not fail again
            _err(f"cannot write the output: {exc.strerror or exc}")
        else:
            _err(str(exc))
        sys.exit(EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
