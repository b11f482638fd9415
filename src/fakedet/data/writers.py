"""Data layer: record writers, tsv (default, no header), csv (header), jsonl, json.

Every record has the fields ``path``, ``p_fake``, ``label``, ``error``. In tsv and csv ``p_fake``
has four decimals and missing values are empty; in jsonl/json they are null. A writer flushes
after every batch so that a reader downstream of a pipe sees records as they are made.
"""

from __future__ import annotations

import csv
import io
import json
from typing import IO, Iterable

FIELDS = ("path", "p_fake", "label", "error")
FORMATS = ("tsv", "csv", "jsonl", "json")


def _fmt_p(p) -> str:
    return "" if p is None else f"{p:.4f}"


def _tsv_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _json_line(r) -> str:
    """One record as JSON text. File names that are not valid UTF-8 reach here as lone surrogates
    (surrogateescape); written raw they would make the output invalid UTF-8, so such a record is
    written with ASCII escapes instead."""
    text = json.dumps(_json_record(r), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(_json_record(r), ensure_ascii=True)
    return text


def _json_record(r) -> dict:
    d = r.to_dict()
    for key in ("p_fake", "p_whole"):
        if d.get(key) is not None:
            d[key] = round(d[key], 6)
    if d.get("faces"):
        d["faces"] = [{**face, "p_fake": round(face["p_fake"], 6)} for face in d["faces"]]
    return d


class Writer:
    """Writes records to a text stream in one of :data:`FORMATS`."""

    def __init__(self, stream: IO[str], fmt: str = "tsv"):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.count = 0
        self._closed = False
        if fmt == "csv":
            self._csv_row(FIELDS)

    def _csv_row(self, row) -> None:
        # The csv module quotes a field that holds a character of the line terminator: with
        # "\r\n" a carriage return in a file name is quoted too (with "\n" alone it was not, and
        # csv readers split the record in two); the row itself ends in "\n".
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow(row)
        self.stream.write(buf.getvalue()[:-2] + "\n")

    def write(self, records: Iterable) -> None:
        """Writes a batch of records and flushes."""
        for r in records:
            if self.fmt == "tsv":
                fields = (_tsv_escape(r.path), _fmt_p(r.p_fake), r.label or "", _tsv_escape(r.error or ""))
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

    def close(self) -> None:
        """Finishes the document (closes the JSON array) and flushes; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.fmt == "json":
            self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()
