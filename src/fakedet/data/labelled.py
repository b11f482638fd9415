"""Data layer: reading labelled image sets: a folder with real/ and fake/ subfolders, or a manifest CSV."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from fakedet.data.sources import WalkFilter, is_image_name, names_a_descriptor, stat_error, walk
from fakedet.data.writers import tsv_escape

LABELS = {"0": 0, "1": 1, "real": 0, "fake": 1}


@dataclass
class LabelledImage:
    path: str
    label: int  # 0 real, 1 fake
    group: str = ""
    split: str = ""
    error: Optional[str] = None  # known unusable before scoring (a folder walk's error): an error record
    identity: object = None  # file_identity(path): the same file under two names has one


def file_identity(path: str) -> object:
    """What makes two names one file: its device and inode where the system gives them (so a
    hard link or a symlink is its target), else its resolved, case-normalised path; None where
    there is no file (missing, a broken link): such a name gets an error record, in no figure."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None
    return (st.st_dev, st.st_ino) if st.st_ino else _resolved(path)


def read_manifest(path: str, split: Optional[str] = None, splits: Optional[set] = None) -> list[LabelledImage]:
    """Reads ``file,label[,group][,split]`` rows; files are relative to the manifest's folder.
    ``splits``, when given, gets every row's split, in lower case, the rows of other splits'
    too (a manifest from a pipe can be read only once)."""
    try:
        return _read_manifest(path, split, set() if splits is None else splits)
    except csv.Error as exc:  # an unclosed quote, say: not a ValueError of its own
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file, so not a manifest CSV (expected columns "
                         "file,label[,split], or a folder with real/ and fake/)") from exc


def _rows(reader, names: list[str]) -> Iterator[tuple[int, int, dict]]:
    """The rows a manifest's ``csv.reader`` gives after its header, as dicts keyed by the
    header's ``names``, each with the lines it begins and ends on (a quoted newline makes a row
    span lines); blank rows (no field, or only empty ones, as spreadsheet programs export them)
    are skipped."""
    while True:
        before = reader.line_num
        try:
            fields = next(reader)
        except StopIteration:
            return
        if any(f.strip() for f in fields):
            yield before + 1, reader.line_num, dict(zip(names, fields + [""] * (len(names) - len(fields))))


def _read_manifest(path: str, split: Optional[str], splits: set) -> list[LabelledImage]:
    # rows as the manifest was named: relative stays relative; a manifest named by its file
    # descriptor (``eval <(grep ...)``'s /dev/fd/63) has no folder of its own: its rows are the
    # current folder's
    root = "" if names_a_descriptor(path) else os.path.dirname(path)
    out = []
    seen: dict[object, tuple[int, str]] = {}  # each file's line and name, so that none counts twice
    bad_labels: list = []  # (line, label) of every row whose label is no label, told at once (not one per rerun)
    # utf-8-sig: spreadsheet programs often start a UTF-8 CSV with a byte-order mark
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        names = [str(f).strip().lower() for f in next(reader, None) or []]  # File,Label too
        if not {"file", "label"} <= set(names):
            raise ValueError(f"{path}: a manifest needs 'file' and 'label' columns")
        if split is not None and "split" not in names:
            raise ValueError(f"{path}: --split given but the manifest has no 'split' column")
        for first, n, row in _rows(reader, names):
            label = LABELS.get(str(row["label"]).strip().lower())
            if label is None and any("\n" in str(v) for v in row.values()):
                # a quote opened on this row and closed far below (or never): the lines between
                # were read as one value, and the label is missing
                raise ValueError(f"{path}:{first}: a quote opened on this line is closed only on line {n} "
                                 "(or never): check the quotes")
            if label is None:
                bad_labels.append((n, row["label"]))
                continue
            if not (row.get("file") or "").strip():
                raise ValueError(f"{path}:{n}: no file name")
            row_split = (row.get("split") or "").strip()
            if "split" in names:  # "" for a row that names none (left out by --split)
                splits.add(row_split.lower())
            if split is not None and row_split.lower() != split.strip().lower():
                continue
            # one file under two names (./a.jpg, a link to it, A.JPG where case is ignored)
            name = row["file"].strip()  # every value is trimmed, as spreadsheet exports pad them
            full = os.path.join(root, name)
            ident = file_identity(full)
            key = ident if ident is not None else _resolved(full)  # a missing file: by its name
            if key in seen:
                line, first = seen[key]
                if _resolved(full) == _resolved(os.path.join(root, first)):
                    raise ValueError(f"{path}:{n}: {tsv_escape(name)} is listed again (first on line {line}): "
                                     "each image once, or it counts twice")
                raise ValueError(f"{path}:{n}: {tsv_escape(name)} names the same file as {tsv_escape(first)} "
                                 f"(line {line}; a link, or another case): each image once, or it counts twice")
            seen[key] = (n, name)
            out.append(LabelledImage(full, label, (row.get("group") or "").strip(), row_split, identity=ident))
    if len(bad_labels) == 1:
        n, got = bad_labels[0]
        raise ValueError(f"{path}:{n}: label must be 0/1/real/fake, got {got!r}")
    if bad_labels:
        shown = ", ".join(f"{n} ({got!r})" for n, got in bad_labels[:BAD_SHOWN])
        more = f" and {len(bad_labels) - BAD_SHOWN} more" if len(bad_labels) > BAD_SHOWN else ""
        raise ValueError(f"{path}: label must be 0/1/real/fake, not so on {len(bad_labels)} lines: {shown}{more}")
    return out


#: how many rows with a bad label the manifest's error names
BAD_SHOWN = 5


def _resolved(path: str) -> str:
    try:
        return os.path.normcase(os.path.realpath(path))
    except (OSError, ValueError):
        return path


#: how many of a folder's subfolders the error for one without real/ and fake/ names
NAMED_SUBS = 4


def read_folder(root: str, filt: Optional[WalkFilter] = None) -> list[LabelledImage]:
    """Images under ``root/real`` (label 0) and ``root/fake`` (label 1); the folders' names in
    any case (``Real/``, ``FAKE/``), where only one folder has that name. ``filt`` counts what
    the walk skipped (hidden entries, files not an image by name or first bytes)."""
    filt = WalkFilter() if filt is None else filt
    out = []
    found = False
    try:
        subs = [e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e))]
        listed = True
    except OSError:
        subs, listed = [], False
    for name, label in (("real", 0), ("fake", 1)):
        named = [e for e in subs if e.lower() == name]
        if len(named) > 1:
            raise ValueError(f"{root}: {' and '.join(n + '/' for n in sorted(named))} each name the {name} "
                             "images' folder: keep one")
        sub = os.path.join(root, named[0] if named else name)
        _usable_entry(root, name, "folder", os.path.isdir)
        if os.path.isdir(sub):
            found = True
            try:
                os.scandir(sub).close()
            except OSError as exc:  # one error record would leave a set of the other class alone
                why = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or str(exc)
                raise ValueError(f"{sub}: {why} (cannot list folder); it should be the set's {name} folder") from None
            # a file or folder the walk could not use is kept, with its error, so that it is
            # counted and named as an error record instead of vanishing from the figures
            out.extend(LabelledImage(it.path, label, error=it.error) for it in walk(sub, filt=filt))
    if not found:
        shown = sorted(e for e in subs if not e.startswith("."))
        there = (f" (it holds {', '.join(tsv_escape(e) + '/' for e in shown[:NAMED_SUBS])}"
                 f"{f' and {len(shown) - NAMED_SUBS} more' if len(shown) > NAMED_SUBS else ''})" if shown
                 else " (it holds hidden folders only)" if subs
                 else " (it holds no folder)" if listed else "")
        raise ValueError(f"{root}: expected real/ and fake/ subfolders{there}")
    seen: dict[object, str] = {}
    twice = []
    for im in out:  # two links to one image, or one folder linked into both real/ and fake/
        if im.error is None:
            im.identity = file_identity(im.path)
            if im.identity is None:  # no file (a broken link): an error record when scored
                continue
            first = seen.setdefault(im.identity, im.path)
            if first != im.path:
                twice.append((im.path, first))
    if twice:
        again, first = (tsv_escape(os.path.relpath(p, root)) for p in twice[0])
        more = f" (and {len(twice) - 1} more such name{'s' if len(twice) > 2 else ''})" if len(twice) > 1 else ""
        raise ValueError(f"{again} and {first} under {tsv_escape(root)} are the same file{more}: each image once, "
                         "or it counts twice")
    return out


def empty_class_folders(root: str, images: list[LabelledImage]) -> list[str]:
    """The paths of ``root``'s real/ and fake/ folders that gave ``read_folder`` no image (not
    even an error record), when the other class has some: a folder left empty by mistake would
    otherwise turn the set into one of a single class without a word."""
    labels = {im.label for im in images}
    if len(labels) != 1:
        return []
    try:
        subs = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
    except OSError:
        return []
    return [os.path.join(root, e) for name, label in (("real", 0), ("fake", 1)) if label not in labels
            for e in subs if e.lower() == name]


def stray_entries(root: str) -> list[str]:
    """What a folder of real/ and fake/ holds beside them that might have been meant as
    images: other folders (a misspelt ``fakes/``) and image files directly in it, by name,
    hidden ones aside; none of it is read."""
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return []
    out = []
    for e in entries:
        if e.startswith(".") or e.lower() in ("real", "fake"):
            continue
        if os.path.isdir(os.path.join(root, e)):
            out.append(e + "/")
        elif is_image_name(e):
            out.append(e)
    return out


def _usable_entry(root: str, name: str, kind: str, is_kind: Callable[[str], bool]) -> None:
    """A ValueError when ``root`` has entries named ``name`` (in any case) and none of them is a
    ``kind`` (a broken link, a loop of links, a file where a folder belongs): left out without a
    word, it would take its images out of the figures, or the manifest out of the set. A stray
    entry beside a usable one (a file ``Real`` beside the folder ``real/``) is left alone."""
    try:
        entries = sorted(e for e in os.listdir(root) if e.lower() == name)
    except OSError:
        entries = [name] if os.path.lexists(os.path.join(root, name)) else []
    paths = [os.path.join(root, e) for e in entries]
    if paths and not any(is_kind(p) for p in paths):
        why = stat_error(paths[0]) or f"not a {kind}"
        raise ValueError(f"{paths[0]}: {why}; it should be the set's {name} {kind}")


def folder_manifest(folder: str) -> Optional[str]:
    """The folder's manifest.csv, its name in any case (``Manifest.CSV``), or None; two of them
    (on a case-sensitive file system) are a ValueError: which one is meant cannot be told."""
    try:
        named = sorted(e for e in os.listdir(folder) if e.lower() == "manifest.csv")
    except OSError:
        plain = os.path.join(folder, "manifest.csv")
        return plain if os.path.isfile(plain) else None
    _usable_entry(folder, "manifest.csv", "file", os.path.isfile)
    named = [e for e in named if os.path.isfile(os.path.join(folder, e))]
    if len(named) > 1:
        raise ValueError(f"{folder}: {' and '.join(named)} are each a manifest: keep one")
    return os.path.join(folder, named[0]) if named else None


def read_labelled(path: str, split: Optional[str] = None, filt: Optional[WalkFilter] = None,
                  splits: Optional[set] = None) -> list[LabelledImage]:
    """A labelled set: a folder's manifest, its real/ and fake/ folders (``filt`` counts what
    their walk skipped), or a manifest file (``splits`` gets its rows' splits: see
    :func:`read_manifest`)."""
    if os.path.isdir(path):
        manifest = folder_manifest(path)
        if manifest is not None:
            return read_manifest(manifest, split, splits)
        if split is not None:
            raise ValueError(f"{path}: --split needs a manifest.csv")
        return read_folder(path, filt)
    return read_manifest(path, split, splits)
