#!/usr/bin/env python
"""Fault-injection reliability benchmark of ``fakedet scan``: hostile inputs and signals.

    python benchmarks/faults.py                                 # 5,000 files, 6 full runs, 24 signal runs
    python benchmarks/faults.py --files 200 --quick --signal-runs 4 --json-out faults.json
    python benchmarks/faults.py --faces --quick --json-out faults-faces.json  # every scan with --faces

1. Builds a folder (a temp dir, or --dir) of --files entries, reproducible from --seed: small valid
   JPEG/PNG/WebP images (64-160 px) in subfolders, and at least --hostile of hostile ones: random
   bytes, truncated JPEG/PNG/WebP, zero-length files, FIFOs, dangling symlinks, symlink loops (a
   link to itself; folder links to a parent and to a folder already walked), chmod 000 files,
   decompression bombs, 1x1 and 60000x1 images, non-UTF-8 and odd (tab, newline, quote) names,
   hidden files and a hidden folder. The expected records (paths, in the walker's order, and
   ok/error per file) come from what was created, following src/fakedet/data/sources.py: every
   image-named entry that is not a folder and not hidden gets one record (FIFOs and broken links
   included); a folder reached again through a link is not walked again.
2. Full runs: ``fakedet scan DIR -f jsonl`` with every -j 0/1/8 x -b 1/64 (--quick: two) and with
   the default -j/-b (the signal runs' reference), checking
   one record per expected input, in order, ok or error as expected, and identical records across
   the runs; a tsv and a csv run on the non-UTF-8 names checks they map back to the files' bytes.
3. Signal runs: ``fakedet scan DIR -f FMT`` (to a pipe, or -o FILE) stopped by SIGINT or SIGTERM
   at a seeded random moment (a third of them before the default run's first record, the others
   in the following 20 s): time from the signal to exit,
   exit status, the output parses in its format, the records written are the full run's first
   records, and the summary's count matches.
Prints a table, writes --json-out, and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import io
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import numpy as np
from PIL import Image

from fakedet.data.writers import utf8_text

FIELDS = ["path", "p_fake", "label", "error"]
FORMATS = ["tsv", "csv", "jsonl", "json"]
COMBOS = [(j, b) for j in (0, 1, 8) for b in (1, 64)]
QUICK_COMBOS = [(0, 1), (8, 64)]
MAX_EXIT_S = 5.0
# hostile kinds and their shares of the hostile entries (folder links: a fixed few, no record)
HOSTILE = {"random_bytes": 14, "truncated_jpeg": 8, "truncated_png": 8, "truncated_webp": 8,
           "zero_length": 8, "fifo": 6, "dangling_link": 6, "self_link": 4, "unreadable": 8,
           "bomb": 8, "tiny_1x1": 5, "tiny_60000x1": 3, "non_utf8_name": 8, "odd_name": 4,
           "hidden": 2}  # hidden: .name files and a .cache folder, which the walker skips


# ---------------------------------------------------------------------------------------------
# the folder


def image_bytes(rng: random.Random, fmt: str, size=None) -> bytes:
    w, h = size or (rng.randint(64, 160), rng.randint(64, 160))
    yy, xx = np.mgrid[0:h, 0:w]
    nrng = np.random.default_rng(rng.getrandbits(32))
    arr = np.stack([(xx * rng.randint(1, 4) + yy * rng.randint(0, 3)) % 256,
                    (yy * rng.randint(1, 4)) % 256, np.full((h, w), rng.randint(0, 255))], -1)
    arr = np.clip(arr + nrng.normal(0, 12, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt],
                                      **({"quality": rng.randint(60, 95)} if fmt != "png" else {}))
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB with almost no pixel data."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))


def jpeg_declaring(small: bytes, width: int, height: int) -> bytes:
    """A small baseline JPEG whose frame header (SOF0) is patched to ``width`` x ``height``."""
    i = 2
    while small[i + 1] != 0xC0:  # walk the segments up to the frame header
        i += 2 + struct.unpack(">H", small[i + 2:i + 4])[0]
    return small[:i + 5] + struct.pack(">HH", height, width) + small[i + 9:]


def build(root: str, n_files: int, hostile_share: float, seed: int) -> dict:
    """Creates the folder; returns its manifest: the expected records in the walker's order
    (path -> kind, ok/error expected) and counts by kind."""
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    if os.listdir(root):
        raise SystemExit(f"{root} is not empty")
    folders = ["", *[f"d{i:02d}" for i in range(10)], "d03/deep", "d07/deep", "d07/deep/deeper"]
    for f in [*folders[1:], "d05/.cache"]:
        os.makedirs(os.path.join(root, f), exist_ok=True)
    n_hostile = max(int(np.ceil(n_files * hostile_share)), len(HOSTILE) + 3)
    links = [("d01/up", ".."), ("d07/deep/deeper/top", "../../.."), ("zz_again", "d00")]  # no records
    total = sum(HOSTILE.values())
    counts = {k: max(1, round(v * (n_hostile - len(links)) / total)) for k, v in HOSTILE.items()}
    kinds = [k for k, c in counts.items() for _ in range(c)]
    kinds += ["valid"] * max(0, n_files - len(links) - len(kinds))
    rng.shuffle(kinds)
    bombs = {"png": png_declaring(100_000, 100_000),
             "jpg": jpeg_declaring(image_bytes(rng, "jpg", (64, 64)), 65_000, 65_000)}
    buf = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buf, "PNG")  # 144 megapixels, a few KB on disk
    bombs["big.png"] = buf.getvalue()

    readable_000 = None
    expected = {}  # bytes path -> (kind, "ok" | "error")
    for i, kind in enumerate(kinds):
        folder = os.fsencode(os.path.join(root, rng.choice(folders)))
        fmt = rng.choice(["jpg", "png", "webp"])
        ext = fmt if rng.random() < 0.9 else {"jpg": "JPEG", "png": "PNG", "webp": "WebP"}[fmt]
        path = os.path.join(folder, f"{i:05d}_{kind}.{ext}".encode())
        outcome = "error"
        if kind == "hidden":
            path = os.path.join(folder, f".{i:05d}_hidden.{ext}".encode()) if rng.random() < 0.5 else \
                os.fsencode(os.path.join(root, "d05/.cache", f"{i:05d}_hidden.{ext}"))
            with open(path, "wb") as fh:
                fh.write(image_bytes(rng, fmt))
            continue  # no record
        if kind in ("valid", "non_utf8_name", "odd_name", "unreadable"):
            if kind == "non_utf8_name":
                path = os.path.join(folder, f"{i:05d}_".encode() + rng.choice([b"\xff\xfe", b"caf\xe9", b"\x80x"])
                                    + f".{ext}".encode())
            elif kind == "odd_name":
                odd = rng.choice(["tab\there", "new\nline", 'co,m"ma', "back\\slash", "cr\rret", "espaço é"])
                path = os.path.join(folder, f"{i:05d}_{odd}.{ext}".encode())
            with open(path, "wb") as fh:
                fh.write(image_bytes(rng, fmt))
            outcome = "ok"
            if kind == "unreadable":
                os.chmod(path, 0)
                if readable_000 is None:
                    try:
                        open(path, "rb").close()
                        readable_000 = True  # root: chmod 000 does not stop reading
                    except PermissionError:
                        readable_000 = False
                outcome = "ok" if readable_000 else "error"
        elif kind.startswith("truncated_"):
            data = image_bytes(rng, {"jpeg": "jpg", "png": "png", "webp": "webp"}[kind[10:]])
            path = os.path.join(folder, f"{i:05d}_{kind}.{kind[10:]}".encode())
            with open(path, "wb") as fh:
                fh.write(data[:int(len(data) * rng.uniform(0.2, 0.8))])
        elif kind == "random_bytes":
            with open(path, "wb") as fh:
                fh.write(rng.randbytes(rng.randint(1, 5000)))
        elif kind == "zero_length":
            open(path, "wb").close()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "dangling_link":
            os.symlink(b"no-such-file.jpg", path)
        elif kind == "self_link":
            os.symlink(os.path.basename(path), path)
        elif kind == "bomb":
            name = rng.choice(sorted(bombs))
            path = os.path.join(folder, f"{i:05d}_bomb_{name.replace('.', '_')}.{name[-3:]}".encode())
            with open(path, "wb") as fh:
                fh.write(bombs[name])
        elif kind.startswith("tiny_"):
            size = (1, 1) if kind == "tiny_1x1" else rng.choice([(60_000, 1), (1, 60_000)])
            fmt = "png" if size != (1, 1) else fmt  # WebP cannot be 60000 px wide
            path = os.path.join(folder, f"{i:05d}_{kind}.{fmt}".encode())
            with open(path, "wb") as fh:
                fh.write(image_bytes(rng, fmt, size))
        expected[path] = (kind, outcome)
    for name, target in links:
        os.symlink(target, os.path.join(root, name))
    # the walker's order: depth first, the entries of each folder sorted by (decoded) name
    order = sorted(expected, key=lambda p: os.fsdecode(os.path.relpath(p, os.fsencode(root))).split("/"))
    by_kind = {}
    for kind in kinds:
        by_kind[kind] = by_kind.get(kind, 0) + 1
    by_kind["folder_link_loop"] = len(links)
    return {"root": root, "entries": len(kinds) + len(links), "by_kind": by_kind,
            "hostile": len(kinds) + len(links) - by_kind.get("valid", 0),
            "readable_000": readable_000,
            "expected": [(os.fsdecode(p), *expected[p]) for p in order]}


# ---------------------------------------------------------------------------------------------
# parsing the formats


def _untsv(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), s)


def _record(path, p, label, error) -> tuple:
    return (path, None if p in (None, "") else float(p), label or None, error or None)


def _json_record(d: dict) -> tuple:
    """A json/jsonl record's fields; a name that is not UTF-8 comes back from its exact bytes
    (``path_bytes``), as a reader finds the file."""
    if "path_bytes" in d:
        d = {**d, "path": os.fsdecode(base64.b64decode(d["path_bytes"]))}
    return _record(*(d[k] for k in FIELDS))


def parse(data: bytes, fmt: str) -> list[tuple]:
    """Records (path, p_fake, label, error) from one output; ValueError says why it does not parse."""
    if fmt in ("jsonl", "json"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"invalid UTF-8: {exc}") from None
    else:
        text = data.decode("utf-8", "surrogateescape")  # file names are written as their bytes
    if text and not text.endswith("\n"):
        raise ValueError(f"the last line is incomplete: {text[-80:]!r}")
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a complete JSON document: {exc}; ends {text[-80:]!r}") from None
        if not isinstance(doc, list):
            raise ValueError("not a JSON array")
        return [_json_record(d) for d in doc]
    if fmt == "jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"line {n} is not JSON: {line[:80]!r}") from None
            out.append(_json_record(d))
        return out
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows or rows[0] != FIELDS:
            raise ValueError(f"no csv header: {text[:80]!r}")
        bad = [r for r in rows[1:] if len(r) != 4]
        if bad:
            raise ValueError(f"{len(bad)} csv rows without 4 fields, e.g. {bad[0]!r}")
        return [_record(*r) for r in rows[1:]]
    out = []
    for line in text[:-1].split("\n") if text else []:
        f = line.split("\t")
        if len(f) != 4:
            raise ValueError(f"a tsv line without 4 fields: {line[:80]!r}")
        out.append(_record(_untsv(f[0]), f[1], f[2], _untsv(f[3])))
    return out


# ---------------------------------------------------------------------------------------------
# runs


def fakedet(args, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fakedet", *args], stdout=stdout, stderr=subprocess.PIPE,
                            start_new_session=True)  # the terminal's Ctrl-C is not for it


def drain(stream, sink: list, stamps: list | None = None) -> threading.Thread:
    """Reads ``stream`` into ``sink``; ``stamps`` gets (time, lines so far) per chunk read."""
    def run():
        lines = 0
        for chunk in iter(lambda: stream.read1(65536), b""):
            lines += chunk.count(b"\n")
            if stamps is not None:
                stamps.append((time.perf_counter(), lines))
            sink.append(chunk)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def full_run(root, j, b, weights) -> dict:
    out, err, first = [], [], []
    t0 = time.perf_counter()
    p = fakedet(["scan", root, "-f", "jsonl", *(["-j", str(j), "-b", str(b)] if j is not None else []), *weights])
    threads = [drain(p.stdout, out, first), drain(p.stderr, err)]
    p.wait()
    for t in threads:
        t.join()
    res = {"j": j, "b": b, "seconds": round(time.perf_counter() - t0, 2), "exit": p.returncode,
           "first_record_s": round(first[0][0] - t0, 2) if first else None,
           "stderr": b"".join(err).decode(errors="replace")[-300:]}
    try:
        res["records"] = parse(b"".join(out), "jsonl")
    except ValueError as exc:
        res["records"], res["parse_error"] = [], str(exc)
    # records made in face mode carry a "faces" list (empty when none was found)
    res["face_mode_records"] = sum(b'"faces": [' in line for line in b"".join(out).splitlines())
    # the longest wait between two outputs after the first record, and the record that ended it
    gaps = [(b[0] - a[0], a[1]) for a, b in zip(first, first[1:])]
    gap, line = max(gaps, default=(0.0, 0))
    res["longest_wait_s"] = round(gap, 2)
    res["longest_wait_before"] = res["records"][line][0] if line < len(res["records"]) else None
    return res


def check_full(res: dict, expected: list) -> list[str]:
    """What is wrong with one full run against the expected records."""
    tag = f"full -j {res['j']} -b {res['b']}"
    problems = [f"{tag}: {res['parse_error']}"] if "parse_error" in res else []
    if res["exit"] != 3:
        problems.append(f"{tag}: exit status {res['exit']}, expected 3 (some unreadable): {res['stderr']}")
    got = [r[0] for r in res["records"]]
    want = [e[0] for e in expected]
    if got != want:
        missing, extra = set(want) - set(got), set(got) - set(want)
        dup = len(got) - len(set(got))
        problems.append(f"{tag}: {len(got)} records for {len(want)} inputs: {len(missing)} missing "
                        f"(e.g. {sorted(missing)[:2]!r}), {len(extra)} unexpected (e.g. {sorted(extra)[:2]!r}), "
                        f"{dup} duplicated" + (", order differs" if not (missing or extra or dup) else ""))
    want_outcome = {e[0]: e for e in expected}
    wrong = [(r[0], want_outcome[r[0]][1], r[3]) for r in res["records"] if r[0] in want_outcome
             and (r[3] is None) != (want_outcome[r[0]][2] == "ok")]
    if wrong:
        problems.append(f"{tag}: {len(wrong)} records ok/error not as expected, e.g. {wrong[:3]!r}")
    return problems


def names_check(expected: list, weights) -> tuple[dict, list[str]]:
    """tsv and csv runs on the files with non-UTF-8 names, given as bytes arguments: each record's
    path must be the file's bytes; the jsonl form is shown from the full run."""
    names = [os.fsencode(e[0]) for e in expected if e[1] == "non_utf8_name"]
    shown, problems = {}, []
    for fmt in ("tsv", "csv"):
        p = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-f", fmt, *weights, *names],
                           capture_output=True, timeout=300)
        try:
            got = [os.fsencode(r[0]) for r in parse(p.stdout, fmt)]
        except ValueError as exc:
            got = [f"unparsable: {exc}".encode()]
        if got != names:
            problems.append(f"non-UTF-8 names in {fmt}: the paths do not map back to the files' bytes")
        shown[fmt] = repr(p.stdout.splitlines()[1 if fmt == "csv" else 0]) if p.stdout else ""
    return shown, problems


def same_p(got, want, fmt, tol) -> bool:
    """p_fake as printed (6 decimals in every format) against the full run's (6 decimals)."""
    if got is None or want is None:
        return got is None and want is None
    return abs(got - want) <= tol + 1e-9


def signal_run(root, sig, fmt, to_file, moment, weights, ref: dict, ref_order: list, tmp, tol) -> dict:
    out_path = os.path.join(tmp, f"sig.{fmt}")
    if os.path.exists(out_path):
        os.remove(out_path)
    out, err = [], []
    t0 = time.perf_counter()
    p = fakedet(["scan", root, "-f", fmt, *(["-o", out_path] if to_file else []), *weights])
    threads = [drain(p.stdout, out), drain(p.stderr, err)]
    res = {"signal": sig.name, "format": fmt, "to": "file" if to_file else "pipe", "moment_s": round(moment, 2)}
    finished = False
    while time.perf_counter() - t0 < moment:
        if p.poll() is not None:
            finished = True
            break
        time.sleep(0.01)
    if not finished:
        os.kill(p.pid, sig)  # the process only, as kill(1) sends it
        ts = time.perf_counter()
        try:
            p.wait(timeout=60)
            res["exit_s"] = round(time.perf_counter() - ts, 3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            res["exit_s"] = None  # hung
    for t in threads:
        t.join()
    res["finished_first"] = finished
    res.setdefault("exit_s", None)
    res["exit"] = p.returncode
    stderr = b"".join(err).decode(errors="replace")
    res["traceback"] = "Traceback" in stderr
    data = b"".join(out)
    if to_file:
        if data:
            res["stdout_not_empty"] = True
        data = open(out_path, "rb").read() if os.path.exists(out_path) else None
    problems = []
    # a negative returncode: the signal's default action, before fakedet's handlers were
    # installed (or after they were removed, at exit)
    shell_status = 128 - p.returncode if p.returncode < 0 else p.returncode
    res["killed_by_default_action"] = p.returncode < 0
    if not finished and (res["exit_s"] is None or res["exit_s"] > MAX_EXIT_S):
        problems.append(f"signal to exit {res['exit_s']} s (hung if None), over {MAX_EXIT_S} s")
    records = []
    if data is None:
        res["output"] = "no file"
    elif not data and not to_file and fmt in ("json", "csv") and not res["killed_by_default_action"]:
        res["output"] = "empty"
        problems.append(f"parse: empty stdout, not a {fmt} document")
        res["parse_failed"] = True
    else:
        try:
            records = parse(data, fmt)
            res["output"] = "ok"
        except ValueError as exc:
            res["output"], res["parse_failed"] = "unparsable", True
            problems.append(f"parse: {exc}")
    res["records"] = len(records)
    mismatched = {"path_or_order": [], "label_or_error": [], "p_fake": []}
    for i, r in enumerate(records):
        want = ref.get(r[0])
        if want is None or i >= len(ref_order) or ref_order[i] != r[0]:
            mismatched["path_or_order"].append((i, r))
        elif r[2:] != want[2:]:
            mismatched["label_or_error"].append((r, want))
        elif not same_p(r[1], want[1], fmt, tol):
            mismatched["p_fake"].append((r, want))
    res["mismatches"] = {k: len(v) for k, v in mismatched.items()}
    for k, v in mismatched.items():
        if v:
            problems.append(f"{len(v)} records differ from the full run ({k}), e.g. {v[0]!r}")
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    m = re.search(word + r"(?: after (\d+) records?)?", stderr)
    # The signal came after the scan had written every record and its ordinary summary (a short
    # folder's scan ends soon after its first record): nothing was left to stop, so finishing
    # (exit 3) is as right as stopping (128+N). The records are still checked above.
    late = (not finished and m is None and len(records) == len(ref_order)
            and not any(mismatched.values()))
    res["signal_after_end"] = late
    want_exits = {3} if finished else {3, 128 + sig} if late else {128 + sig}
    if shell_status not in want_exits:
        problems.append(f"exit status {p.returncode}, expected {' or '.join(map(str, sorted(want_exits)))}")
    if not finished and not late and not res["killed_by_default_action"] and \
            (not m or int(m.group(1) or 0) != len(records)):
        problems.append(f"stderr says {m.group(0) if m else 'nothing'!r} for {len(records)} records written")
    res["stderr_tail"] = stderr[-200:]
    res["problems"] = problems
    return res


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--files", type=int, default=5000, help="entries in the folder (default 5000)")
    ap.add_argument("--hostile", type=float, default=0.12, help="share of hostile entries (default 0.12)")
    ap.add_argument("--seed", type=int, default=0, help="makes the folder and the signal moments (default 0)")
    ap.add_argument("--dir", help="build the folder here (must be empty or missing; kept) [default: a temp dir]")
    ap.add_argument("--quick", action="store_true", help=f"full runs with -j/-b {QUICK_COMBOS} only")
    ap.add_argument("--signal-runs", type=int, default=24, help="signal runs (default 24)")
    ap.add_argument("--p-tolerance", type=float, default=0.0,
                    help="accept p_fake differences up to this, across runs (default 0: as printed)")
    ap.add_argument("-w", "--weights", help="checkpoint passed to fakedet (default: the shipped weights)")
    ap.add_argument("--faces", action="store_true",
                    help="every scan in face mode (--faces): the face finder meets the hostile files too")
    ap.add_argument("--json-out", default="faults.json", help="results file (default faults.json)")
    args = ap.parse_args()
    # the options every fakedet run of the benchmark gets
    weights = (["-w", args.weights] if args.weights else []) + (["--faces"] if args.faces else [])
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # started in the background by a non-interactive shell (`cmd &`, nohup): SIGINT is ignored
        # and fakedet, started from here, would inherit that and rightly keep ignoring it
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("note: SIGINT was ignored by whatever started this script; restored for fakedet's runs")

    tmp = tempfile.mkdtemp(prefix="fakedet-faults-")
    root = os.path.abspath(args.dir) if args.dir else os.path.join(tmp, "folder")
    try:
        return run(args, root, tmp, weights)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, root, tmp, weights) -> int:
    t_start = time.perf_counter()
    folder = build(root, args.files, args.hostile, args.seed)
    expected = folder["expected"]
    print(f"folder {root}: {folder['entries']} entries, {folder['hostile']} hostile "
          f"({100 * folder['hostile'] / folder['entries']:.1f} %), {len(expected)} records expected")
    print("  by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(folder["by_kind"].items())))
    if folder["readable_000"]:
        print("  NOTE: running as root: chmod 000 files are still readable, so they are expected to be "
              "scored, not refused; the unreadable-file case is not exercised")
    failures = []

    full = []
    for j, b in [*(QUICK_COMBOS if args.quick else COMBOS), (None, None)]:  # last: the defaults
        res = full_run(root, j, b, weights)
        problems = check_full(res, expected)
        failures += problems
        full.append(res)
        print(f"full run -j {j} -b {b}{' (defaults)' if j is None else ''}: {len(res['records'])} records, "
              f"exit {res['exit']}, "
              f"{res['seconds']} s, first record at {res['first_record_s']} s, longest wait "
              f"{res['longest_wait_s']} s, "
              f"{'ok' if not problems else 'FAILED: ' + '; '.join(problems)}")
    ref_records = full[0]["records"]
    identity = []
    for r in full[1:]:
        pairs = list(zip(r["records"], ref_records))
        other = sum(x[0] != y[0] or x[2:] != y[2:] for x, y in pairs) + abs(len(r["records"]) - len(ref_records))
        p_diff = [(x, y) for x, y in pairs
                  if x[0] == y[0] and x[2:] == y[2:] and not same_p(x[1], y[1], "jsonl", args.p_tolerance)]
        max_dp = max((abs(x[1] - y[1]) for x, y in p_diff), default=0.0)
        identity.append({"j": r["j"], "b": r["b"], "path_label_error_differ": other, "p_fake_differ": len(p_diff),
                         "max_p_diff": max_dp, "example": p_diff[0] if p_diff else None})
        if other or p_diff:
            failures.append(f"full run -j {r['j']} -b {r['b']} differs from -j {full[0]['j']} -b {full[0]['b']}: "
                            f"{other} records in path/label/error, {len(p_diff)} in p_fake (max {max_dp:.1e}, "
                            f"e.g. {p_diff[0] if p_diff else None!r})")
    identical = not any(d["path_label_error_differ"] or d["p_fake_differ"] for d in identity)
    print(f"records identical across the {len(full)} full runs: {identical}" + "".join(
        f"\n  -j {d['j']} -b {d['b']}: {d['path_label_error_differ']} differ in path/label/error, "
        f"{d['p_fake_differ']} in p_fake (max {d['max_p_diff']:.1e})" for d in identity))
    ref = {r[0]: r for r in full[-1]["records"]}  # the signal runs use the default -j/-b
    ref_order = [r[0] for r in full[-1]["records"]]

    shown, problems = names_check(expected, weights)
    failures += problems
    jsonl_line = next((json.dumps(utf8_text(r[0]))[:60] for r in ref_records
                       if any(0xDC80 <= ord(c) <= 0xDCFF for c in r[0])), "")
    shown["jsonl"] = jsonl_line
    print(f"non-UTF-8 names: jsonl path {shown['jsonl']} (\\xHH text for byte XX, the bytes in path_bytes); "
          f"tsv {shown['tsv'][:70]}; map back to the files: {not problems}")

    # signal runs: moments in start-up (before the first record) or in the scan's first 20 s
    srng = random.Random(args.seed + 1)
    t_first, t_full = full[-1]["first_record_s"] or 1.0, full[-1]["seconds"]
    combos = [(s, f, d) for d in (False, True) for f in FORMATS for s in (signal.SIGINT, signal.SIGTERM)]
    runs = []
    for i in range(args.signal_runs):
        sig, fmt, to_file = combos[i % len(combos)]
        phase = "start-up" if i % 3 == 0 else "scanning"
        moment = srng.uniform(0, t_first) if phase == "start-up" else \
            t_first + srng.uniform(0, max(0.1, min(20.0, t_full - t_first)))
        res = signal_run(root, sig, fmt, to_file, moment, weights, ref, ref_order, tmp, args.p_tolerance)
        res["phase"] = phase
        runs.append(res)
        failures += [f"signal run {i} ({sig.name}, {fmt}, {res['to']}, at {moment:.2f} s): {p}"
                     for p in res["problems"]]
        print(f"signal {i:2d} {sig.name:7s} {fmt:5s} {res['to']:4s} {phase:8s} at {moment:5.2f} s: "
              f"exit {res['exit']}{' (finished first)' if res['finished_first'] else ''}"
              f"{' (signal after the last record)' if res['signal_after_end'] else ''}, "
              f"{res['exit_s']} s to exit, {res['records']} records, output {res['output']}"
              f"{', traceback on stderr' if res['traceback'] else ''}"
              f"{'; ' + '; '.join(res['problems']) if res['problems'] else ''}")

    stopped = [r for r in runs if not r["finished_first"]]
    times = [r["exit_s"] for r in stopped if r["exit_s"] is not None]
    summary = {
        "files": folder["entries"], "hostile": folder["hostile"], "faces": bool(args.faces),
        "face_mode_records": [r["face_mode_records"] for r in full],
        "hostile_share": round(folder["hostile"] / folder["entries"], 4), "by_kind": folder["by_kind"],
        "records_expected": len(expected), "chmod_000_readable_as_root": folder["readable_000"],
        "full_runs": len(full), "full_runs_identical": identical, "full_runs_max_p_diff": max_dp,
        "signal_runs": len(runs), "signal_runs_stopped": len(stopped),
        "signal_runs_finished_first": len(runs) - len(stopped),
        "signal_runs_after_end": sum(r["signal_after_end"] for r in runs),
        "signal_runs_in_start_up": sum(r["phase"] == "start-up" for r in runs),
        "signal_runs_with_records": sum(r["records"] > 0 for r in stopped),
        "killed_by_default_action": sum(r["killed_by_default_action"] for r in runs),
        "hangs": sum(r["exit_s"] is None for r in stopped),
        "max_exit_s": max(times, default=None), "median_exit_s": statistics.median(times) if times else None,
        "exit_status_wrong": sum(any(p.startswith("exit status") for p in r["problems"]) for r in runs),
        "parse_failures": sum(bool(r.get("parse_failed")) for r in runs),
        "record_mismatches": sum(sum(r["mismatches"].values()) for r in runs),
        "record_mismatches_by_field": {k: sum(r["mismatches"][k] for r in runs) for k in runs[0]["mismatches"]}
        if runs else {},
        "full_runs_p_fake_differ": sum(d["p_fake_differ"] for d in identity),
        "full_runs_path_label_error_differ": sum(d["path_label_error_differ"] for d in identity),
        "tracebacks": sum(r["traceback"] for r in runs),
        "failures": len(failures), "seconds": round(time.perf_counter() - t_start, 1),
    }
    print("\n| check | result |\n|---|---|")
    for key in ("files", "hostile_share", "records_expected", "full_runs", "full_runs_identical",
                "full_runs_p_fake_differ", "full_runs_path_label_error_differ", "signal_runs",
                "signal_runs_stopped", "signal_runs_in_start_up", "signal_runs_with_records",
                "signal_runs_finished_first", "signal_runs_after_end", "killed_by_default_action", "hangs",
                "max_exit_s", "median_exit_s", "exit_status_wrong",
                "parse_failures", "record_mismatches",
                "record_mismatches_by_field", "tracebacks", "failures", "seconds"):
        print(f"| {key} | {summary[key]} |")
    for f in failures:
        print("FAILED:", f)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True,
                           cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    for r in full:
        r["records"] = len(r["records"])
    with open(args.json_out, "w") as fh:
        json.dump({"summary": summary, "failures": failures,
                   "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                               "python": platform.python_version(),
                               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
                   "commit": commit, "src_uncommitted_changes": bool(dirty),
                   "args": vars(args), "full_runs": full, "identity": identity, "non_utf8_names": shown,
                   "signal_runs": runs},
                  fh, indent=1, default=str)
    print(f"wrote {args.json_out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
