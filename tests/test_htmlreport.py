"""The HTML report (``scan --report``, ``eval --report``): built from synthetic records and from
real scans with the tiny model, checked as text, then loaded in a real headless Chromium.

The browser tests run Chromium with its own ``--dump-dom`` and ``--screenshot`` flags and read
the page's state from the DOM: the report's script records uncaught errors, failed loads,
``console.error``/``console.warn`` calls and requests its Content-Security-Policy blocked in
``<html data-errors>``, sets ``data-ready`` once drawn, and takes its view (sort, verdicts shown,
page) from the URL's fragment; ``#click=ID,...`` clicks the page's own controls. Chromium runs
with a proxy on a dead local port and every host name unresolvable, so no test needs, or could
use, a network. Without a Chromium binary (``apt-get install chromium``) those tests are skipped.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakedet.cli import cli
from fakedet.cli.htmlreport import HtmlReport, outcome, script_json
from fakedet.inference.result import Result, label_for

from conftest import write_image


def _find_chromium():
    env = os.environ.get("FAKEDET_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _find_chromium()
browser = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary found (chromium, chromium-browser "
                             "or google-chrome on PATH, or $FAKEDET_CHROMIUM): apt-get install chromium")

THRESHOLD, REAL_BELOW = 0.8, 0.3
FACE_THRESHOLD, FACE_REAL_BELOW = 0.9, 0.4


class _Det:
    """What HtmlReport and the scan's summary read of a Detector."""

    def __init__(self, faces=True):
        self.cutoffs = (THRESHOLD, REAL_BELOW)
        self.face_cutoffs = (FACE_THRESHOLD, FACE_REAL_BELOW)
        self.faces = faces
        self.device = "cpu"
        self.weights_path = "tiny.safetensors"
        self.threshold, self.real_below = self.cutoffs
        self.three_way = True
        self.expert = self.whole_gate = None  # (the summary's face-mode line reads them)


def _jpeg(seed: int, size=(48, 32)) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "JPEG", quality=70)
    return buf.getvalue()


def synthetic(n: int, seed: int = 0, thumbs=None) -> list[Result]:
    """``n`` records: every 7th an error, the others with a face, a whole-image score, a
    thumbnail of a 480x320 image, and every 5th with provenance evidence."""
    rng = np.random.default_rng(seed)
    thumbs = thumbs or [_jpeg(k) for k in range(8)]
    out = []
    for i in range(n):
        path = f"photos/{i:05d}.jpg"
        if i % 7 == 3:
            out.append(Result(path, None, None, "not an image (unrecognised format)", face_mode=True,
                              evidence=[]))
            continue
        p = float(rng.random())
        ev = [{"kind": "xmp", "says": "generated", "detail": "Software: <Firefly>"}] if i % 5 == 0 else []
        out.append(Result(path, p, label_for(p, FACE_THRESHOLD, FACE_REAL_BELOW), face_mode=True,
                          faces=[{"box": [100, 40, 220, 200], "p_fake": p}], p_whole=p / 2, evidence=ev,
                          label_by="model", thumbnail={"jpeg": thumbs[i % len(thumbs)], "width": 480,
                                                       "height": 320}))
    return out


def write_report(path: Path, results, batch=32, kind="scan", truth=None, summary="done", close=True,
                 faces=True) -> Path:
    rep = HtmlReport(str(path), kind, _Det(faces))
    for k in range(0, len(results), batch):
        rep.add(results[k:k + batch], truth=None if truth is None else truth[k:k + batch])
    if close:
        rep.close(summary)
    return path


# -- the page in Chromium ------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio",
                  # no network: every request would go to a dead proxy, every name is unresolvable
                  "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium(tmp_path: Path, page: Path, *args: str, fragment: str = "", timeout: float = 180):
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri() + fragment]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    proc.seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return proc


class Page:
    """What --dump-dom shows of a report: the <html> attributes and the table's rows."""

    def __init__(self, dom: str, seconds: float = 0.0):
        self.dom, self.seconds = dom, seconds
        self.root, self.rows, self.boxes, self.images, self.by_id = {}, [], 0, 0, {}
        page = self

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "html":
                    page.root = a
                elif tag == "tr" and "row" in (a.get("class") or "").split():
                    page.rows.append(a)
                elif tag == "div" and "box" in (a.get("class") or "").split():
                    page.boxes += 1
                elif tag == "img" and (a.get("src") or "").startswith("data:image/jpeg;base64,"):
                    page.images += 1
                if "id" in a:
                    page.by_id[a["id"]] = a

        Parser().feed(dom)

    @property
    def errors(self) -> list:
        return json.loads(self.root.get("data-errors", "[]"))

    @property
    def ids(self) -> list[int]:
        return [int(r["data-i"]) for r in self.rows]

    @property
    def verdicts(self) -> list[str]:
        return [r["data-verdict"] for r in self.rows]

    @property
    def scores(self) -> list:
        return [float(r["data-p"]) if r["data-p"] else None for r in self.rows]


def open_page(tmp_path: Path, page: Path, fragment: str = "") -> Page:
    proc = chromium(tmp_path, page, "--dump-dom", fragment=fragment)
    out = Page(proc.stdout.decode("utf-8"), proc.seconds)
    assert out.root.get("data-ready") == "1", "the report's script did not finish"
    assert out.errors == [], out.errors  # no uncaught error, console error or blocked request
    return out


def screenshot(tmp_path: Path, page: Path, fragment: str = "") -> Image.Image:
    png = tmp_path / "shot.png"
    chromium(tmp_path, page, f"--screenshot={png}", "--window-size=1280,1000", "--hide-scrollbars",
             fragment=fragment)
    return Image.open(png).convert("RGB")


# -- the file as text -----------------------------------------------------------------------

EXTERNAL = re.compile(r"""(?:\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//)|"""
                      r"""(?:url\(\s*["']?\s*(?:https?:)?//)|@import|<link\b|<iframe\b|<object\b|<embed\b""",
                      re.IGNORECASE)


def batches(text: str) -> list:
    found = re.findall(r'<script type="application/json" class="fakedet-batch">(.*?)</script>', text, re.S)
    return [json.loads(b) for b in found]


def test_script_json_writes_no_lone_surrogate():
    text = script_json({"path": "a\udcff.png", "set": "s\udcfe", "detail": "x\ud800"})
    json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")  # no unpaired surrogate anywhere
    assert json.loads(text) == {"path": "a\\xff.png", "set": "s\\xfe", "detail": "x\\ud800"}


def test_script_json_cannot_close_its_element():
    text = script_json({"path": "a</script><script>alert(1)</script><!--x", "p": float("nan")})
    assert "<" not in text and ">" not in text
    assert json.loads(text) == {"path": "a</script><script>alert(1)</script><!--x", "p": None}


def test_file_is_self_contained_and_holds_every_record(tmp_path):
    results = synthetic(70)
    results[1].path = 'evil</script><script>alert("x")</script><img src="https://example.com/x.png">'
    text = write_report(tmp_path / "r.html", results).read_text("utf-8")
    assert EXTERNAL.search(text) is None, EXTERNAL.search(text)
    assert "default-src 'none'" in text  # the page may not fetch anything, whatever it holds
    rows = [r for b in batches(text) for r in b]
    assert [r["path"] for r in rows] == [r.path for r in results]
    assert [r["i"] for r in rows] == list(range(70))
    assert sum(r["error"] is not None for r in rows) == sum(r.error is not None for r in results)
    # one thumbnail element per scored image, the JPEG itself
    thumbs = dict(re.findall(r'<script type="text/plain" id="fdt-t(\d+)">([^<]*)</script>', text))
    assert set(map(int, thumbs)) == {i for i, r in enumerate(results) if r.error is None}
    assert base64.b64decode(thumbs["0"]) == results[0].thumbnail["jpeg"]
    assert text.rstrip().endswith("</html>") and '"complete":true' in text
    # what each verdict means, on every report (it is the page that gets shared)
    assert "<b>real</b>: no evidence found, which is not proof that the image is genuine" in text


def test_nothing_is_written_without_a_batch(tmp_path):
    path = tmp_path / "r.html"
    path.write_text("keep me")
    rep = HtmlReport(str(path), "scan", _Det())
    rep.add([])
    rep.close("nothing")
    assert path.read_text() == "keep me"


def test_outcomes():
    assert outcome(0, "fake", None) == "fp" and outcome(1, "real", None) == "fn"
    assert outcome(1, "fake", None) == "tp" and outcome(0, "real", None) == "tn"
    assert outcome(1, "uncertain", None) == "unc" and outcome(0, None, "broken") == "error"


# -- in Chromium ----------------------------------------------------------------------------

@browser
@pytest.mark.slow
def test_page_shows_one_row_per_record_sorts_and_filters(tmp_path):
    results = synthetic(90)
    page_file = write_report(tmp_path / "r.html", results)
    page = open_page(tmp_path, page_file)
    assert page.ids == list(range(90))  # input order, error rows included
    assert page.verdicts.count("error") == sum(r.error is not None for r in results)
    scored = [r for r in results if r.error is None]
    assert page.images == len(scored) and page.boxes == len(scored)  # thumbnails with their face
    assert page.by_id["count-total"] and "Firefly" in page.dom and "unrecognised format" in page.dom
    assert page.dom.count("&lt;Firefly&gt;") > 0  # text from the records is text, never markup

    by_p = sorted((r.p_fake, i) for i, r in enumerate(results) if r.error is None)
    errors = [i for i, r in enumerate(results) if r.error is not None]
    # the p_fake column's header: highest first, a second click lowest first (errors last)
    desc = open_page(tmp_path, page_file, "#click=th-p")
    assert desc.ids == [i for _, i in reversed(by_p)] + errors
    asc = open_page(tmp_path, page_file, "#click=th-p,th-p")
    assert asc.ids == [i for _, i in by_p] + errors
    s = [p for p in asc.scores if p is not None]
    assert s == sorted(s)
    assert open_page(tmp_path, page_file, "#sort=p_desc").ids == desc.ids  # the view in the URL
    # a fragment that is not valid percent-encoding (a link cut short, say) is ignored, not fatal
    assert open_page(tmp_path, page_file, "#sort=%zz").ids == list(range(90))

    # filtering: unticking "real" and "errors" leaves the others, in order
    kept = open_page(tmp_path, page_file, "#click=show-real,show-error")
    want = [i for i, r in enumerate(results) if r.label in ("fake", "uncertain")]
    assert kept.ids == want and set(kept.verdicts) == {"fake", "uncertain"}
    only_fake = open_page(tmp_path, page_file, "#show=fake&sort=p_asc")
    assert only_fake.ids == [i for p, i in by_p if p >= FACE_THRESHOLD]
    assert only_fake.by_id["shown"]["data-n"] == str(len(only_fake.ids))


@browser
@pytest.mark.slow
def test_screenshot_is_not_blank(tmp_path):
    img = screenshot(tmp_path, write_report(tmp_path / "r.html", synthetic(40)))
    arr = np.asarray(img, dtype=np.float64)
    assert arr.var() > 0
    assert (arr.reshape(-1, 3).std(axis=0) > 5).all()  # text, bars and thumbnails, not one colour


@browser
def test_an_eval_report_says_which_verdicts_came_from_provenance(tmp_path):
    """The count cards count verdicts as given (evidence can label an image fake); the figures
    and the outcomes use the model's own: the page says so when the two differ."""
    results = synthetic(12)
    truth = [0] * 12
    ok = [r for r in results if r.error is None and r.label != "fake"]
    for r in ok[:2]:
        r.label, r.label_by = "fake", "evidence"  # model_label stays the model's
    def warning(page):
        m = re.search(r'<div[^>]*id="warn"[^>]*>([^<]*)</div>', page.dom)
        return m.group(1) if m else ""

    page = open_page(tmp_path, write_report(tmp_path / "e.html", results, kind="eval", truth=truth))
    assert "2 verdicts came from provenance evidence, not the model" in warning(page)
    plain = open_page(tmp_path, write_report(tmp_path / "s.html", results))  # a scan: no figures to differ from
    assert "provenance" not in warning(plain)


@browser
def test_the_page_writes_thresholds_as_the_command_line_does(tmp_path):
    """A threshold below 0.001 in the page's rule line reads as fakedet's own messages write it
    (threshold_text: ``1.13e-06``, ``0.000123``), not as JavaScript would (``0.00000113``)."""
    from fakedet.evaluation.verdicts import threshold_text

    path = tmp_path / "t.html"
    det = _Det(faces=True)
    det.cutoffs = (0.998230, 1.1323192945477648e-06)
    det.threshold, det.real_below = det.cutoffs
    det.face_cutoffs = (0.998230, 0.00012345)
    rep = HtmlReport(str(path), "scan", det)
    rep.add(synthetic(3))
    rep.close("done")
    page = open_page(tmp_path, path)
    meta = re.search(r'<[^>]*id="meta"[^>]*>([^<]*)<', page.dom).group(1)
    assert "real below 1.13e-06, uncertain" in meta and "real below 0.000123 (" in meta, meta
    det.cutoffs = det.face_cutoffs = (0.5, 0.5)  # -t 0.5: one threshold, said once for each mode
    det.threshold, det.real_below = det.cutoffs
    rep = HtmlReport(str(tmp_path / "t2.html"), "scan", det)
    rep.add(synthetic(3))
    rep.close("done")
    meta = re.search(r'<[^>]*id="meta"[^>]*>([^<]*)<', open_page(tmp_path, tmp_path / "t2.html").dom).group(1)
    assert "fake at p_fake \u2265 0.500000; images with a face: fake at \u2265 0.500000 (" in meta, meta
    assert threshold_text(1.1323192945477648e-06) == "1.13e-06" and threshold_text(0.00012345) == "0.000123"


@browser
def test_threshold_labels_stay_legible_over_the_bars(tmp_path):
    """The labels of the thresholds near 1.0 are drawn over the tallest bar there: each has a
    white halo (an outline painted under its letters)."""
    results = synthetic(40)
    for r in results:
        r.p_fake = 0.9995
    page = open_page(tmp_path, write_report(tmp_path / "r.html", results))
    labels = re.findall(r'<text[^>]*class="tlabel"[^>]*>([^<]*)</text>', page.dom)
    assert len(labels) == 4 and labels[0].startswith("fake ")
    assert re.search(r"\.hist text\.tlabel\{paint-order:stroke;stroke:#fff", page.dom)


@browser
@pytest.mark.slow
def test_the_checks_see_errors_and_requests(tmp_path):
    """The hooks the other tests rely on: an uncaught error, and a request to a server (which
    the page's policy blocks), both show in data-errors."""
    text = write_report(tmp_path / "r.html", synthetic(5)).read_text("utf-8")
    bad = tmp_path / "bad.html"
    bad.write_text(text.replace("</body>", '<img src="https://example.com/x.png">'
                                '<script>null.boom();</script></body>'), "utf-8")
    proc = chromium(tmp_path, bad, "--dump-dom")
    errors = " ".join(Page(proc.stdout.decode()).errors)
    assert "example.com" in errors and "null" in errors


@browser
@pytest.mark.slow
def test_truncated_report_still_shows_the_earlier_rows(tmp_path):
    results = synthetic(100)
    text = write_report(tmp_path / "r.html", results, batch=32).read_text("utf-8")
    # cut in the middle of the third batch's records
    starts = [m.start() for m in re.finditer('<script type="application/json" class="fakedet-batch">', text)]
    cut = tmp_path / "cut.html"
    cut.write_text(text[:starts[2] + 500], "utf-8")
    page = open_page(tmp_path, cut)
    assert page.ids == list(range(64))
    assert "incomplete" in page.dom and "cut short" in page.dom
    # and cut inside a thumbnail of the third batch
    mid = text.index('id="fdt-t70"') + 100
    cut.write_text(text[:mid], "utf-8")
    assert open_page(tmp_path, cut).ids == list(range(64))


@browser
@pytest.mark.slow
def test_a_name_that_would_show_as_another_is_shown_escaped(tmp_path):
    """A right-to-left override in a name (``x\u202egpj.exe`` looks like ``xexe.jpg``) is shown as
    ``\\u202e``, as the scan's summary writes it; other letters as they are."""
    results = [Result("a/x\u202egpj.exe", 0.5, "uncertain"),
               Result("b/na\u00efve \u05e9\u05dc\u05d5\u05dd.jpg", 0.5, "uncertain")]
    page = open_page(tmp_path, write_report(tmp_path / "r.html", results))
    shown = re.findall(r'<div class="path">([^<]*)</div>', page.dom)
    assert shown == ["a/x\\u202egpj.exe", "b/na\u00efve \u05e9\u05dc\u05d5\u05dd.jpg"], shown
    results = [Result("soft\u00adhyphen.jpg", 0.0009996, "uncertain"), Result("b.jpg", 1.05e-6, "real")]
    page = open_page(tmp_path, write_report(tmp_path / "s.html", results))
    assert re.findall(r'<div class="path">([^<]*)</div>', page.dom) == ["soft\\xadhyphen.jpg", "b.jpg"]  # as tsv
    assert ">0.0009996<" in page.dom and ">1.05e-06<" in page.dom  # scores as the records print them
    # a tab, a newline or another control character as tsv writes it (an editor could not find
    # the terminal's 'photo\twith tab.jpg' in a report that showed the tab as a space)
    results = [Result("photo\twith tab.jpg", 0.5, "uncertain"), Result("two\nlines\x07.jpg", 0.5, "uncertain"),
               Result("c:\\photos\\a.jpg", 0.5, "uncertain")]
    page = open_page(tmp_path, write_report(tmp_path / "t.html", results))
    assert re.findall(r'<div class="path">([^<]*)</div>', page.dom) == [
        "photo\\twith tab.jpg", "two\\nlines\\x07.jpg", "c:\\photos\\a.jpg"]


@browser
@pytest.mark.slow
def test_pages(tmp_path):
    page_file = write_report(tmp_path / "r.html", synthetic(450))
    assert open_page(tmp_path, page_file).ids == list(range(200))
    assert open_page(tmp_path, page_file, "#click=next").ids == list(range(200, 400))
    assert open_page(tmp_path, page_file, "#page=3").ids == list(range(400, 450))
    assert open_page(tmp_path, page_file, "#page=3&click=prev2").ids == list(range(200, 400))


@browser
@pytest.mark.slow
def test_twenty_thousand_records(tmp_path, capsys):
    n = 20000
    t0 = time.perf_counter()
    page_file = write_report(tmp_path / "big.html", synthetic(n, thumbs=[_jpeg(k) for k in range(50)]))
    written = time.perf_counter() - t0
    size = page_file.stat().st_size
    assert size < 50 * 2 ** 20  # about 2 kB per record with a 48x32 thumbnail of noise
    t0 = time.perf_counter()
    img = screenshot(tmp_path, page_file)
    shot = time.perf_counter() - t0
    assert np.asarray(img, dtype=np.float64).var() > 0
    # (--dump-dom serialises all 20,000 thumbnails too: slower than the page itself)
    page = open_page(tmp_path, page_file)
    assert len(page.rows) == 200 and page.ids == list(range(200))  # the first page
    assert page.by_id["shown"]["data-n"] == str(n)
    with capsys.disabled():
        print(f"\n20,000 records: {size / 2 ** 20:.1f} MiB written in {written:.1f} s; the page parsed and "
              f"its first page drawn {page.root.get('data-render-ms')} ms after its script started; "
              f"Chromium from start to screenshot {shot:.1f} s (to the dumped DOM {page.seconds:.1f} s)")
    assert shot < 120  # generous: shared CI machines


# -- from the commands ------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    for k in range(5):
        write_image(tmp_path / "in" / f"{k}.jpg", seed=k, size=(300, 200))
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return tmp_path / "in"


def scan(runner, tiny_weights, *args):
    return runner.invoke(cli, ["scan", "--weights", str(tiny_weights), "--workers", "0", *args])


def test_scan_report_leaves_records_and_summary_unchanged(runner, tiny_weights, folder, tmp_path):
    plain = scan(runner, tiny_weights, "-f", "jsonl", str(folder))
    report = tmp_path / "report.html"
    r = scan(runner, tiny_weights, "-f", "jsonl", "--report", str(report), str(folder))
    assert r.exit_code == plain.exit_code == 3, r.stderr
    assert r.stdout == plain.stdout  # stdout carries only the records, the same ones
    strip = lambda s: re.sub(r"\(.*\)", "", s)  # noqa: E731 (timings differ)
    assert strip(r.stderr) == strip(plain.stderr)
    text = report.read_text("utf-8")
    rows = [x for b in batches(text) for x in b]
    records = [json.loads(line) for line in plain.stdout.splitlines()]
    assert [x["path"] for x in rows] == [x["path"] for x in records]
    assert [x["p_fake"] for x in rows] == [x["p_fake"] for x in records]
    assert [(x.get("tw"), x.get("th")) for x in rows] == [(300, 200)] * 5 + [(None, None)]
    assert text.count('<script type="text/plain" id="fdt-t') == 5
    # which files, and which weights, exactly: their SHA-256 (for a record that must stand up later)
    import hashlib

    from fakedet.model.checkpoint import sha256

    assert [x.get("sha256") for x in rows[:5]] == [hashlib.sha256(Path(x["path"]).read_bytes()).hexdigest()
                                                   for x in rows[:5]]
    meta = json.loads(re.search(r'id="fakedet-meta">([^<]*)<', text).group(1))
    assert meta["weights_sha256"] == sha256(tiny_weights)
    for jpeg in re.findall(r'id="fdt-t\d+">([^<]*)<', text):
        assert max(Image.open(io.BytesIO(base64.b64decode(jpeg))).size) <= 256
    assert "6 images: " in text and '"complete":true' in text
    if CHROMIUM:
        page = open_page(tmp_path, report)
        assert len(page.rows) == 6 and page.images == 5 and page.verdicts[-1] == "error"


def test_scan_report_faces(runner, tiny_weights, folder, tmp_path):
    report = tmp_path / "report.html"
    r = scan(runner, tiny_weights, "--faces", "--report", str(report), str(folder / "0.jpg"))
    assert r.exit_code == 0, r.stderr
    row = batches(report.read_text("utf-8"))[0][0]
    assert row["faces"] == [] and row["p_whole"] is not None and row["note"]  # no face in noise


def test_the_report_keeps_the_digits_that_place_a_small_score(tmp_path):
    """The page's records hold scores as the scan's records print them: 1.05e-06 (real) and
    1.2e-06 (uncertain) are told apart, not both 1e-06 (review)."""
    results = [Result("a.jpg", 1.05e-6, "real"), Result("b.jpg", 1.2e-6, "uncertain"), Result("c.jpg", 4e-7, "real")]
    rows = [x for b in batches(write_report(tmp_path / "r.html", results).read_text("utf-8")) for x in b]
    assert [x["p_fake"] for x in rows] == [1.05e-06, 1.2e-06, 4e-07]


def test_the_report_names_the_face_expert_by_its_sha256(tmp_path):
    """Which face expert scored the faces, exactly: the report's meta holds its file's SHA-256
    as it holds the weights' (persona, a helpline's worker: only 'face_expert: true' before)."""
    import hashlib

    expert = tmp_path / "expert.safetensors"
    expert.write_bytes(b"an expert's bytes")
    det = _Det(faces=True)
    det.expert = (None, None, str(expert))
    rep = HtmlReport(str(tmp_path / "e.html"), "scan", det)
    assert rep.meta["face_expert"] and rep.meta["face_expert_sha256"] == hashlib.sha256(expert.read_bytes()).hexdigest()
    assert HtmlReport(str(tmp_path / "n.html"), "scan", _Det(faces=True)).meta["face_expert_sha256"] == ""
    rep.add(synthetic(2))
    rep.close("done")
    assert hashlib.sha256(expert.read_bytes()).hexdigest() in (tmp_path / "e.html").read_text("utf-8")


def test_scan_report_refuses_inputs_and_the_output(runner, tiny_weights, folder, tmp_path):
    image = folder / "0.jpg"
    before = image.read_bytes()
    r = scan(runner, tiny_weights, "--report", str(image), str(image))
    assert r.exit_code == 2 and "also an input" in r.stderr and image.read_bytes() == before
    out = tmp_path / "out.tsv"
    r = scan(runner, tiny_weights, "-o", str(out), "--report", str(out), str(image))
    assert r.exit_code == 2 and "same file" in r.stderr and not out.exists()
    r = scan(runner, tiny_weights, "--report", str(tmp_path / "nope" / "r.html"), str(image))
    assert r.exit_code == 2 and "No such file" in r.stderr


def test_report_dash_is_a_usage_error_not_a_file_named_dash(runner, tiny_weights, folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = scan(runner, tiny_weights, "--report", "-", str(folder / "0.jpg"))
    assert r.exit_code == 2 and "needs a file name" in r.stderr and not (tmp_path / "-").exists()
    manifest = tmp_path / "manifest.csv"
    write_image(tmp_path / "a.jpg")
    manifest.write_text("file,label\na.jpg,0\n")
    r = runner.invoke(cli, ["eval", "--weights", str(tiny_weights), "--report", "-", str(manifest)])
    assert r.exit_code == 2 and "needs a file name" in r.stderr and not (tmp_path / "-").exists()


@pytest.mark.skipif(os.name != "posix", reason="names stdout's file by a second name")
def test_a_report_on_stdouts_own_file_is_refused(tiny_weights, folder, tmp_path):
    """``--report /dev/stdout``, or the file stdout is redirected to: the records (or eval's table)
    and the page wrote over each other, exit 0 (the first records were lost)."""
    import sys

    out = tmp_path / "out.tsv"
    for report in ("/dev/stdout", str(out)):
        with open(out, "w") as fh:
            p = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), "--report", report,
                                str(folder / "0.jpg")], stdout=fh, stderr=subprocess.PIPE, text=True, timeout=120)
        assert p.returncode == 2 and "is standard output, which holds the output" in p.stderr, p.stderr
        assert out.read_text() == ""
    report = tmp_path / "r.html"  # stdout free with -o FILE: a report there is fine
    with open(report, "w") as fh:
        p = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), "-o", str(out),
                            "--report", "/dev/stdout", str(folder / "0.jpg")], stdout=fh, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert p.returncode == 0 and report.read_text().startswith("<!DOCTYPE html>") and out.read_text().count("\n") == 1
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"file,label\n{folder / '0.jpg'},0\n")
    with open(out, "w") as fh:
        p = subprocess.run([sys.executable, "-m", "fakedet", "eval", "-w", str(tiny_weights), "--report", "/dev/stdout",
                            str(manifest)], stdout=fh, stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 2 and "is standard output" in p.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_report_that_cannot_be_written_costs_no_record(runner, tiny_weights, tmp_path):
    """The report's disk is full: every record is still written (a json array closed), the
    report's error is said at once, and the status is 2."""
    for i in range(4):
        write_image(tmp_path / "in" / f"{i}.jpg", seed=i)
    r = scan(runner, tiny_weights, "-b", "2", "-f", "json", "--report", "/dev/full", str(tmp_path / "in"))
    assert r.exit_code == 2, r.stderr
    assert len(json.loads(r.stdout)) == 4
    assert "the scan goes on without the report" in r.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_an_eval_report_that_cannot_be_written_costs_no_figure(runner, tiny_weights, tmp_path):
    """The report's disk is full: eval stopped at once and printed no figure, though it could
    score every image. It goes on, prints them, says why the report is missing, and exits 2."""
    for sub, k in (("real", 0), ("fake", 1), ("real", 2), ("fake", 3)):
        write_image(tmp_path / "data" / sub / f"{k}.jpg", seed=k)
    r = runner.invoke(cli, ["eval", "-w", str(tiny_weights), "-b", "1", "--json", "--report", "/dev/full",
                            str(tmp_path / "data")])
    assert r.exit_code == 2, r.output
    assert json.loads(r.stdout)["sets"]["data"]["n"] == 4
    assert r.stderr.count("cannot write the report /dev/full") == 1
    assert "the evaluation goes on without the report" in r.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_report_never_created_is_said(runner, tiny_weights, tmp_path):
    """The records' disk is full from the first batch (or there is no image): no record, so
    no report file, and stderr said only why the scan failed."""
    write_image(tmp_path / "in" / "0.jpg")
    report = tmp_path / "r.html"
    r = scan(runner, tiny_weights, "--report", str(report), "-o", "/dev/full", str(tmp_path / "in"))
    assert r.exit_code == 2 and "cannot write the records" in r.stderr and not report.exists()
    assert f"no report written to {report}: no record was written" in r.stderr
    (tmp_path / "empty").mkdir()
    r = scan(runner, tiny_weights, "--report", str(report), str(tmp_path / "empty"))
    assert r.exit_code == 2 and "no report written" in r.stderr and not report.exists()
    r = scan(runner, tiny_weights, "--report", str(report), str(tmp_path / "in"))
    assert r.exit_code == 0 and report.exists() and "no report written" not in r.stderr


def test_outputs_in_the_scanned_folder_are_not_inputs(runner, tiny_weights, tmp_path):
    """A report named like an image (or the records) inside the folder being scanned, from an
    earlier run: skipped with a note, never read as an input and then overwritten mid-scan."""
    folder = tmp_path / "s"
    write_image(folder / "a.jpg", seed=1)
    report, records = folder / "zz.png", folder / "zz.jpg"
    for _ in range(2):  # the second run finds the first run's files
        r = scan(runner, tiny_weights, "--report", str(report), "-o", str(records), str(folder))
        assert r.exit_code == 0, r.stderr
        lines = records.read_text().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{folder / 'a.jpg'}\t")
        assert len(batches(report.read_text("utf-8"))[0]) == 1
    assert f"skipped {report}: this scan writes its report there" in r.stderr
    assert f"skipped {records}: this scan writes its records there" in r.stderr


def test_scan_that_finds_nothing_leaves_the_report_alone(runner, tiny_weights, tmp_path):
    (tmp_path / "empty").mkdir()
    report = tmp_path / "report.html"
    report.write_text("old")
    r = scan(runner, tiny_weights, "--report", str(report), str(tmp_path / "empty"))
    assert r.exit_code == 2 and report.read_text() == "old"


class _TwoBatches:
    """What ``_run_scan`` reads: two batches of 16 synthetic records, then an interruption if
    asked."""
    detector = _Det()

    def __init__(self, interrupt: bool = False):
        self.results, self.interrupt = synthetic(40), interrupt

    def __iter__(self):
        yield self.results[:16]
        yield self.results[16:32]
        if self.interrupt:
            raise KeyboardInterrupt


class _Kept(io.StringIO):
    """An output ``_run_scan`` may close (it closes a file it was given): the text is kept."""

    def close(self):
        pass


class _FailsAfter(io.StringIO):
    """An output that raises ``exc`` once ``lines`` lines are in it (its reader gone, its disk full)."""

    def __init__(self, lines: int, exc: OSError):
        super().__init__()
        self.lines, self.exc = lines, exc

    def write(self, text):
        if self.getvalue().count("\n") >= self.lines:
            raise self.exc
        return super().write(text)


def _scan_with_report(tmp_path, out, stream=None) -> tuple[int, str]:
    from fakedet.cli.scan import _run_scan

    report = tmp_path / "r.html"
    code = _run_scan(stream or _TwoBatches(), "tsv", out, False, True, False,
                     report=HtmlReport(str(report), "scan", _Det()))
    return code, report.read_text("utf-8")


def test_interrupted_scan_leaves_a_readable_report(tmp_path):
    out = _Kept()
    code, text = _scan_with_report(tmp_path, out, _TwoBatches(interrupt=True))
    assert code == 130 and len(out.getvalue().splitlines()) == 32
    assert len([x for b in batches(text) for x in b]) == 32
    assert '"complete":false' in text and "interrupted after 32 records" in text and text.rstrip().endswith("</html>")
    if CHROMIUM:
        page = open_page(tmp_path, tmp_path / "r.html")
        assert page.ids == list(range(32)) and "interrupted" in page.dom


def test_a_scan_whose_reader_went_away_says_so_in_its_report(tmp_path):
    # `fakedet scan ... | head -16`: the reader is gone after the first batch
    code, text = _scan_with_report(tmp_path, _FailsAfter(16, BrokenPipeError(32, "Broken pipe")))
    assert code == 141
    assert '"complete":false' in text and "the records' reader closed the output after 16 records" in text
    if CHROMIUM:
        page = open_page(tmp_path, tmp_path / "r.html")
        assert "The run stopped before its end: 16 records." in page.dom


def test_eval_report_lists_false_positives_and_negatives_first(runner, tiny_weights, tmp_path):
    # score six images, then file them so that the highest-scoring real one is a false positive
    # and one fake below the threshold a false negative
    src = tmp_path / "src"
    for k in range(6):
        write_image(src / f"{k}.jpg", seed=k, size=(200, 150))
    r = scan(runner, tiny_weights, "-f", "jsonl", str(src))
    scores = sorted((json.loads(line)["p_fake"], json.loads(line)["path"]) for line in r.stdout.splitlines())
    assert len({p for p, _ in scores}) == 6
    threshold = (scores[2][0] + scores[3][0]) / 2
    data = tmp_path / "data"
    real = [scores[5], scores[0], scores[1]]  # the first one: labelled fake, a false positive
    fake = [scores[2], scores[3], scores[4]]  # the first one: labelled real, a false negative
    for sub, group in (("real", real), ("fake", fake)):
        (data / sub).mkdir(parents=True)
        for _p, path in group:
            shutil.copy(path, data / sub / os.path.basename(path))
    (data / "fake" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    report = tmp_path / "eval.html"
    args = ["eval", "--weights", str(tiny_weights), "--workers", "0", "-t", f"{threshold:.9f}", str(data)]
    plain = runner.invoke(cli, args)
    r = runner.invoke(cli, [*args, "--report", str(report)])
    assert r.exit_code == plain.exit_code == 3, r.stderr
    assert r.stdout == plain.stdout  # the figures, unchanged
    text = report.read_text("utf-8")
    rows = {os.path.relpath(x["path"], data): x for b in batches(text) for x in b}
    assert rows[os.path.join("real", os.path.basename(scores[5][1]))]["outcome"] == "fp"
    assert rows[os.path.join("fake", os.path.basename(scores[2][1]))]["outcome"] == "fn"
    assert sum(x["outcome"] in ("fp", "fn") for x in rows.values()) == 2 and len(rows) == 7
    assert "AUC" in text  # the figures' table as the summary
    if CHROMIUM:
        page = open_page(tmp_path, report)
        outcomes = [r["data-outcome"] for r in page.rows]
        assert outcomes[:2] == ["fp", "fn"] and len(outcomes) == 7
        assert not {"fp", "fn"} & set(outcomes[2:])
        assert "error" in outcomes
        only = open_page(tmp_path, report, "#click=mistakes")
        assert [r["data-outcome"] for r in only.rows] == ["fp", "fn"]


def test_eval_report_refuses_its_input(runner, tiny_weights, tmp_path):
    manifest = tmp_path / "manifest.csv"
    write_image(tmp_path / "a.jpg")
    manifest.write_text("file,label\na.jpg,0\n")
    r = runner.invoke(cli, ["eval", "--weights", str(tiny_weights), "--report", str(manifest), str(manifest)])
    assert r.exit_code == 2 and "also an input" in r.stderr
    assert manifest.read_text() == "file,label\na.jpg,0\n"
    image = tmp_path / "a.jpg"
    before = image.read_bytes()
    r = runner.invoke(cli, ["eval", "--weights", str(tiny_weights), "--report", str(image), str(manifest)])
    assert r.exit_code == 2 and "is an image (JPEG)" in r.stderr and image.read_bytes() == before


def test_ci_has_a_browser_for_the_report_tests():
    """The browser tests skip without Chromium; in CI (.ci/run installs it) they must run."""
    if not os.environ.get("CI"):
        pytest.skip("outside CI the browser tests may skip")
    assert CHROMIUM is not None, "no Chromium in CI: .ci/run must install Debian's chromium"


def test_report_of_a_very_elongated_image_keeps_its_record(runner, tiny_weights, tmp_path):
    """Its thumbnail's short side would round to 0 px: the record is scored as without --report."""
    d = tmp_path / "strips"
    write_image(d / "wide.png", fmt="PNG", size=(20000, 32))
    write_image(d / "tall.png", fmt="PNG", size=(32, 20000))
    plain = scan(runner, tiny_weights, "-f", "jsonl", str(d))
    r = scan(runner, tiny_weights, "-f", "jsonl", "--report", str(tmp_path / "r.html"), str(d))
    assert r.exit_code == plain.exit_code == 0, r.stderr
    assert r.stdout == plain.stdout and all(json.loads(x)["error"] is None for x in r.stdout.splitlines())
    from fakedet.inference.pipeline import thumbnail

    t = thumbnail(Image.new("RGB", (20000, 32)), 256)
    assert Image.open(io.BytesIO(t["jpeg"])).size == (256, 1) and (t["width"], t["height"]) == (20000, 32)


def test_a_scan_whose_records_could_not_be_written_says_why_in_its_report(tmp_path):
    # the records' disk fills up after the first batch
    code, text = _scan_with_report(tmp_path, _FailsAfter(16, OSError(28, "No space left on device")))
    assert code == 2 and '"complete":false' in text
    assert "the records could not be written (No space left on device) after 16 records" in text


def test_an_eval_stopped_by_an_error_leaves_a_whole_report(runner, tiny_weights, tmp_path, monkeypatch):
    """An error in the middle of an eval (here a made-up one after the first batch): the report
    keeps the images scored so far, ends its document and says that the run did not end."""
    import fakedet.evaluation.report as ev

    real = ev.report

    def failing(det, datasets, progress=None, on_batch=None):
        def once(name, results, images):
            on_batch(name, results, images)
            raise RuntimeError("made-up failure")

        return real(det, datasets, progress=progress, on_batch=once)

    monkeypatch.setattr(ev, "report", failing)
    data = tmp_path / "data"
    for sub, k in (("real", 0), ("fake", 1)):
        write_image(data / sub / f"{k}.jpg", seed=k)
    report = tmp_path / "eval.html"
    r = runner.invoke(cli, ["eval", "--weights", str(tiny_weights), "--workers", "0", "--report", str(report),
                            str(data)])
    assert r.exit_code != 0
    text = report.read_text("utf-8")
    assert text.rstrip().endswith("</html>") and '"complete":false' in text
    assert "stopped by an error after" in text and len([x for b in batches(text) for x in b]) >= 1


def test_a_scan_report_that_failed_is_closed_at_once(tmp_path):
    from fakedet.cli.scan import _run_scan

    rep = HtmlReport(str(tmp_path / "r.html"), "scan", _Det())
    full = _FailsAfter(0, OSError(28, "No space left on device"))
    rep.stream = full  # the report's file, on a full disk
    out = _Kept()
    assert _run_scan(_TwoBatches(), "tsv", out, False, True, False, report=rep) == 2
    assert len(out.getvalue().splitlines()) == 32 and full.closed


def test_files_from_is_closed_when_a_later_step_fails(runner, tmp_path, monkeypatch):
    import builtins
    import sys

    sc = sys.modules["fakedet.cli.scan"]  # (fakedet.cli.scan, the attribute, is the command)
    opened = []

    def tracking_open(*a, **k):
        f = builtins.open(*a, **k)
        opened.append(f)
        return f

    monkeypatch.setattr(sc, "open", tracking_open, raising=False)
    lst = tmp_path / "list.txt"
    lst.write_text(str(write_image(tmp_path / "a.jpg")) + "\n")
    # weights that cannot be loaded: an error after the list was opened
    r = runner.invoke(cli, ["scan", "--weights", str(tmp_path / "missing.safetensors"), "--files-from", str(lst)])
    assert r.exit_code == 2 and "missing.safetensors" in r.stderr, r.stderr
    assert [f.name for f in opened] == [str(lst)] and opened[0].closed


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_an_eval_whose_figures_cannot_be_printed_still_ends_its_report(tiny_weights, tmp_path):
    """Every image was scored, but stdout is full (or its reader gone): the report still gets
    the figures and its end, and the status says the output failed."""
    import subprocess
    import sys

    data = tmp_path / "data"
    for sub, k in (("real", 0), ("fake", 1)):
        write_image(data / sub / f"{k}.jpg", seed=k)
    report = tmp_path / "eval.html"
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "fakedet", "eval", "-w", str(tiny_weights), "-j", "0",
                            "--report", str(report), str(data)], stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    text = report.read_text("utf-8")
    assert text.rstrip().endswith("</html>") and '"complete":true' in text and "AUC" in text


def test_scan_report_summary_has_every_line_the_scan_prints(runner, tiny_weights, folder, tmp_path):
    """The report's summary is the lines the scan prints at its end: in face mode the line on
    how faces were scored, and an -E pattern's warning, too."""
    report = tmp_path / "report.html"
    r = scan(runner, tiny_weights, "--faces", "-E", "nomatch*", "--report", str(report), str(folder))
    assert "faces scored by the network alone" in r.stderr and "matched nothing" in r.stderr
    text = report.read_text("utf-8")
    assert "faces scored by the network alone" in text
    assert "matched nothing in the folders walked" in text


def _report_with_weights(path: Path, weights, faces: bool = False) -> Path:
    det = _Det(faces=faces)
    det.weights_path = str(weights)
    rep = HtmlReport(str(path), "scan", det)
    rep.add(synthetic(3))
    rep.close("done")
    return path


def test_the_report_carries_how_often_the_verdicts_are_wrong(tmp_path, tiny_weights):
    """An editor given the report alone had no README, model card or `fakedet info` to learn how
    often the verdicts are wrong: the report holds the lines `fakedet info` opens with, taken
    from the weights' own test figures, and none where the weights have none."""
    from fakedet.cli.info import in_short_of
    from fakedet.model import checkpoint as ckpt

    shipped = ckpt.default_weights_path()
    meta = json.loads(re.search(r'id="fakedet-meta">(.*?)</script>',
                                _report_with_weights(tmp_path / "r.html", shipped).read_text("utf-8"), re.S).group(1))
    info = in_short_of(ckpt.describe(shipped))
    assert meta["in_short"] and len(meta["in_short"]) == len(info)
    assert meta["in_short"][1:] == info[1:] and "listed by fakedet info" in meta["in_short"][0]
    assert any("real photos labelled fake" in line for line in meta["in_short"])
    bare = json.loads(re.search(r'id="fakedet-meta">(.*?)</script>',
                                _report_with_weights(tmp_path / "t.html", tiny_weights).read_text("utf-8"),
                                re.S).group(1))
    assert bare["in_short"] == []


@browser
def test_the_page_shows_how_often_the_verdicts_are_wrong(tmp_path, tiny_weights):
    import html

    from fakedet.model import checkpoint as ckpt

    report = _report_with_weights(tmp_path / "r.html", ckpt.default_weights_path())
    page = open_page(tmp_path, report)
    assert "hidden" not in page.by_id["inshort"]
    meta = json.loads(re.search(r'id="fakedet-meta">(.*?)</script>', report.read_text("utf-8"), re.S).group(1))
    assert all(html.escape(line, quote=False) in page.dom for line in meta["in_short"])
    bare = open_page(tmp_path, _report_with_weights(tmp_path / "t.html", tiny_weights))
    assert "hidden" in bare.by_id["inshort"]
    note = ("verdicts are face mode\u2019s (--faces), at thresholds of their own; how often those are wrong is "
            "not counted")
    assert note not in page.dom
    # a counsellor's face-mode report showed the plain scan's error rates as if they were its own
    faces = open_page(tmp_path, _report_with_weights(tmp_path / "f.html", ckpt.default_weights_path(), faces=True))
    assert "(the scan without --faces)" in faces.dom and note in faces.dom
