"""Data layer: record writers, tsv (default, no header), csv (header), jsonl, json, parquet.

Every record has the fields ``path``, ``p_fake``, ``label``, ``error``. ``p_fake`` has six decimals
in every format (the ``fake`` threshold, 0.998230, needs them: with four, a ``fake`` and an
``uncertain`` record could show the same score), and below 0.001 three significant digits (the
``real`` threshold is 1.13e-6: :func:`score_text`); parquet keeps it unrounded;
in tsv and csv missing values are empty, in jsonl/json null. A writer flushes after every batch
so that a reader downstream of a pipe sees records as they are made.

Parquet (for large runs; needs pyarrow, imported only then) goes to a file, never a pipe: one
row per record with the columns :data:`PARQUET_COLUMNS` (``evidence`` as JSON text, null when
it was not read; a face-mode scan adds :data:`PARQUET_FACE_COLUMNS`),
written a row group at a time so that memory stays bounded.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import stat
from typing import IO, Iterable, Optional

FIELDS = ("path", "p_fake", "label", "error")
FORMATS = ("tsv", "csv", "jsonl", "json", "parquet")
PARQUET_COLUMNS = ("path", "p_fake", "label", "error", "cropped", "framed", "animated", "evidence", "label_by",
                   "model_label")
#: the columns a face-mode scan adds (``faces`` as JSON text, as jsonl writes the list)
PARQUET_FACE_COLUMNS = ("p_whole", "faces", "note")
PARQUET_HINT = "parquet output needs pyarrow: pip install 'fakedet[parquet]'"
#: records per parquet row group
PARQUET_ROWS = 8192


def score_text(p: float) -> str:
    """A score (or a threshold) with the digits that place it against the thresholds: six
    decimals, as many as the ``fake`` threshold has (0.998230), or, below 0.001, three
    significant digits, as many as the ``real`` one has (1.13e-06): with six decimals a score of
    1.05e-06, ``real``, and one of 1.2e-06, ``uncertain``, would both show as 0.000001."""
    if p >= 1e-3 or p == 0:
        return f"{p:.6f}"
    for digits in range(3, 18):  # 0.0009996, not "0.001" as if it reached 0.001
        text = f"{p:.{digits}g}"
        if float(text) < 1e-3:
            return text
    return repr(p)


def _fmt_p(p) -> str:
    return "" if p is None else score_text(p)


#: characters with which a name shows as another: those that make a terminal show text in
#: another order than it is written (the bidirectional controls: U+202E, RIGHT-TO-LEFT
#: OVERRIDE, shows ``x\u202egpj.exe`` as ``xexe.jpg``; the Arabic letter mark; the line and
#: paragraph separators), and invisible ones (the soft hyphen, zero-width space, word joiner,
#: byte order mark, invisible operators). The zero-width joiner and non-joiner are left: emoji
#: and several scripts need them.
REORDER = ("\u00ad\u061c\u180e\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064"
            "\u2066-\u206f\ufeff")

#: control characters other than tab, newline and carriage return (C0, DEL, C1): a file name
#: holding ESC or CSI would otherwise send escape sequences to the terminal showing the records;
#: and those of :data:`REORDER`, with which one would show as another name
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{REORDER}]")


def _escaped(m: "re.Match") -> str:
    """One character as ``\\xHH`` (up to U+00FF) or ``\\uHHHH``."""
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def control_escape(text: str) -> str:
    r"""Text safe on a terminal, lines kept: control characters other than tab and newline as
    ``\xHH`` (a carriage return too: it would let a name overwrite the start of its line), and
    characters that reorder text on a terminal (:data:`REORDER`) as ``\uHHHH``."""
    return _CONTROL_CR.sub(_escaped, text)


_CONTROL_CR = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{REORDER}]")


#: what a spreadsheet reads as the start of a formula in a csv cell (Excel, LibreOffice, Sheets):
#: a file name such as ``=HYPERLINK(...).jpg`` would run as one where the csv is opened
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """A csv field as a spreadsheet shows it as text, not as a formula: one that begins with
    :data:`FORMULA_START`, or with ``'`` itself (so that every name can be read back: drop the
    first ``'`` of a field that begins with one), gets a leading ``'`` (which spreadsheets
    hide); other fields as they are. Only csv does this: jsonl, json, parquet and tsv keep a
    file's name exactly."""
    return "'" + text if text.startswith(FORMULA_START + ("'",)) else text


def tsv_escape(text: str) -> str:
    r"""One tsv field on one line, safe on a terminal: backslash, tab, newline and carriage return
    as ``\\``, ``\t``, ``\n``, ``\r``, other control characters as ``\xHH``, characters that
    reorder text on a terminal (:data:`REORDER`) as ``\uHHHH``."""
    text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return _CONTROL.sub(_escaped, text)


_TSV_ESCAPE = re.compile(r"\\(\\|t|n|r|x[0-9a-f]{2}|u[0-9a-f]{4})")
_TSV_PLAIN = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def tsv_unescape(text: str) -> str:
    """The text :func:`tsv_escape` was given: its escapes read back."""
    return _TSV_ESCAPE.sub(lambda m: _TSV_PLAIN.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), text)


#: the formats whose records ``--resume`` can read back and add to: one record after another,
#: each ending in a newline (a json array is closed, a parquet file finished by its footer)
RESUMABLE = ("tsv", "csv", "jsonl")


#: a record's outcome as :func:`recorded` gives it where it is an error record (else its label)
ERROR = "error"


def recorded(lines: Iterable[bytes], fmt: str, modes: Optional[set] = None) -> tuple[dict, int]:
    """The paths that the records of a records file were made for, each with its record's
    outcome (its label, or :data:`ERROR` for an error record), read from its ``lines``
    (binary, each with its newline: a file opened ``"rb"``) in format ``fmt``, one of
    :data:`RESUMABLE`; and how many bytes at its start hold whole records. A last record without
    its newline (a scan killed while writing it) is not counted in either; nor are blank lines
    and a byte-order mark (an editor's). Each path is as the input named it: a name that is not
    UTF-8 with its bytes as surrogate escapes, as a scan's inputs hold it (jsonl's
    ``path_bytes``). A path with several records keeps its last one's outcome. ``modes``: a set
    that gets ``"faces"`` for each jsonl record of a face-mode scan, and ``"whole"`` for each of
    another (tsv and csv do not say). Raises ValueError naming the first line that is no record
    of that format."""
    paths: dict = {}
    whole = offset = 0
    number = first = 0  # the line read, and the first line of the record being read
    pending, quotes = b"", 0  # csv: a record's lines so far, and its quotes (a quoted newline)
    for raw in lines:
        offset += len(raw)
        number += 1
        if not raw.endswith(b"\n"):
            break  # unfinished
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not pending:
            first = number
        pending += raw
        quotes += raw.count(b'"')
        if fmt == "csv" and quotes % 2:  # inside a quoted field: the record goes on
            continue
        record, pending, quotes = pending.decode("utf-8", "surrogateescape"), b"", 0
        whole = offset
        if record.strip():
            found = _record_path(record, fmt, first)
            if found is not None:
                paths[found[0]] = found[1]
                if modes is not None and found[2] is not None:
                    modes.add(found[2])
    return paths, whole


def _outcome(label, error) -> Optional[str]:
    return ERROR if error else (label or None)


def _record_path(record: str, fmt: str, line: int) -> Optional[tuple]:
    """The path of one record written in ``fmt``, which starts at ``line``, its outcome and its
    mode (:func:`recorded`); None for csv's header."""
    wrong = ValueError(f"line {line} is not a {fmt} record of fakedet scan")
    if fmt == "csv":
        try:
            rows = list(csv.reader(io.StringIO(record, newline=""), strict=True))
        except csv.Error:
            raise wrong from None
        if len(rows) != 1 or len(rows[0]) != len(FIELDS):
            raise wrong
        if tuple(rows[0]) == FIELDS:
            return None
        path, _, label, error = rows[0]
        # as spreadsheet_text wrote it
        return path[1:] if path.startswith("'") else path, _outcome(label, error), None
    if fmt == "tsv":
        fields = record.rstrip("\r\n").split("\t")
        if len(fields) != len(FIELDS):
            raise wrong
        return tsv_unescape(fields[0]), _outcome(fields[2], fields[3]), None
    try:
        rec = json.loads(record)
        path = rec["path"]
        if rec.get("path_bytes") is not None:
            import base64

            path = os.fsdecode(base64.b64decode(rec["path_bytes"], validate=True))
    except (ValueError, KeyError, TypeError):
        raise wrong from None
    if not isinstance(path, str):
        raise wrong
    return path, _outcome(rec.get("label"), rec.get("error")), "faces" if "faces" in rec else "whole"


def _json_line(r) -> str:
    """One record as JSON text, valid UTF-8 that strict parsers accept. A file name that is not
    valid UTF-8 reaches here with lone surrogates (surrogateescape): its ``path`` is written with
    each undecodable byte as the text ``\\xHH`` (as parquet writes it), and
    ``path_bytes`` (right after ``path``) holds the name's exact bytes in base64, so that the file
    can still be found: where it is present it, not ``path``, names the file. Other text with a
    lone surrogate (metadata can hold one) is made valid UTF-8 by :func:`utf8_text`."""
    d = _json_record(r)
    text = json.dumps(d, ensure_ascii=False)
    try:
        text.encode("utf-8")
        return _escape_c1(text)
    except UnicodeEncodeError:
        pass
    d = {**path_fields(d["path"]), **{k: v for k, v in d.items() if k != "path"}}
    return _escape_c1(json.dumps(utf8_all(d), ensure_ascii=False))


_C1 = re.compile(f"[\x7f-\x9f{REORDER}]")


def _escape_c1(text: str) -> str:
    """DEL and the C1 control characters (U+009B opens a terminal's control sequence as ESC [
    does), and characters that reorder text on a terminal (:data:`REORDER`), as JSON escapes;
    ``json.dumps`` escapes only those below U+0020. They can stand only inside strings, so the
    JSON is the same."""
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def path_fields(path: str) -> dict:
    """``{"path": ...}`` for a JSON record: a name that is not valid UTF-8 as :func:`utf8_text`
    writes it, with ``path_bytes``, its exact bytes in base64."""
    text = utf8_text(path)
    if text == path:
        return {"path": path}
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no undecodable byte makes: no bytes to give
        return {"path": text}
    import base64

    return {"path": text, "path_bytes": base64.b64encode(raw).decode("ascii")}


def nan_to_none(obj):
    """JSON has no NaN: undefined figures (an AUC with one class) become null."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


def utf8_all(obj):
    """``obj`` with every string (keys too) made valid UTF-8 by :func:`utf8_text`."""
    if isinstance(obj, str):
        return utf8_text(obj)
    if isinstance(obj, dict):
        return {utf8_all(k): utf8_all(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [utf8_all(v) for v in obj]
    return obj


def _json_record(r) -> dict:
    d = r.to_dict()
    for key in ("p_fake", "p_whole"):
        if d.get(key) is not None:
            d[key] = float(score_text(d[key]))
    if d.get("faces"):
        d["faces"] = [{k: float(score_text(v)) if k in ("p_fake", "p_network", "p_expert") and v is not None else v
                       for k, v in face.items()} for face in d["faces"]]
    return d


def parquet_schema(faces: bool = False):
    import pyarrow as pa

    face_columns = [("p_whole", pa.float64()), ("faces", pa.string()), ("note", pa.string())] if faces else []
    return pa.schema([("path", pa.string()), ("p_fake", pa.float64()), ("label", pa.string()),
                      ("error", pa.string()), ("cropped", pa.list_(pa.int32())), ("framed", pa.bool_()),
                      ("animated", pa.bool_()),
                      ("evidence", pa.string()),
                      ("label_by", pa.string()),
                      ("model_label", pa.string()), *face_columns])


def utf8_text(text: Optional[str]) -> Optional[str]:
    """Valid UTF-8 text (what parquet, Arrow and strict JSON parsers accept): a file name that is
    not UTF-8 (its undecodable bytes as lone surrogates, ``\\udc80``-``\\udcff``) gets each such
    byte as the text ``\\xHH``; any other lone surrogate becomes the text ``\\udXXX``."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate no undecodable byte makes (from text, not a name)
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_text(obj) -> str:
    """``obj`` as JSON text parquet and Arrow can hold and strict parsers read: a lone surrogate
    (metadata text can hold one: a JSON "\\ud800" in an image's generation parameters) written
    as :func:`utf8_text` writes it, never as an unpaired surrogate escape."""
    return json.dumps(utf8_all(obj), ensure_ascii=False)


def _may_write(path: str) -> bool:
    return os.access(path, os.W_OK)


class _Parquet:
    """Records to a parquet file, opened at the first row group (a scan that writes nothing
    leaves an existing file as it was), a row group per :data:`PARQUET_ROWS` records."""

    def __init__(self, path: str, faces: bool = False):
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise RuntimeError(PARQUET_HINT) from None
        self.path, self.rows, self.writer, self.faces = path, [], None, faces
        self.columns = PARQUET_COLUMNS + (PARQUET_FACE_COLUMNS if faces else ())
        self.part: Optional[str] = None  # the temporary file written, renamed onto path by close()
        self.sink: Optional[IO[bytes]] = None  # the temporary file, open
        self.target: Optional[str] = None  # where the temporary file goes: path, where links lead
        self.was: Optional[os.stat_result] = None  # the file it replaces, as it was
        self.made = 0o644  # the mode open() would give a new file there

    def add(self, r) -> None:
        ev = r.evidence
        row = (utf8_text(r.path), r.p_fake, r.label, utf8_text(r.error), r.cropped, bool(r.framed), bool(r.animated),
               None if ev is None else json_text(ev), r.label_by, None if ev is None else r.model_label)
        if self.faces:
            row += (r.p_whole, None if r.faces is None else json_text(r.faces), utf8_text(r.note))
        self.rows.append(row)
        if len(self.rows) >= PARQUET_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if not self.rows and self.writer is not None:
            return
        schema = parquet_schema(self.faces)
        table = pa.table({name: [row[k] for row in self.rows] for k, name in enumerate(self.columns)},
                         schema=schema)
        if self.writer is None:
            self._open(schema)
        if self.rows:
            self.writer.write_table(table)
        self.rows = []

    def _open(self, schema) -> None:
        """Starts the file. Where ``path`` (where a link leads) is a regular file or none yet, the
        file is written under a temporary name beside it (:mod:`fakedet._parts`, mode 0600 while
        written) and renamed onto it by :meth:`close`: a parquet file is readable only once its
        footer is written, and a scan killed outright (SIGKILL, out of memory) emptied an
        earlier run's whole file at its first row group. A device, or a folder where no file can
        be made, is written in place, as before (a named pipe is refused before a scan starts:
        :func:`fakedet.cli.engine.check`)."""
        import pyarrow.parquet as pq

        from fakedet._parts import new_part, remove_stale_parts

        target = os.path.realpath(self.path)
        try:
            st: Optional[os.stat_result] = os.stat(target)
        except OSError:
            st = None
        # (a file this user may not write, read-only, is not replaced: writing it fails, as before)
        if st is None or (stat.S_ISREG(st.st_mode) and _may_write(target)):
            folder = os.path.dirname(target)
            try:
                remove_stale_parts(folder)
                fd, part = new_part(folder)
                # the mode open() gives a new file here (the umask, a folder's default ACL),
                # read from the file made as open() makes one; private while it is written
                self.made = stat.S_IMODE(os.fstat(fd).st_mode)
                os.chmod(part, 0o600)
            except OSError:
                fd = None
            if fd is not None:
                self.part, self.target, self.was = part, target, st
                self.sink = os.fdopen(fd, "wb")
                self.writer = pq.ParquetWriter(self.sink, schema)
                return
        self.writer = pq.ParquetWriter(self.path, schema)

    def close(self) -> None:
        """Writes the last row group and the footer; a file written under a temporary name is
        synced to disk, given the mode (and, where allowed, the owner) of the file it replaces
        (a new file's: 0666 less the umask) and renamed onto it, or, where the rename is refused
        (a bind-mounted file, another user's file in a sticky folder), copied over it (not at
        once: a copy that fails leaves ``path`` cut off, and the finished file is kept under its
        temporary name, which the error gives). Where the file cannot be finished, the
        temporary file is removed and ``path`` keeps what it held."""
        try:
            self.flush()  # an empty scan still gets a file with the columns
            self.writer.close()
            if self.part is not None:
                self.sink.flush()
                os.fsync(self.sink.fileno())
                self._take_mode()
                self.sink.close()
        except BaseException:
            self.abort()
            raise
        if self.part is None:
            return
        try:
            os.replace(self.part, self.target)
        except OSError:
            try:
                with open(self.part, "rb") as src, open(self.target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except OSError as exc:
                part, self.part = self.part, None  # the finished records: kept
                raise OSError(exc.errno, f"{exc.strerror or exc} (copying the finished file over "
                                         f"{self.target}; it is kept at {part})") from exc
            os.unlink(self.part)
        self.part = None

    def _take_mode(self) -> None:
        if self.was is None:  # a new file: as open() would have made it
            os.chmod(self.part, self.made)
            return
        os.chmod(self.part, stat.S_IMODE(self.was.st_mode))
        try:
            os.chown(self.part, self.was.st_uid, self.was.st_gid)
        except (OSError, AttributeError):  # not allowed (not root), or no chown (Windows)
            pass

    def abort(self) -> None:
        """Removes the temporary file of a file not finished (a write error, a crash): ``path``
        keeps what it held. Nothing where the file was finished or written in place."""
        if self.part is None:
            return
        try:
            self.writer.close()  # (its footer goes to the file removed next; never again at exit)
        except Exception:  # noqa: BLE001 (the file is given up whatever went wrong)
            pass
        try:
            if self.sink is not None and not self.sink.closed:
                self.sink.close()
        except OSError:
            pass
        try:
            os.unlink(self.part)
        except OSError:
            pass
        self.part = None


class Writer:
    """Writes records to a text stream in one of :data:`FORMATS`; for parquet, ``stream`` is
    the file's path (or an object with a ``path``), and :meth:`close` finishes the file."""

    def __init__(self, stream: IO[str], fmt: str = "tsv", faces: bool = False, header: bool = True):
        """``faces``: a face-mode scan's records, whose parquet rows add
        :data:`PARQUET_FACE_COLUMNS` (the text formats write what each record holds).
        ``header=False``: no csv header (records added to a file that has one)."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.count = 0
        self._closed = False
        self._parquet = None
        if fmt == "parquet":
            self._parquet = _Parquet(stream if isinstance(stream, str) else stream.path, faces)
        if fmt == "csv" and header:
            self._csv_row(FIELDS)

    def _csv_row(self, row) -> None:
        row = [spreadsheet_text(v) for v in row]
        # The csv module quotes a field that holds a character of the line terminator: with
        # "\r\n" a carriage return in a file name is quoted too (with "\n" alone it was not, and
        # csv readers split the record in two); the row itself ends in "\n".
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow(row)
        self.stream.write(buf.getvalue()[:-2] + "\n")

    def write(self, records: Iterable) -> None:
        """Writes a batch of records and flushes."""
        if self._parquet is not None:
            for r in records:
                self._parquet.add(r)
                self.count += 1
            return
        for r in records:
            if self.fmt == "tsv":
                fields = (tsv_escape(r.path), _fmt_p(r.p_fake), r.label or "", tsv_escape(r.error or ""))
                self.stream.write("\t".join(fields) + "\n")
            elif self.fmt == "csv":
                self._csv_row((r.path, _fmt_p(r.p_fake), r.label or "", r.error or ""))
            elif self.fmt == "jsonl":
                self.stream.write(_json_line(r) + "\n")
            else:  # json: one array, streamed element by element
                self.stream.write("[\n" if self.count == 0 else ",\n")
                self.stream.write(_json_line(r))
            self.count += 1
        self.stream.flush()

    def abort(self) -> None:
        """Gives up a parquet file not finished (a write error, a crash): its temporary file is
        removed, and the ``-o`` file keeps what it held. Nothing for the text formats, or once
        :meth:`close` has finished the file."""
        if self._parquet is not None:
            self._parquet.abort()

    def close(self) -> None:
        """Finishes the document (closes the JSON array) and flushes; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._parquet is not None:
            self._parquet.close()
            return
        if self.fmt == "json":
            self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()
