"""CLI layer: ``fakedet eval``, the model's figures on labelled images."""

from __future__ import annotations

import os
import sys

import click

from fakedet.cli.common import (
    CONTEXT,
    EXIT_OK,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    BarStream,
    check_report_folder,
    err,
    interrupt_word,
    load_errors_exit,
    refuse_an_image,
    same_file,
    settled,
    stdout,
    uninterrupted,
)
from fakedet.cli.options import (
    TWO_WAY_HELP,
    batch_for,
    crop_option,
    face_expert_option,
    faces_option,
    json_option,
    progress_option,
    run_options,
    threshold_option,
    weights_option,
)

UNREADABLE_SHOWN = 20  # eval names this many unreadable images on stderr


EXAMPLES = """\b
Examples:
  fakedet eval testset/                    a folder with real/ and fake/ subfolders
  fakedet eval --split test data/manifest.csv
  fakedet eval --json a/ b/ > figures.json  per DATA and over both
  fakedet eval --plots plots/ testset/     also ROC, histogram and reliability PNGs

\b
Exit status:
  0  every image was scored and the figures printed
  2  usage error: no labelled images, unusable weights or device, or
     the plots or report cannot be written
  3  some images could not be read (the figures leave them out and
     name them on stderr)
  130 interrupted (Ctrl-C); 143 terminated (SIGTERM); 129 hung up (SIGHUP)
  70 internal error (a bug or a broken install; a traceback on stderr)
"""


def _skipped_files(filt) -> str:
    """What the walk of real/ and fake/ left out: "2 hidden entries and 1 file not an image by
    name or first bytes", or ""."""
    parts = []
    if filt.skipped_hidden:
        n = filt.skipped_hidden
        parts.append(f"{n} hidden entr{'ies' if n != 1 else 'y'}")
    if filt.skipped_other:
        n = filt.skipped_other
        parts.append(f"{n} file{'s' if n != 1 else ''} not an image by name or first bytes")
    return " and ".join(parts)


def _how_made(det, crop: bool, threshold) -> dict:
    """What a table from ``eval --json`` needs to say how it was made (a researcher persona found
    none of it there): the version, the weights' SHA-256, face mode and its expert, the crop, and
    whether -t set a two-way threshold."""
    from fakedet._version import __version__
    from fakedet.model.checkpoint import sha256

    try:
        digest = sha256(det.weights_path) if det.weights_path else None
    except OSError:  # the file gone since it was loaded
        digest = None
    expert = getattr(det, "expert", None)
    expert_path = str(expert[2]) if expert is not None and len(expert) > 2 else None
    try:
        expert_digest = sha256(expert_path) if expert_path else None
    except OSError:
        expert_digest = None
    return {"version": __version__, "weights_sha256": digest, "faces": bool(det.faces),
            "face_expert": expert_path, "face_expert_sha256": expert_digest, "crop": bool(crop),
            "two_way_threshold": threshold is not None}


def _splits_text(splits: set) -> str:
    """The splits the rows name, a blank cell as "no split"."""
    return ", ".join(s or "no split" for s in sorted(splits))


#: how much of each file of a size another has warn_same_bytes reads first
HEAD_BYTES = 1 << 16


def warn_same_bytes(datasets: dict) -> None:
    """Warns of images whose bytes are another image's (a copy under another name, which
    :func:`warn_shared_images` and the manifest's own check, by file, do not see): each copy
    that can be scored counts in the figures, and a copy filed as real and as fake counts on both
    sides. Files of one size are compared by their first 64 KiB, and only those alike there are
    read whole; empty files and what is no regular file (a named pipe, a device: never opened)
    are left to their error records."""
    import hashlib
    import stat as stat_

    from fakedet.data.writers import tsv_escape
    from fakedet.model.checkpoint import sha256

    def head(path: str) -> "bytes | None":  # the SHA-256 of the first 64 KiB
        try:
            with open(path, "rb") as fh:
                return hashlib.sha256(fh.read(HEAD_BYTES)).digest()
        except OSError:
            return None

    by_size: dict = {}
    for images in datasets.values():
        for im in images:
            if im.error is None and im.identity is not None:
                try:
                    st = os.stat(im.path)
                except OSError:
                    continue  # gone since it was listed: its record will say so
                if stat_.S_ISREG(st.st_mode) and st.st_size > 0:
                    by_size.setdefault(st.st_size, {}).setdefault(im.identity, im)  # a file once
    groups: dict = {}
    for size, files in by_size.items():
        if len(files) < 2:
            continue
        by_head: dict = {}
        for im in files.values():
            start = head(im.path)
            if start is not None:
                by_head.setdefault(start, []).append(im)
        for start, alike in by_head.items():
            if len(alike) < 2:
                continue
            if size <= HEAD_BYTES:  # read whole already: alike byte for byte
                groups[size, start] = alike
                continue
            for im in alike:
                try:
                    groups.setdefault((size, sha256(im.path)), []).append(im)
                except OSError:
                    continue
    copies = [g for g in groups.values() if len(g) > 1]
    if not copies:
        return
    n = sum(len(g) - 1 for g in copies)
    both = [g for g in copies if len({im.label for im in g}) > 1]
    first = min(copies, key=lambda g: min(im.path for im in g))
    shown = " and ".join(tsv_escape(im.path) for im in sorted(first, key=lambda im: im.path)[:2])
    err(f"warning: {n} image{'s' if n != 1 else ''} {'are copies' if n != 1 else 'is a copy'} of another, byte for "
        f"byte (such as {shown}); each copy that can be scored counts in the figures"
        + (f", and {len(both)} {'are' if len(both) != 1 else 'is'} filed both as real and as fake" if both else ""))


def warn_shared_images(datasets: dict) -> None:
    """Warns, per pair of DATA, of images in both (the same file, by any name): each set's
    figures are right, the figures over all of them count those images twice."""
    if len(datasets) < 2:
        return
    owner: dict = {}
    shared: dict = {}
    for name, images in datasets.items():
        for im in images:
            ident = im.identity  # (set by the readers; None: no file there, in no figure)
            if im.error is None and ident is not None:
                first = owner.setdefault(ident, name)
                if first != name:
                    shared[first, name] = shared.get((first, name), 0) + 1
    for (first, name), n in shared.items():
        them, are = ("them", "are") if n != 1 else ("it", "is")
        err(f"warning: {n} image{'s' if n != 1 else ''} of {name} {are} also in {first}: "
            f"the figures over all DATA count {them} twice")


@click.command("eval", context_settings=CONTEXT, epilog=EXAMPLES)
@click.argument("data", nargs=-1, required=True, metavar="DATA...")
@click.option("--split", default=None, help="Use only manifest rows of this split (train/val/test).")
@weights_option
@threshold_option(TWO_WAY_HELP)
@run_options
@json_option("Print the figures as JSON.")
@click.option("--plots", type=click.Path(file_okay=False), default=None,
              help="Write ROC, histogram and reliability PNGs to DIR (needs matplotlib).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write a self-contained HTML report to FILE: every image with its thumbnail, "
                   "true label, verdict and score, false positives and negatives first.")
@progress_option
@faces_option("Score as scan --faces does (its faces, and the whole image where it counts).")
@face_expert_option
@crop_option
def eval_(data, split, weights, threshold, device, batch_size, workers, as_json, plots, report_path,
          progress, faces, face_expert, crop):
    """Measure the model on labelled images.

    DATA is a folder with real/ and fake/ subfolders (in any case), a folder holding a
    manifest.csv (in any case), or a manifest CSV (columns file,label[,split]; label 0/real or 1/fake; each
    image once). Prints, per DATA and
    over all of them (every image pooled): counts, AUC, AP, TPR at 1 % and 5 % FPR and expected calibration error
    (from the scores), and by the verdicts: accuracy and balanced accuracy ('uncertain' counts
    as not fake), FPR (real images labelled fake), TPR (fakes labelled fake) and the share
    labelled uncertain.
    """
    import json

    from tqdm import tqdm

    from fakedet.data.labelled import empty_class_folders, folder_manifest, read_labelled, stray_entries
    from fakedet.data.sources import WalkFilter, names_a_descriptor, open_error
    from fakedet.data.writers import nan_to_none, path_fields, tsv_escape, utf8_all
    from fakedet.evaluation.report import format_table, report, write_plots
    from fakedet.inference.stream import load_detector

    ctx = click.get_current_context()
    stdout()
    if plots == "":
        raise click.BadParameter("needs a folder name", param_hint="--plots")
    if report_path is not None:
        check_report_folder(report_path)  # a usage error before any data is read
    if not face_expert and not faces:
        err("warning: --no-face-expert has no effect without --faces")
    datasets = {}
    # "all" names the row over every DATA, so no single DATA may take that name; two DATA with
    # the same name (or the same DATA twice) get a numbered suffix rather than merging.
    taken = {"all"} if len(data) > 1 else set()
    present: set = set()  # the splits the manifests' rows name, in lower case
    for d in data:
        name = os.path.basename(os.path.abspath(d))  # "." and ".." by the folder they name
        if name.lower() == "manifest.csv":
            name = os.path.basename(os.path.dirname(os.path.abspath(d)))
        elif names_a_descriptor(d):  # <(grep ...)'s /dev/fd/63: no name of its own
            name = "manifest"
        key, k = name, 1
        while key in taken or key in datasets:
            k += 1
            key = f"{name}#{k}"
        filt = WalkFilter()
        try:
            splits: set = set()
            datasets[key] = read_labelled(d, split, filt, splits)
        except OSError as exc:
            what = exc.filename if isinstance(exc.filename, str) else d  # the folder's manifest.csv, say
            raise click.BadParameter(f"cannot read {what}: {open_error(exc, what)}", param_hint="DATA") from exc
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="DATA") from exc
        present |= splits
        if split is None and len(splits) > 1:  # train rows among the figures, say
            how = ("--split test gives figures on held-out images alone" if "test" in splits else
                   "--split NAME uses one")
            err(f"note: {key}: the rows of every split used ({_splits_text(splits)}): {how}")
        if split is not None and "" in splits and split.strip():  # a blank cell: in no split
            err(f"note: {key}: rows with no split left out (--split {split} keeps the rows that name it)")
        skipped = _skipped_files(filt)
        if skipped:  # left out of the figures: said, as scan's summary says it
            err(f"note: {key}: left out {skipped}")
        if os.path.isdir(d) and folder_manifest(d) is None:
            stray = stray_entries(d)
            if stray:  # a misspelt fakes/ would otherwise leave a set of one class without a word
                more = f" and {len(stray) - 5} more" if len(stray) > 5 else ""
                shown = ", ".join(tsv_escape(e) for e in stray[:5]) + more
                err(f"note: {key}: not read (only real/ and fake/ are): {shown}")
            for empty in empty_class_folders(d, datasets[key]):
                other = "fake" if os.path.basename(empty).lower() == "real" else "real"
                err(f"warning: {key}: {empty}/ holds no images: the figures are those of the {other} images alone")
    if not any(datasets.values()):
        # splits are matched without regard to case, so listed that way ("TEST" and "test" are one)
        err("no labelled images found" + (f" with split {split!r} (the splits there: "
                                           f"{_splits_text(present) or 'none'})" if split else ""))
        ctx.exit(EXIT_USAGE)
    for name, images in datasets.items():
        if not images:
            err(f"warning: {name}: no labelled images" + (f" with split {split!r}" if split else ""))
    warn_shared_images(datasets)
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            err("--plots needs matplotlib: pip install matplotlib (or the package's plots extra)")
            ctx.exit(EXIT_USAGE)
    if report_path is not None:
        # a folder's manifest.csv is an input too, as much as a manifest named on the command line
        inputs = [(folder_manifest(d) or "") if os.path.isdir(d) else d for d in data]
        if any(same_file(d, report_path) for d in inputs):
            raise click.BadParameter(f"{report_path} is also an input: writing the report there "
                                     "would overwrite it", param_hint="--report")
        refuse_an_image(report_path, "report", "--report")
    with load_errors_exit(ctx):
        det = load_detector(weights, device=device, threshold=threshold, batch_size=batch_for(batch_size, faces),
                            workers=workers, faces=faces, expert="auto" if face_expert else None, crop=crop)
    # for --json, the weights hashed as loaded, not as they are after the run
    made = _how_made(det, crop, threshold) if as_json else {}
    warn_same_bytes(datasets)  # after the checks above: a usage error comes before reading every file
    total = sum(len(v) for v in datasets.values())
    bar = tqdm(total=total, unit="img", file=BarStream(),
               disable=not (sys.stderr.isatty() if progress is None else progress))
    html = on_batch = None
    report_error = None
    if report_path is not None:
        from fakedet.cli.htmlreport import THUMBNAIL, HtmlReport, ReportWriteError

        det.thumbnail = THUMBNAIL
        html = HtmlReport(report_path, "eval", det)
        several = len(datasets) > 1

        def on_batch(name, results, images):
            nonlocal html, report_error
            if html is None:
                return
            try:
                with uninterrupted():  # a batch goes into the report whole
                    html.add(results, truth=[im.label for im in images], set_name=name if several else None)
            except ReportWriteError as exc:  # the report's file: the figures go on without it
                html.abandon()
                html, report_error = None, exc
                bar.clear()
                err(f"{exc.strerror}; the evaluation goes on without the report")
    try:
        result = report(det, datasets, progress=bar, on_batch=on_batch)
    except BaseException as exc:
        bar.close()
        if html is not None:
            n = html.count
            why = interrupt_word(exc) if isinstance(exc, KeyboardInterrupt) else "stopped by an error"
            try:  # the images scored so far stay readable, the page says the run did not end
                html.close(f"{why} after {n} image{'s' if n != 1 else ''}", complete=False)
            except OSError:
                html.abandon()
        raise
    bar.close()
    rep = result.to_dict()
    rep["weights"] = str(det.weights_path)
    rep["split"] = split
    gate = getattr(det.expert[1], "whole_gate", None) if det.faces and det.expert is not None else None
    if gate is not None and det.whole_gate is not None and det.whole_gate < gate:
        # -t moved the scores themselves, not only the verdicts (a researcher's AUC changed with -t)
        from fakedet.evaluation.verdicts import threshold_text

        err(f"note: with --faces, -t {threshold_text(det.whole_gate)} lies below the whole image's own fake "
            f"threshold {threshold_text(gate)}, so the whole image's score enters p_fake from there: AUC, AP, "
            "TPR@1%/5% and ECE are of those scores, and differ from a run without -t")
    if det.faces:  # images in which no face was found are labelled by the whole-image thresholds
        rep["whole_image_cutoffs"] = list(det.cutoffs)
    unreadable = result.unreadable
    for u in unreadable[:UNREADABLE_SHOWN]:  # a name cannot drive the terminal
        err(f"cannot score {tsv_escape(u['path'])}: {tsv_escape(u['error'])}")
    if len(unreadable) > UNREADABLE_SHOWN:
        err(f"... and {len(unreadable) - UNREADABLE_SHOWN} more unreadable images (--json lists them all)")
    try:
        if as_json:
            # names that are not UTF-8 as scan's json writes them: \xHH text, with path_bytes
            rep["unreadable"] = [{"set": u["set"], **path_fields(u["path"]), "label": u.get("label"),
                                  "error": u["error"]} for u in unreadable]
            rep.update(made)
            click.echo(json.dumps(utf8_all(nan_to_none(rep)), indent=2))
        else:
            for line in format_table(rep):
                click.echo(line)
    finally:
        # the report gets the figures even when they could not be printed (a closed pipe, a
        # full disk) or a signal came while they were: every image was scored
        if html is not None:
            try:
                with uninterrupted():
                    html.close("\n".join(format_table(rep)))
            except ReportWriteError as exc:
                report_error = exc
    if report_error is not None and html is not None:  # the report's end, after the figures
        err(report_error.strerror)
    if plots:  # after the figures: a plot that cannot be written must not lose them
        try:
            for path in write_plots(result.scores, det.threshold, plots, rep.get("real_below")):
                err(f"wrote {path}")
        except OSError as exc:
            err(f"cannot write the plots to {plots}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else ""))
            ctx.exit(EXIT_USAGE)
    errors = sum(result.sets[k].get("errors", 0) for k in datasets)
    settled()
    if report_error is not None:  # every figure printed; the report asked for is not whole
        ctx.exit(EXIT_USAGE)
    ctx.exit(EXIT_UNREADABLE if errors else EXIT_OK)
