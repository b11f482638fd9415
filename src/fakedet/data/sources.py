"""Data layer: input sources, turning command-line inputs into one lazy, ordered stream of items to score.

Folders are walked recursively in sorted order, following symbolic links but never entering the
same folder twice (so link loops end). As in fd and ripgrep, hidden entries (names starting with
a dot: ``.git``, ``.cache``) and entries matching an exclude pattern are skipped inside folders,
and counted; a path named on the command line or in a list file is always scanned. Nothing is
read ahead: a folder of a million images is enumerated as it is scanned.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import stat
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Optional

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif",
     ".avif", ".heic", ".heif"}
)


@dataclass
class Item:
    """One input: what the record shows as its path, and what to decode.

    ``source`` is a filesystem path, raw bytes or a PIL image; ``error`` is set when the input is
    already known to be unusable (for example a folder that cannot be listed); ``folder`` marks
    such a record as standing for a folder, not an image.
    """

    path: str
    source: Any = None
    error: Optional[str] = None
    folder: bool = False


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


# ISO-BMFF brands (bytes 8-12, after "ftyp"): HEIF/HEIC (iPhone photos) and AVIF
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
#: BMP's info-header sizes (bytes 14-18), which tell a bitmap from text that starts with "BM"
_BMP_HEADERS = frozenset({12, 40, 52, 56, 64, 108, 124})
#: how many bytes :func:`image_by_content` reads
SNIFF_HEAD = 32
#: extensions of files that are never images fakedet reads, which a walk does not open to look
#: at their first bytes: reading one on a network share costs a round trip, and on a cloud
#: drive's placeholder (OneDrive, iCloud) it can download the whole file. Video and audio, text
#: and documents, archives, camera RAW (TIFF's bytes), sidecars, and downloads still under way
#: (an unfinished JPEG would only be an error).
NOT_IMAGE_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".wmv", ".flv", ".3gp", ".mts", ".m2ts", ".mpg",
     ".mpeg", ".mp3", ".m4a", ".wav", ".aac", ".flac", ".ogg", ".opus", ".wma", ".amr",
     ".txt", ".md", ".rst", ".pdf", ".doc", ".docx", ".odt", ".rtf", ".xls", ".xlsx", ".ods", ".ppt",
     ".pptx", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".html", ".htm", ".yaml", ".yml", ".log",
     ".ini", ".cfg", ".toml", ".py", ".js", ".css", ".sh", ".svg", ".psd", ".ai", ".eps",
     ".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz", ".zst", ".lz4", ".br",
     ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf", ".rw2",
     ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".raw",
     ".xmp", ".aae", ".exe", ".dll", ".so", ".dmg", ".iso", ".db", ".sqlite", ".ds_store",
     ".part", ".crdownload", ".partial"}
)


def is_image_head(head: bytes) -> bool:
    """Whether a file's first bytes are those of an image that messaging apps and browsers
    save: JPEG, PNG, GIF, WebP, BMP, HEIF/HEIC or AVIF. TIFF is left out: camera RAW files
    (.CR2, .NEF, .DNG) start as TIFF does, and are not images fakedet can read."""
    return (head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n" or head[:6] in (b"GIF87a", b"GIF89a")
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or (head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADERS)
            or (head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS | AVIF_BRANDS))


def may_be_image(name: str) -> bool:
    """Whether a file not named as an image is worth opening to look at its first bytes: not
    one of :data:`NOT_IMAGE_EXTENSIONS`."""
    return os.path.splitext(name)[1].lower() not in NOT_IMAGE_EXTENSIONS


def image_by_content(path: str, entry: Optional[os.DirEntry] = None) -> bool:
    """Whether a regular file not named as an image is one by its first bytes
    (:func:`is_image_head`): a phone's save without an extension (``IMG-20240502-WA0001``), a
    browser's ``photo.jpg_large`` or ``.download``. Files named as what is never an image
    (:func:`may_be_image`) are not opened. Never waits on a named pipe or a device, even one
    put in a regular file's place after the folder was listed (opened without blocking, and
    checked as opened); a file that cannot be read is not one, but for one whose name has no
    dot at all (a phone's save may be any image) on a POSIX system: it is taken, and its record
    says why it could not be read, instead of its being counted among the files that are no
    image. Not a dotfile (``.viminfo`` left by sudo), nor on Windows, where a file another
    program holds open (a browser's ``Cookies``) cannot be read either."""
    if not may_be_image(os.path.basename(path)):
        return False
    try:
        if not (entry.is_file() if entry is not None else os.path.isfile(path)):
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except PermissionError:
        return os.name == "posix" and "." not in os.path.basename(path)
    except (OSError, ValueError):
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return is_image_head(os.read(fd, SNIFF_HEAD))
    except OSError:
        return False
    finally:
        os.close(fd)


def special_file_kind(mode: int) -> Optional[str]:
    """What a file that is neither a regular file nor a folder is, from ``st_mode``; None for those."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


BROKEN_LINK = "broken symbolic link (its target does not exist)"


def is_broken_link(path) -> bool:
    """Whether ``path`` names a symbolic link whose target does not exist (not a loop of links,
    which is told by its own error): a trailing slash (``link/``, as a shell's completion writes
    it) still names the link itself."""
    try:
        name = os.fspath(path)
        sep = b"/" if isinstance(name, bytes) else "/"
        link = name.rstrip(sep) or name
        if not os.path.islink(link):
            return False
        os.stat(link)
    except FileNotFoundError:
        return True
    except (OSError, ValueError, TypeError):
        return False
    return False


def not_found_error(path) -> str:
    """Why a name that was asked for has no file: a symbolic link whose target is gone (the name
    is there, in a folder's listing too) is told apart from a name with nothing behind it; a
    name with a wildcard is told that fakedet expands none (a pattern quoted in the shell), and a
    name that exists without the spaces or tabs around it is told so (a padded list)."""
    if is_broken_link(path):
        return BROKEN_LINK
    name = os.fsdecode(path) if isinstance(path, (str, bytes)) else ""
    if "://" not in name and re.search(r"[*?]|\[.*\]", os.path.basename(name)):  # no shell expands a URI
        return ("file not found (fakedet expands no wildcards: leave the pattern unquoted for the shell "
                "to expand, or give the folder)")
    bare = name.strip(" \t")
    if bare and bare != name and os.path.lexists(bare):  # a list exported from a spreadsheet, padded
        return ("file not found (the name has spaces or tabs at its start or end; without them it names a "
                "file: names are read as they are)")
    return "file not found"


def stat_error(path) -> Optional[str]:
    """Why ``path`` cannot be followed to anything (a broken link, a loop of links, nothing
    there), or None when it can."""
    try:
        os.stat(path)
    except OSError as exc:
        return open_error(exc, path)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def missing_message(what: str, path) -> str:
    """The error for a file that a command needs (its weights) and that is no regular file:
    ``<what> not found: <path>`` when nothing is there, else what makes the name unusable (a
    broken link, a loop of links, a folder that may not be searched, a named pipe or device)."""
    if is_broken_link(path):
        return f"{what} is a {BROKEN_LINK}: {path}"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"{what} not found: {path}"
    except OSError as exc:
        return f"{what} cannot be read ({open_error(exc, path)}): {path}"
    except (ValueError, TypeError) as exc:
        return f"{what} cannot be read ({exc}): {path}"
    if stat.S_ISDIR(mode):
        return f"{what} is a folder, not a file: {path}"
    if not stat.S_ISREG(mode):
        return f"{what} is not a regular file ({special_file_kind(mode) or 'special file'}): {path}"
    return f"{what} not found: {path}"


def open_error(exc: OSError, path) -> str:
    """The reason to show for an ``OSError`` from opening ``path`` (a list, a data folder): a
    broken link is named as one rather than "No such file or directory"."""
    if isinstance(exc, FileNotFoundError) and is_broken_link(path):
        return BROKEN_LINK
    return exc.strerror or str(exc)


def names_a_descriptor(path) -> bool:
    """Whether ``path`` names a file descriptor (``/dev/stdin``, ``<(cat x)``'s ``/dev/fd/63``,
    ``/proc/self/fd/3``) rather than a file in a folder."""
    name = os.fsdecode(path) if isinstance(path, (str, bytes)) else ""
    return name == "/dev/stdin" or re.match(r"/(dev|proc/self)/fd/\d+$", name) is not None


def not_regular_error(mode: int, path=None) -> str:
    """The record's error for a named pipe, socket or device: such files are never opened (a
    pipe without a writer would block the scan for ever, a device could be read without end).
    A name for standard input or a file descriptor (``/dev/stdin``, ``<(cat x.jpg)``'s
    ``/dev/fd/63``) is pointed to ``-``, which reads an image piped in."""
    error = f"not a regular file ({special_file_kind(mode) or 'special file'})"
    if not stat.S_ISREG(mode) and names_a_descriptor(path):
        error += "; to read an image piped in, give - as the path"
    return error


def glob_regex(pattern: str) -> "re.Pattern[str]":
    """A path glob as fd's and ripgrep's (gitignore's): ``*`` and ``?`` never match ``/``; a
    ``**`` that is a whole path segment matches across folders (``a/**/b`` is ``a/b``, ``a/x/b``,
    ``a/x/y/b``; ``a/**`` what ``a`` holds), elsewhere it is ``*``; ``[...]`` a character class
    (``[!...]`` or ``[^...]`` negated, never matching ``/``; a reversed range matches nothing);
    ``\\`` escapes the character after it. Any pattern compiles."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            whole = (i == 0 or pattern[i - 1] == "/") and (i + 2 == n or pattern[i + 2] == "/")
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            if whole and j == i + 2:
                if i + 2 < n:  # "**/": no folder or any folders
                    out.append("(?:.*/)?")
                    i += 3
                else:
                    out.append(".*")
                    i += 2
                continue
            out.append("[^/]*")
            i = j
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            cls, j = _glob_class(pattern, i)
            if cls is None:
                out.append(re.escape(c))
            else:
                out.append(cls)
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _glob_class(pattern: str, start: int) -> "tuple[Optional[str], int]":
    """The regex of the character class opening at ``pattern[start]`` (``[``) and the index of its
    closing ``]``; (None, start) when it does not close (the ``[`` is then a literal)."""
    i, n = start + 1, len(pattern)
    neg = i < n and pattern[i] in "!^"
    if neg:
        i += 1
    chars, first = [], True
    while i < n and (pattern[i] != "]" or first):  # a ']' first in the class is a member
        first = False
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            i += 1
            c = pattern[i]
        if i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            hi = pattern[i + 2]
            if hi == "\\" and i + 3 < n:
                i += 1
                hi = pattern[i + 2]
            if c <= hi:
                chars.append(f"{re.escape(c)}-{re.escape(hi)}")
            i += 3
            continue
        chars.append(re.escape(c))
        i += 1
    if i >= n:
        return None, start
    body = "".join(chars)
    if neg:
        return f"[^/{body}]", i
    return (f"(?!/)[{body}]" if body else "(?!)"), i


#: how many skipped entries of each kind a folder walk names
NAMED = 3


@dataclass
class WalkFilter:
    """What a folder walk skips, and how much it skipped.

    ``hidden``: also walk hidden entries (names starting with a dot). ``exclude``: glob patterns,
    as fd's ``--exclude``: a pattern without ``/`` is matched against each entry's name (``*.png``,
    ``node_modules``), one with ``/`` against its path relative to the folder named on the command
    line (``raw/*.tif``, ``/top-level-only``); a trailing ``/`` matches folders only. A skipped
    folder counts once, whatever it holds.
    """

    hidden: bool = False
    exclude: tuple[str, ...] = ()
    skipped_hidden: int = 0
    skipped_excluded: int = 0
    #: files that are no image by their name (notes.txt, clip.mp4), hidden ones aside
    skipped_other: int = 0
    #: folders reached a second time in the same walk (a loop of links, a folder linked twice,
    #: or a folder after a link to it): walked once, under the first path
    skipped_again: int = 0
    #: image files reached a second time through a folder (:class:`Reached`): scored once
    skipped_twice: int = 0
    #: inputs skipped because ``done`` holds their path (``fakedet scan --resume``)
    skipped_done: int = 0
    #: of those, the ones whose earlier record is an error, and those labelled fake: the job's
    #: exit status counts them (a scan stopped and carried on ends as one whole scan would)
    done_errors: int = field(default=0, repr=False)
    done_fakes: int = field(default=0, repr=False)
    #: the paths of the first few (:data:`NAMED`) hidden entries and files not named as an
    #: image of each walk (:meth:`start_walk`), for a summary or a warning to name them
    named_hidden: list = field(default_factory=list, repr=False)
    named_other: list = field(default_factory=list, repr=False)
    #: folders walked (each folder named, or found by a URI, counts once; not their subfolders)
    walked: int = field(default=0, repr=False)
    #: the ``exclude`` patterns that skipped at least one entry (one that never did may be a typo)
    matched: set = field(default_factory=set, repr=False)
    _mark: tuple = field(default=(0, 0, 0, 0), repr=False)
    _patterns: list = field(default_factory=list, repr=False)
    #: after a path yielded nothing: what its walk alone skipped (set by :func:`iter_items`)
    last: Optional["WalkFilter"] = field(default=None, repr=False)
    #: the paths of inputs that have their records already (an earlier scan's, ``--resume``),
    #: each as :func:`done_key` gives it, with its record's outcome
    #: (:func:`fakedet.data.writers.recorded`): skipped wherever they are reached, named or
    #: found in a folder (:meth:`skips_done`)
    done: Mapping = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.exclude = tuple(self.exclude)
        self._patterns = []
        for pattern in self.exclude:
            dirs_only = pattern.endswith("/")
            pat = pattern.rstrip("/") or "/"
            anchored = "/" in pat
            self._patterns.append((glob_regex(pat.lstrip("/")) if anchored else pat, anchored, dirs_only, pattern))

    def counts(self) -> tuple[int, int, int, int, int, int]:
        return (self.skipped_hidden, self.skipped_excluded, self.skipped_other, self.skipped_again,
                self.skipped_twice, self.skipped_done)

    def start_walk(self) -> tuple[int, int, int, int, int, int]:
        """Marks the start of one path's walk (the names it skips are kept from here); returns
        :meth:`counts` for :meth:`counts_since`."""
        self._mark = (self.skipped_hidden, self.skipped_other, len(self.named_hidden), len(self.named_other))
        return self.counts()

    def counts_since(self, before: tuple[int, int, int, int, int, int]) -> "WalkFilter":
        """The same rules with the counts since ``before`` (:meth:`start_walk`), and the names
        since then: one folder's share."""
        now = self.counts()
        out = WalkFilter(self.hidden, self.exclude, *(a - b for a, b in zip(now, before)))
        out.named_hidden, out.named_other = self.named_hidden[self._mark[2]:], self.named_other[self._mark[3]:]
        return out

    def name_skipped(self, hidden: bool, path: str) -> None:
        """Keeps ``path``, just counted as skipped, among the first few of its walk."""
        if hidden and self.skipped_hidden - self._mark[0] <= NAMED:
            self.named_hidden.append(path)
        elif not hidden and self.skipped_other - self._mark[1] <= NAMED:
            self.named_other.append(path)

    def skips_done(self, item: "Item", stdin: bool = False) -> bool:
        """Whether ``item`` has its record already (:attr:`done`), counted if so; never the
        image read from stdin (``stdin``), which is new each time."""
        if not self.done or stdin:
            return False
        key = done_key(item.path)
        if key not in self.done:
            return False
        self.skipped_done += 1
        outcome = self.done[key]
        self.done_errors += outcome == "error"
        self.done_fakes += outcome == "fake"
        return True

    def fresh(self) -> "WalkFilter":
        """The same rules with the counts at zero (for a second walk, such as a count)."""
        return WalkFilter(self.hidden, self.exclude, done=self.done)

    @property
    def skipped(self) -> int:
        return sum(self.counts())

    @property
    def unmatched(self) -> list[str]:
        """The ``exclude`` patterns that skipped nothing in the folders walked (none before a
        folder was walked: patterns apply only inside folders)."""
        return [p for p in dict.fromkeys(self.exclude) if p not in self.matched] if self.walked else []

    def skips(self, name: str, relpath: str, is_dir: bool, path: Optional[str] = None) -> bool:
        """Whether to skip an entry found while walking (and count it when so; ``path``: its
        path, kept among the first few named)."""
        if not self.hidden and name.startswith("."):
            self.skipped_hidden += 1
            if path is not None:
                self.name_skipped(True, path)
            self.matched.update(self._excluding(name, relpath, is_dir))  # skipped as hidden (-E .git)
            return True
        patterns = self._excluding(name, relpath, is_dir)
        if patterns:
            self.skipped_excluded += 1
            self.matched.update(patterns)
            return True
        return False

    def _excluding(self, name: str, relpath: str, is_dir: bool) -> list[str]:
        """The ``exclude`` patterns that match the entry (each counts as having matched)."""
        if not self._patterns:
            return []
        return [pattern for pat, anchored, dirs_only, pattern in self._patterns
                if (is_dir or not dirs_only)
                and (pat.fullmatch(relpath) if anchored else fnmatch.fnmatchcase(name, pat))]


def walk(folder: str, _seen: Optional[set] = None, filt: Optional[WalkFilter] = None,
         _rel: str = "") -> Iterator[Item]:
    """Yields the image files under ``folder``, depth first, entries sorted by name, skipping
    what ``filt`` says (by default: hidden entries). The open folders are kept on a stack of
    their own, not in nested calls, so that however deep the tree, the walk never reaches
    Python's recursion limit."""
    seen = set() if _seen is None else _seen
    filt = WalkFilter() if filt is None else filt
    filt.walked += 1
    error, entries = _listing(folder, seen)
    if error is not None:
        yield error
    if not entries:
        return
    stack = [(folder, _rel, iter(entries))]
    while stack:
        parent, parent_rel, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        path = os.path.join(parent, entry.name)
        rel = f"{parent_rel}/{entry.name}" if parent_rel else entry.name
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if not (is_dir or is_image_name(entry.name)):
            # a hidden one is not looked at at all; an excluded one counts as excluded; an image
            # by its first bytes is scored
            if (filt.hidden or not entry.name.startswith(".")) and not filt.skips(entry.name, rel, False):
                if image_by_content(path, entry):
                    yield _file_item(path, entry)
                    continue
                filt.skipped_other += 1
                filt.name_skipped(False, path)
            continue
        if filt.skips(entry.name, rel, is_dir, path):
            continue
        if is_dir:
            error, sub = _listing(path, seen)
            if error is not None:
                yield error
            elif sub is None:  # already walked: a loop, or a folder linked twice
                filt.skipped_again += 1
            elif sub:
                stack.append((path, rel, iter(sub)))
        else:
            yield _file_item(path, entry)


def _listing(folder: str, seen: set) -> tuple[Optional[Item], Optional[list]]:
    """A folder's entries sorted by name, or the error record of a folder that cannot be
    listed; (None, None) for a folder already walked (a symlink loop, or a folder linked twice)."""
    try:
        st = os.stat(folder)
    except OSError as exc:
        return Item(folder, error=f"cannot read folder: {exc.strerror}", folder=True), None
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return None, None
    seen.add(key)
    try:
        with os.scandir(folder) as it:
            return None, sorted(it, key=lambda e: e.name)
    except PermissionError:
        return Item(folder, error="permission denied (cannot list folder)", folder=True), None
    except OSError as exc:
        return Item(folder, error=f"cannot list folder: {exc.strerror}", folder=True), None


def _a_list_of_paths(data: bytes) -> bool:
    """Whether bytes given as an image on standard input (``find . | fakedet scan -``) start with
    the name of a file that exists, followed by a newline or a NUL: a list of paths, which
    ``--files-from -`` reads. No image format starts with a path."""
    end = min((i for i in (data.find(b"\n", 0, 4096), data.find(b"\0", 0, 4096)) if i > 0), default=-1)
    if end <= 0:
        return False
    first = data[:end].rstrip(b"\r")
    try:
        return os.path.lexists(os.fsdecode(first))
    except (ValueError, OSError):  # a NUL or an undecodable name: no path
        return False


def expand(path: str, stdin: Optional[IO[bytes]] = None, filt: Optional[WalkFilter] = None) -> Iterator[Item]:
    """One command-line PATH -> items: a file as itself, a folder walked (skipping what ``filt``
    says), ``-`` read from stdin."""
    if path == "-":
        from fakedet.data.decode import MAX_FILE_BYTES  # decode imports this module

        if stdin is None:  # started with stdin closed (``<&-``): not an empty image
            yield Item("-", error="standard input is closed: nothing to read")
            return
        # no more than one image file may hold (``fakedet scan - < /dev/zero`` must end)
        try:
            data = stdin.read(MAX_FILE_BYTES + 1)
        except OSError as exc:  # a terminal gone, a read error on a pipe or a file: this input only
            yield Item("-", error=f"cannot read standard input: {exc.strerror or exc}")
            return
        if len(data) > MAX_FILE_BYTES:
            yield Item("-", error=f"input too large: more than {MAX_FILE_BYTES} bytes on standard input")
        elif _a_list_of_paths(data):
            yield Item("-", error=LIST_ON_STDIN)
        else:
            yield Item("-", source=data)
    elif os.path.isdir(path):
        yield from walk(path, filt=filt)
    else:
        # Named files are scored whatever their extension; missing ones get an error record.
        yield _file_item(path)


def _file_item(path: str, entry: Optional[os.DirEntry] = None) -> Item:
    """A file to score: a named pipe, socket or device gets its error record here, unopened
    (opening a pipe waits for a writer; a device may never end). A file that cannot be looked
    at (missing, a dangling link) is left for decoding to report."""
    try:
        if entry is not None and entry.is_file():  # follows links; free from the listing's types
            return Item(path, source=path)
        mode = entry.stat().st_mode if entry is not None else os.stat(path).st_mode
    except (OSError, ValueError):
        return Item(path, source=path)
    if stat.S_ISREG(mode):
        return Item(path, source=path)
    return Item(path, error=not_regular_error(mode, path))


_BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark


def read_list(stream: IO[bytes], null: bool = False) -> Iterator[str]:
    """Paths from a list file, one per line or NUL-separated, read lazily."""
    sep = b"\0" if null else b"\n"
    buf = b""
    first = True
    # read1: what has arrived, without waiting for 64 KiB (a pipe's paths may come one by one)
    read = getattr(stream, "read1", stream.read)
    while True:
        chunk = read(65536)
        if not chunk:
            break
        buf += chunk
        if first:  # a list saved by Notepad or PowerShell starts with a byte-order mark
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                continue  # too few bytes yet to tell
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
            first = False
        *parts, buf = buf.split(sep)
        for part in parts:
            name = _decode_name(part, null)
            if name:
                yield name
    name = _decode_name(buf, null)
    if name:
        yield name


def _decode_name(raw: bytes, null: bool) -> str:
    if not null:
        raw = raw.rstrip(b"\r")
    return os.fsdecode(raw)


def spaced_names(paths: "list[str]", most: int = 4) -> "dict[int, str]":
    """For PATH arguments that name nothing, the one name that two to ``most`` arguments in a row,
    among them this one, make when joined by spaces, where that name exists (a name holding a
    space, typed without quotes: ``fakedet scan photos/from chats``, also where ``photos/from``
    exists): ``{index: joined name}`` for each argument of it that names nothing. An argument
    that exists is never in the result: it is scanned as given."""
    out: dict[int, str] = {}
    usable = [isinstance(p, str) and p != "-" for p in paths]
    gone = [ok and not os.path.lexists(p) for ok, p in zip(usable, paths)]
    for i in range(len(paths)):
        if i in out or not gone[i]:
            continue
        span = next(((s, e) for s in range(max(0, i - most + 1), i + 1)
                     for e in range(max(i + 1, s + 2), min(len(paths), s + most) + 1)
                     if all(usable[s:e]) and os.path.lexists(" ".join(paths[s:e]))), None)
        if span is not None:
            joined = " ".join(paths[span[0]:span[1]])
            out.update((j, joined) for j in range(*span) if gone[j])
    return out


class Reached:
    """The image files given so far, so that one reached through a folder is scored once:
    ``find photos | fakedet scan --files-from -`` lists the folder and then each file in it, and
    ``fakedet scan photos photos/a.jpg`` names one of them twice. A file reached through a folder
    that another input (a name, or another folder) gave already, or named after a folder gave
    it, is skipped. Two names of one file within one folder's walk (a hard link, a link to a file
    beside it) each keep their record, as before; so does a file named twice, each time by its
    own name. A file is known by its device, inode and time of last change, so that a file
    deleted in a long stream and another made later on its inode are told apart.

    A scan of a single PATH keeps nothing and looks at no file twice; with more inputs (several
    PATHs, or a ``--files-from`` list, which may name a folder after its files, as ``find
    -depth`` does) every file given is kept, as one integer (about 100 bytes with its place in
    the set: 94 measured with tracemalloc over 200,000)."""

    def __init__(self) -> None:
        self.walked: dict = {}  # key -> the input (its number) whose walk gave it first
        self.named: set = set()

    def again(self, item: Item, walked: bool, source: int) -> bool:
        """Whether ``item``, given by input number ``source`` (a folder's walk when ``walked``),
        was given before by another input and is to be skipped; otherwise it is kept for the
        inputs after it."""
        broken = item.error is not None and item.error.startswith(BROKEN_LINK)  # an error record made here
        if not broken and (item.error is not None or not isinstance(item.source, str)):
            return False
        path = item.source if isinstance(item.source, str) else item.path
        try:
            st = os.stat(path)
        except (OSError, ValueError):  # missing, or a name the OS refuses: its record tells
            try:
                st = os.lstat(path)  # a broken link is known by itself: one record, as a file
                if not stat.S_ISLNK(st.st_mode):
                    return False
            except (OSError, ValueError):
                return False
        if not st.st_ino:  # a file system without inode numbers: no way to tell
            return False
        # one exact integer (an inode can take 128 bits on Windows' ReFS), smaller than a tuple
        return self.seen((((st.st_dev << 128) | st.st_ino) << 64) | (st.st_mtime_ns & 0xFFFFFFFFFFFFFFFF),
                         walked, source)

    def seen(self, key, walked: bool, source: int) -> bool:
        """:meth:`again` for an input known by ``key`` (the Ray engine's URIs, by their text)."""
        first = self.walked.get(key)
        if (first is not None and first != source) or (walked and key in self.named):
            return True
        if walked:
            self.walked.setdefault(key, source)
        else:
            self.named.add(key)
        return False


#: the error records of inputs given the wrong way (a list of paths read as an image, a list
#: read with the wrong separator): a usage error, which ``fakedet scan`` ends with status 2 (not
#: 3, "some inputs could not be read", which a nightly job takes in its stride)
LIST_ON_STDIN = ("standard input holds a list of paths, not an image: read it with --files-from - "
                 "(-0 for NUL-separated names)")
STDIN_IN_LIST = "'-' (stdin) cannot be named inside a list of paths"
NULS_WITHOUT_0 = "invalid file name (it contains a NUL byte); a list of NUL-separated names needs -0"
LINES_WITH_0 = "file not found (the name holds newlines: a list of one name per line is read without -0)"
MISGIVEN = frozenset({LIST_ON_STDIN, STDIN_IN_LIST, NULS_WITHOUT_0, LINES_WITH_0})


def done_key(path: str) -> str:
    """A path as ``--resume`` compares it with the records' (:attr:`WalkFilter.done`): ``./p/``,
    ``p//a.jpg`` and ``p/a.jpg`` name the same file as the scan walks it."""
    return os.path.normpath(path) if path else path


def several_inputs(paths: list, files_from) -> bool:
    """Whether the inputs may reach a file twice (:class:`Reached`): more than one PATH, or a
    ``--files-from`` list; one PATH alone cannot."""
    return len(paths) > 1 or files_from is not None


def iter_items(
    paths: Iterable[str],
    files_from: Optional[IO[bytes]] = None,
    null: bool = False,
    stdin: Optional[IO[bytes]] = None,
    on_empty: Optional[Callable[[str], None]] = None,
    filt: Optional[WalkFilter] = None,
    spaced: Optional[dict] = None,
) -> Iterator[Item]:
    """All inputs in order: the PATH arguments first, then the entries of ``--files-from``
    (read lazily). ``on_empty(path)`` is called for a path that yields no item (a folder without
    images), wherever it was named. Folders are walked with ``filt`` (which counts what it
    skips); by default hidden entries are skipped. An image file reached a second time through
    a folder is skipped and counted (:class:`Reached`). ``spaced``: :func:`spaced_names` of
    ``paths``, where the caller has it already (it reads every argument's name)."""
    filt = WalkFilter() if filt is None else filt
    reached, inputs = Reached(), itertools.count()

    def one(path: str, source: Optional[IO[bytes]]) -> Iterator[Item]:
        n, before, number = 0, filt.start_walk(), next(inputs)
        for item in expand(path, source, filt):
            n += 1
            # a walk's items carry longer paths than the folder's
            if several and reached.again(item, walked=item.path != path, source=number):
                filt.skipped_twice += 1
                continue
            if filt.skips_done(item, stdin=path == "-"):  # (after again(): it keeps the file)
                continue
            yield item
        if n == 0 and on_empty is not None:
            filt.last = filt.counts_since(before)  # what this path's walk skipped, for the warning
            on_empty(path)

    paths = list(paths)
    spaced = spaced_names(paths) if spaced is None else spaced
    several = several_inputs(paths, files_from)

    def told(item: Item) -> Iterator[Item]:  # an input's error record, made here
        if not filt.skips_done(item):
            yield item

    for i, path in enumerate(paths):
        if i in spaced:
            yield from told(Item(path, error=f"file not found (the names beside it make {spaced[i]!r}, which "
                                             "exists: quote a name that holds spaces)"))
        else:
            yield from one(path, stdin)
    if files_from is not None:
        for path in read_list(files_from, null):
            if path == "-":
                yield from told(Item("-", error=STDIN_IN_LIST))
            elif not null and "\0" in path:  # `find -print0 | fakedet scan --files-from -`
                yield from told(Item(path, error=NULS_WITHOUT_0))
            elif null and "\n" in path.strip("\n") and not os.path.lexists(path):  # `find | ... -0`
                yield from told(Item(path, error=LINES_WITH_0))
            else:
                yield from one(path, None)


def count_items(paths: Iterable[str], list_path: Optional[str] = None, null: bool = False,
                stop: Optional[Callable[[], bool]] = None,
                filt: Optional[WalkFilter] = None) -> Optional[int]:
    """How many items :func:`iter_items` gives for the same PATHs, list file (named by path,
    read again from its start) and filter rules, without reading stdin or any image: ``-`` counts as one.
    Returns None when ``stop()`` turns true before the count is done, or the list file cannot
    be read again (not a regular file: a pipe would give its lines to one reader only). Meant
    to run in a background thread, giving a progress bar its total."""
    n = 0
    try:
        if list_path is not None and not stat.S_ISREG(os.stat(list_path).st_mode):
            return None
        fh = open(list_path, "rb") if list_path is not None else None
    except OSError:
        return None
    try:
        for _ in iter_items(paths, fh, null, None, filt=filt.fresh() if filt is not None else None):
            n += 1
            if stop is not None and n % 256 == 0 and stop():
                return None
    except OSError:
        return None
    finally:
        if fh is not None:
            fh.close()
    return None if stop is not None and stop() else n
