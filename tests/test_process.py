"""The CLI as a real process: pipes, signals, start-up."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import write_image

pytestmark = pytest.mark.slow  # every test here starts fakedet or python as a process


def _image_folder(tmp_path_factory, name, n):
    d = tmp_path_factory.mktemp(name)
    for i in range(n):
        write_image(d / f"{i:03d}.jpg", size=(64, 64), seed=i)
    return d


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    return _image_folder(tmp_path_factory, "many", 60)


def fakedet(*args, **kw):
    """The CLI as a child process. Its stdout is unbuffered on our side too (``bufsize=0``): a
    buffered ``readline()`` may read past the line into its own buffer, and ``communicate()``
    then reads the pipe itself, so that text would be lost to the test (a record seemed to be
    missing from a json array after SIGTERM)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not kw.pop("unbuffered", True):  # the child's streams buffered, as a user's are
        env.pop("PYTHONUNBUFFERED")
    kw.setdefault("bufsize", 0)
    kw.setdefault("preexec_fn", _interruptible)
    stderr = kw.pop("stderr_to", subprocess.PIPE)
    stdout = kw.pop("stdout_to", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "fakedet", *args], env=env,
                            stdout=stdout, stderr=stderr, **kw)


def _interruptible():
    """In the child, before fakedet starts: SIGINT (and SIGHUP) as in a terminal's foreground
    job. A test run started in the background (``cmd &`` in a script, nohup) passes SIGINT (and
    nohup SIGHUP) on ignored, and fakedet, like any program, keeps an ignored signal ignored, so
    the ctrl-c and hang-up tests would measure the launching shell instead of fakedet."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_version_does_not_import_torch():
    code = "import sys; from fakedet.cli import main; sys.argv=['fakedet','--version']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "fakedet" in r.stdout


def test_pillows_warnings_about_a_file_are_not_printed(tiny_weights, tmp_path):
    from test_imageio import apng_of_no_frames

    from conftest import random_image

    (tmp_path / "a.png").write_bytes(apng_of_no_frames(random_image((40, 40))))
    p = fakedet("scan", "-w", str(tiny_weights), "-q", str(tmp_path / "a.png"))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.decode().count("a.png") == 1
    assert err.decode() == ""


def test_closed_pipe_ends_quietly(tiny_weights, many):
    p = fakedet("scan", "-w", str(tiny_weights), "-j", "0", "-b", "2", str(many))
    first = p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    _, err = p.communicate(timeout=120)
    assert first.startswith(str(many).encode())
    assert p.returncode == 141
    assert b"Traceback" not in err and b"BrokenPipe" not in err


@pytest.mark.parametrize("command", ["info", "eval", "--help", "--version"])
def test_closed_pipe_ends_every_command_quietly(tiny_weights, many, tmp_path, command):
    args = ["info", "-w", str(tiny_weights)] if command == "info" else [command]
    if command == "eval":
        (tmp_path / "real").mkdir()
        (tmp_path / "fake").mkdir()
        for i, name in enumerate(sorted(os.listdir(many))[:4]):
            (tmp_path / ("real" if i % 2 else "fake") / name).write_bytes((many / name).read_bytes())
        args = ["eval", "-w", str(tiny_weights), "-j", "0", str(tmp_path)]
    p = fakedet(*args)
    p.stdout.close()  # the reader is gone before the first line is written
    _, err = p.communicate(timeout=120)
    assert p.returncode == 141, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_a_report_lost_to_a_closed_pipe_is_said_to_be_lost(tiny_weights, many, tmp_path):
    """The records' reader gone before the first batch is written: no record was made, so
    --report is not written, and stderr says so (the status stays 141), rather than leaving
    an earlier run's report there without a word."""
    report = tmp_path / "r.html"
    report.write_text("OLD")
    p = fakedet("scan", "-w", str(tiny_weights), "-j", "0", "--report", str(report), str(many))
    p.stdout.close()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 141, err
    assert (f"fakedet: no report written to {report}: the records' reader went away before the first "
            "batch was written whole").encode() in err, err
    assert b"Traceback" not in err and report.read_text() == "OLD"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_the_bars_stream_is_as_wide_as_the_terminal(monkeypatch):
    """The bar's stream is stderr to tqdm, which measures only sys.stderr or sys.stdout: the bar
    fills the terminal's width (a 150-column one here), not tqdm's 10-character default."""
    import fcntl
    import struct
    import termios

    from tqdm import tqdm

    from fakedet.cli.common import BarStream

    main, sub = os.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    with os.fdopen(sub, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        stream = BarStream()
        assert stream == sys.stderr and stream != sys.stdout
        bar = tqdm(total=6, file=stream)
        assert bar.ncols is not None and bar.ncols >= 149  # tqdm keeps the last column free
        bar.close()
    os.close(main)


@pytest.mark.parametrize("command", ["scan", "eval"])
def test_a_progress_bar_whose_reader_went_away_loses_the_bar_only(tiny_weights, many, tmp_path, command):
    """--progress with stderr's reader gone (``2>&1 | head``): the bar is dropped and the
    command goes on, its records or figures whole and its status what it would be without the
    bar, not 141 (that status says the records' reader went away)."""
    if command == "scan":
        out = tmp_path / "out.tsv"
        args = ["scan", "--progress", "-o", str(out), "-b", "2", str(many)]
    else:
        for i, name in enumerate(sorted(os.listdir(many))[:6]):
            (tmp_path / "set" / ("real" if i % 2 else "fake")).mkdir(parents=True, exist_ok=True)
            (tmp_path / "set" / ("real" if i % 2 else "fake") / name).write_bytes((many / name).read_bytes())
        args = ["eval", "--progress", "-b", "2", "--json", str(tmp_path / "set")]
    p = fakedet(*args, "-w", str(tiny_weights), "-j", "0")
    p.stderr.close()  # the reader is gone before the bar is first drawn
    stdout, _ = p.communicate(timeout=120)
    assert p.returncode == 0
    if command == "scan":
        assert len(out.read_text().splitlines()) == len(os.listdir(many))
    else:
        import json

        assert json.loads(stdout)["sets"]["set"]["n"] == 6


def test_a_scan_stopped_by_ctrl_c_is_carried_on_by_resume(tiny_weights, many, tmp_path):
    """The stopped scan's last message says how to carry it on; --resume then adds a record for
    each image without one, and the file holds one record per image."""
    out = tmp_path / "records.jsonl"
    p = fakedet("scan", "-w", str(tiny_weights), "-j", "1", "-b", "1", "-f", "jsonl", "-o", str(out), str(many))
    deadline = time.monotonic() + 60
    while (not out.exists() or not out.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the scan ended before the signal came")
    assert p.returncode == 130 and b"the same command with --resume scans the rest" in err, err
    kept = len(out.read_text().splitlines())
    r = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), "-j", "1", "--resume",
                        "-f", "jsonl", "-o", str(out), str(many)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    assert sorted(paths) == sorted(str(many / n) for n in os.listdir(many))
    assert f"skipped {kept} input".encode() in r.stderr


def test_ctrl_c_flushes_and_exits_130(tiny_weights, many):
    p = fakedet("scan", "-w", str(tiny_weights), "-j", "1", "-b", "1", str(many), str(many), str(many))
    first = p.stdout.readline()  # wait until records flow
    assert first
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    lines = [first] + out.splitlines(keepends=True)
    assert all(line.count(b"\t") == 3 and line.endswith(b"\n") for line in lines)
    assert b"Traceback" not in err and b"interrupted" in err


def test_api_script_without_main_guard(tiny_weights, many, tmp_path):
    """A plain script, like the README's API example, with more inputs than one batch and
    decoding workers: it must not need `if __name__ == "__main__":` and must run only once."""
    script = tmp_path / "plain.py"
    script.write_text(
        "import glob\n"
        "from fakedet import Detector\n"
        f"det = Detector.load({str(tiny_weights)!r}, device='cpu', batch_size=4, workers=2)\n"
        f"res = det.predict(sorted(glob.glob({str(many)!r} + '/*.jpg')))\n"
        "print('scored', len(res), sum(r.ok for r in res))\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["scored 60 60"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("to_file", [False, True])
def test_a_full_disk_is_reported_not_a_traceback(tiny_weights, many, to_file):
    args = ["scan", "-w", str(tiny_weights), "-j", "0", str(many)]
    if to_file:
        p = fakedet(*args, "-o", "/dev/full")
    else:
        with open("/dev/full", "w") as full:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            p = subprocess.Popen([sys.executable, "-m", "fakedet", *args], env=env, stdout=full,
                                 stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2, err  # not 1, which --exit-code uses for "fake"
    assert b"Traceback" not in err and b"cannot write the records" in err


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("how,kept", [("append", 20), ("truncate", 20), ("-o", 20),
                                      ("append-unbuffered", 20), ("append-unbuffered", 23)])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_disk_filling_mid_record_leaves_whole_records(tiny_weights, many, tmp_path, how, kept, fmt):
    """A write that fails half-way (here a file size limit, as a full disk would) leaves the
    file ending in a whole record: a nightly job appending to it glued its next record onto
    half of one. With a plain `>` the next writer of the same descriptor (the next command of
    `{ ...; } > f`) writes at the new end, not past a hole of zeros (a review). Batches of 8: the
    limit falls 7 bytes into record ``kept`` + 1, inside the third batch, or (23) on its last
    record, which an unbuffered stdout (`python -u`) cuts short without an error (a review)."""
    import resource

    out = tmp_path / f"scores.{fmt}"
    earlier = '{"path": "earlier.jpg"}\n' if fmt == "jsonl" else "path,p_fake,label,error\nearlier.jpg,0.5,uncertain,\n"
    if how.startswith("append"):
        out.write_text(earlier)
    args = ["scan", "-w", str(tiny_weights), "-j", "0", "-b", "8", "-f", fmt, str(many)]
    whole = subprocess.run([sys.executable, "-m", "fakedet", *args], capture_output=True, timeout=120).stdout
    lines = whole.splitlines(True)
    head = 1 if fmt == "csv" else 0  # this scan's csv header
    limit = (len(earlier) if how.startswith("append") else 0) + sum(map(len, lines[:head + kept])) + 7

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail (EFBIG)

    env = dict(os.environ, **({"PYTHONUNBUFFERED": "1"} if how.endswith("unbuffered") else {}))
    if how == "-o":
        r = subprocess.run([sys.executable, "-m", "fakedet", *args, "-o", str(out)], capture_output=True,
                           preexec_fn=limited, timeout=120, env=env)
    else:
        with open(out, "a" if how.startswith("append") else "w") as fh:
            r = subprocess.run([sys.executable, "-m", "fakedet", *args], stdout=fh, stderr=subprocess.PIPE,
                               preexec_fn=limited, timeout=120, env=env)
            if how == "truncate":
                os.write(fh.fileno(), earlier.splitlines(True)[-1].encode())  # the next command's line
    assert r.returncode == 2, r.stderr
    assert b"cannot write the records" in r.stderr and b"taken off the end of the file" in r.stderr, r.stderr
    assert (f"cannot write the records to {out}:".encode() in r.stderr) == (how == "-o"), r.stderr  # names -o's file
    data = out.read_bytes()
    assert b"\0" not in data
    mine = data[len(earlier):] if how.startswith("append") else data
    if how == "truncate":
        assert mine.endswith(earlier.splitlines(True)[-1].encode())
        mine = mine[:-len(earlier.splitlines(True)[-1])]
    assert mine == b"".join(lines[:head + kept])  # the records that went out whole, and no more
    if how.startswith("append"):
        assert data.startswith(earlier.encode())


def test_ctrl_c_during_eval_exits_130(tiny_weights, many, tmp_path):
    (tmp_path / "real").symlink_to(many)
    for i in range(3):  # not the same images: one file in real/ and fake/ is a usage error
        write_image(tmp_path / "fake" / f"{i}.jpg", seed=100 + i)
    p = fakedet("eval", "-w", str(tiny_weights), "-j", "1", "-b", "1", "--progress", *[str(tmp_path)] * 3)
    seen = b""
    while b"img" not in seen:  # wait until scoring has begun: the progress bar draws on stderr
        chunk = p.stderr.read(4096)  # one read of the raw pipe: what has arrived
        if not chunk:
            break
        seen += chunk
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    err = seen + err
    assert p.returncode == 130, err
    assert b"Traceback" not in err and b"interrupted" in err


def _eval_folder(many, tmp_path):
    for i, name in enumerate(sorted(os.listdir(many))[:4]):
        sub = tmp_path / ("real" if i % 2 else "fake")
        sub.mkdir(exist_ok=True)
        (sub / name).write_bytes((many / name).read_bytes())
    return tmp_path


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["info", "eval", "--help"])
def test_every_command_reports_a_full_disk_with_status_2(tiny_weights, many, tmp_path, command):
    args = {"info": ["info", "-w", str(tiny_weights)], "--help": ["--help"],
            "eval": ["eval", "-w", str(tiny_weights), "-j", "0", str(_eval_folder(many, tmp_path))]}[command]
    with open("/dev/full", "w") as full:
        p = subprocess.Popen([sys.executable, "-m", "fakedet", *args], stdout=full, stderr=subprocess.PIPE)
        _, err = p.communicate(timeout=120)
    assert p.returncode == 2, err  # not 1 ("fake"), nor the interpreter's 120
    assert b"Traceback" not in err and b"cannot write the output: No space left on device" in err
    assert b"Exception ignored" not in err


@pytest.mark.parametrize("command", ["scan", "info", "eval"])
def test_a_closed_stdout_is_an_error_unless_records_go_to_a_file(tiny_weights, many, tmp_path, command):
    args = {"scan": ["scan", "-w", str(tiny_weights), "-j", "0", str(many)],
            "info": ["info", "-w", str(tiny_weights)],
            "eval": ["eval", "-w", str(tiny_weights), "-j", "0", str(_eval_folder(many, tmp_path))]}[command]

    def run(*extra):  # `fakedet ... >&-`
        return subprocess.run([sys.executable, "-m", "fakedet", *args, *extra], stderr=subprocess.PIPE,
                              preexec_fn=lambda: os.close(1), timeout=120)

    r = run()
    assert r.returncode == 2, r.stderr
    assert b"Traceback" not in r.stderr and b"standard output is closed" in r.stderr
    # only scan has -o for its records; the others are told to redirect standard output
    assert (b"use -o FILE" in r.stderr) == (command == "scan") and b"> FILE" in r.stderr, r.stderr
    if command == "scan":
        out = tmp_path / "records.tsv"
        assert run("-o", str(out)).returncode == 0
        assert len(out.read_text().splitlines()) == 60


def test_the_summary_shows_the_scan_and_the_whole_run_with_start_up(tiny_weights, many):
    import re

    p = fakedet("scan", "-w", str(tiny_weights), "-j", "0", str(many))
    _, err = p.communicate(timeout=120)
    m = re.search(r"60 images: .*\(([\d.]+) s, [\d.]+ img/s; ([\d.]+) s with start-up; cpu", err.decode())
    assert m, err
    assert float(m.group(2)) >= float(m.group(1))  # start-up (imports, weights) comes on top


@pytest.fixture(scope="module")
def two_hundred(tmp_path_factory):
    return _image_folder(tmp_path_factory, "two_hundred", 200)


def test_sigterm_closes_the_json_array_and_exits_143(tiny_weights, two_hundred):
    p = fakedet("scan", "--format", "json", "-w", str(tiny_weights), "-j", "1", "-b", "1", str(two_hundred))
    seen = b""
    while str(two_hundred).encode() not in seen:  # wait for the first record
        line = p.stdout.readline()
        if not line:
            break
        seen += line
    assert seen, "no record before the end"
    p.send_signal(signal.SIGTERM)  # as timeout, kill, docker stop and systemd send
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    records = json.loads(seen + out)  # the array was closed
    assert 1 <= len(records) < 200
    assert [os.path.basename(r["path"]) for r in records] == [f"{i:03d}.jpg" for i in range(len(records))]
    word = "record" if len(records) == 1 else "records"
    assert b"Traceback" not in err and f"terminated after {len(records)} {word}".encode() in err


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP")
@pytest.mark.parametrize("sig, times, status", [("SIGHUP", 1, 129), ("SIGHUP", 2, 129), ("SIGTERM", 1, 143),
                                                ("SIGINT", 1, 130)])
def test_a_signal_while_the_list_of_paths_waits_closes_the_json_file(tiny_weights, two_hundred, tmp_path,
                                                                     sig, times, status):
    """The terminal (or ssh session) that started a scan closes: the kernel sends SIGHUP, the
    shell sends its jobs another, and the terminal takes no more writes. The records already
    made must stay a whole json document, as after SIGTERM and Ctrl-C. The paths come from a
    list that stays open, so the scan is still running, waiting for more (read in a background
    thread, which Python's shutdown would abort under), when the signal comes."""
    import pty
    import time

    master, terminal = pty.openpty()
    out = tmp_path / "scores.json"
    p = fakedet("scan", "--format", "json", "-o", str(out), "--progress", "-w", str(tiny_weights),
                "--files-from", "-", stdin=subprocess.PIPE, stderr_to=terminal)
    os.close(terminal)
    for name in ("000.jpg", "001.jpg"):
        p.stdin.write(f"{two_hundred / name}\n".encode())
    p.stdin.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None and "001.jpg" not in (
            out.read_text() if out.exists() else ""):
        time.sleep(0.05)
    assert p.poll() is None, "the scan ended before the hang-up"
    os.close(master)  # the terminal goes away ...
    for _ in range(times):
        p.send_signal(getattr(signal, sig))  # ... and its processes are told
    p.wait(60)
    p.stdin.close()
    assert p.returncode == status
    records = json.loads(out.read_text())  # the array was closed
    assert [os.path.basename(r["path"]) for r in records] == ["000.jpg", "001.jpg"]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP")
def test_a_hang_up_of_the_terminal_that_shows_the_records_is_still_129(tiny_weights, two_hundred):
    """The records go to the terminal itself (json, the array still open): once it is gone the
    closing ``]`` cannot be written (EIO). That is the hang-up, not a failure to keep records:
    129, not 2."""
    import pty
    import time

    master, terminal = pty.openpty()
    p = fakedet("scan", "--format", "json", "-w", str(tiny_weights), "--files-from", "-",
                stdin=subprocess.PIPE, stdout_to=terminal, stderr_to=terminal)
    os.close(terminal)
    p.stdin.write(f"{two_hundred / '000.jpg'}\n".encode())
    p.stdin.flush()
    shown, deadline = b"", time.monotonic() + 60
    while b"000.jpg" not in shown and time.monotonic() < deadline and p.poll() is None:
        try:
            shown += os.read(master, 65536)
        except OSError:
            break
    assert b"000.jpg" in shown and p.poll() is None
    os.close(master)
    p.send_signal(signal.SIGHUP)
    p.wait(60)
    p.stdin.close()
    assert p.returncode == 129


_TWO_SIGTERMS = """
import os, signal, sys
from fakedet.cli import common
common.REPEAT_IGNORED_S = float(sys.argv[1])
with common.handle_signals():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs between bytecodes
    except common.Terminated:
        print("stopping", flush=True)
    import time
    time.sleep(0.3)  # (the first one's clean-up)
    os.kill(os.getpid(), signal.SIGTERM)  # a second
    time.sleep(0.5)
    print("cleaned up", flush=True)
"""


@pytest.mark.parametrize("window, status, out", [(1.0, 0, "stopping\ncleaned up\n"),
                                                 (0.1, -signal.SIGTERM, "stopping\n")])
def test_a_second_sigterm_at_once_is_the_same_stop_and_a_later_one_ends_the_process(window, status, out):
    """GNU timeout sends SIGTERM to the command, then to its process group: two at once. The
    second used to end the process during the first one's clean-up (a json file left open)."""
    r = subprocess.run([sys.executable, "-c", _TWO_SIGTERMS, str(window)], capture_output=True, text=True,
                       timeout=60)
    assert (r.returncode, r.stdout) == (status, out), r.stderr


def _small_pipe():
    """A pipe that holds one 4 KiB page (Linux's F_SETPIPE_SZ), so that a few dozen records fill it."""
    import fcntl

    r, w = os.pipe()
    fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    return r, w


def _scan_into_a_small_pipe(weights, folder, batch, same_pipe_for_stderr=False, unbuffered=True):
    r, w = _small_pipe()
    p = fakedet("scan", "-f", "json", "-w", str(weights), "-j", "1", "-b", str(batch), str(folder),
                stdout_to=w, stderr_to=w if same_pipe_for_stderr else subprocess.PIPE, unbuffered=unbuffered)
    os.close(w)
    first = os.read(r, 1024)  # the scan is writing; the pipe fills behind this read
    import time

    time.sleep(3)
    assert p.poll() is None, "the scan ended before the signal"
    return p, r, first


def _signal_a_scan_whose_reader_stopped(p, r, sig) -> float:
    """Sends ``sig`` to the scan ``p`` whose records' reader (``r``, closed here) stopped reading,
    and waits for it to give up: the seconds that took."""
    import time

    from fakedet.cli import pipeout

    t0 = time.monotonic()
    p.send_signal(sig)
    try:
        p.wait(pipeout.GIVE_UP_S + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("one signal did not end a scan whose reader stopped reading")
    finally:
        os.close(r)
    return time.monotonic() - t0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets a pipe's size (Linux)")
@pytest.mark.parametrize("sig, status, same_pipe, unbuffered", [("SIGTERM", 143, False, True),
                                                                ("SIGINT", 130, True, True),
                                                                ("SIGHUP", 129, False, False)])
def test_one_signal_ends_a_scan_whose_reader_stopped_reading(tiny_weights, two_hundred, sig, status,
                                                            same_pipe, unbuffered):
    """The records' reader stopped reading (a full pipe) and the scan got one signal: it used to
    wait for ever to write the rest (the batch, the array's end) and needed a second SIGTERM.
    It now gives the reader pipeout.GIVE_UP_S seconds to take anything, then ends with the
    signal's status and says so. With stderr into the same pipe, the message cannot go out:
    the status still says what happened. Python's streams unbuffered (-u) and buffered."""
    from fakedet.cli import pipeout

    p, r, _ = _scan_into_a_small_pipe(tiny_weights, two_hundred, 1, same_pipe_for_stderr=same_pipe,
                                      unbuffered=unbuffered)
    elapsed = _signal_a_scan_whose_reader_stopped(p, r, getattr(signal, sig))
    assert p.returncode == status
    assert elapsed >= pipeout.GIVE_UP_S - 1  # the reader had its time
    if not same_pipe:
        err = p.stderr.read().decode()
        assert "its reader took nothing from stdout for" in err and "Traceback" not in err, err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets a pipe's size (Linux)")
def test_a_slow_reader_after_a_signal_keeps_every_record(tiny_weights, two_hundred):
    """After SIGTERM a reader that takes 100 bytes every 0.4 s (250 B/s: a shell loop handling a
    record or two a second) needs far longer than pipeout.GIVE_UP_S for what is left, and frees
    no whole 4 KiB page of the pipe in that time, so no chunk of the scan's goes out for a
    while: it still gets every record, a whole json array, because the watcher counts the
    bytes the reader takes. Only a reader that takes nothing is given up on."""
    import re
    import time

    from fakedet.cli import pipeout

    p, r, got = _scan_into_a_small_pipe(tiny_weights, two_hundred, 5, unbuffered=False)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    while True:
        chunk = os.read(r, 100)
        if not chunk:
            break
        got += chunk
        time.sleep(0.4)
    os.close(r)
    p.wait(60)
    assert time.monotonic() - t0 > pipeout.GIVE_UP_S  # longer than the give-up, not cut
    err = p.stderr.read().decode()
    assert p.returncode == 143, err
    records = json.loads(got)
    assert f"terminated after {len(records)} records" in err and len(records) % 5 == 0, err
    assert re.search(r"took nothing", err) is None


_LOST_CTRL_C = """
import sys
from fakedet.cli import common, install_streams
install_streams()
with common.handle_signals():
    try:
        print("ready", flush=True)
        for _ in range(100000):
            common.err("x" * 1000)  # stderr: a pipe its reader stops reading, then closes
    except KeyboardInterrupt:
        common.err("interrupted")  # as the command says it (stderr is gone: quietly)
        print("interrupted", flush=True)
        sys.exit(130)
print("no interruption seen", flush=True)
"""


@pytest.mark.skipif(os.name == "nt", reason="pipeout is not installed on Windows")
def test_a_ctrl_c_during_a_message_whose_reader_then_goes_away_still_stops_the_command():
    """Ctrl-C while a message to a full stderr waits; then stderr's reader goes away (as it
    does when the same Ctrl-C reaches it) and the write fails. The message's error used to
    take the interruption with it (err() passes over a message it cannot write): the command
    ran on to its end. The interruption now stops it."""
    import time

    p = subprocess.Popen([sys.executable, "-c", _LOST_CTRL_C], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=_interruptible)
    assert p.stdout.readline() == b"ready\n"
    time.sleep(1)  # stderr fills; the child waits in a write
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    p.stderr.close()  # the write fails: EPIPE
    out = p.stdout.read()
    p.wait(60)
    assert (p.returncode, out) == (130, b"interrupted\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets a pipe's size (Linux)")
def test_ctrl_c_while_info_waits_on_a_full_pipe_whose_reader_then_goes_away(tiny_weights):
    """``fakedet info`` waits to write into a full pipe, gets Ctrl-C, and the reader then goes
    away (it got the same Ctrl-C): status 130 and one message. The failed bytes stayed in
    stdout's buffer and the interpreter's last flush failed on them again: status 120 and an
    'Exception ignored ... BrokenPipeError' on stderr."""
    import time

    r, w = _small_pipe()
    os.write(w, b"x" * 4096)  # full
    p = fakedet("info", "-w", str(tiny_weights), stdout_to=w, unbuffered=False)
    os.close(w)
    time.sleep(3)  # (it loads, then waits in its write)
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    os.close(r)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert b"Exception ignored" not in err and b"Traceback" not in err, err


_MANY_WRITES = """
import signal, sys, time
from fakedet.cli import common, pipeout
pipeout.install(common.uninterrupted)
t_end, i = time.monotonic() + float(sys.argv[1]), 0
with common.handle_signals():
    open(sys.argv[2], "w").close()  # the handlers are in place: the parent may start signalling
    while time.monotonic() < t_end:
        try:  # an interruption can also land outside the write: this child may end in a traceback
            lines = "".join("%09d\\n" % k for k in range(i, i + 1000))  # 10 KB a write
            i += 1000  # made or not (a gap is allowed), a line must never come out twice
            sys.stdout.write(lines)
        except KeyboardInterrupt:
            pass
"""


@pytest.mark.skipif(os.name == "nt", reason="pipeout is not installed on Windows")
def test_signals_during_writes_to_a_pipe_never_repeat_a_line(tmp_path):
    """Ctrl-C every half millisecond while stdout, a pipe read at full speed, takes 10 KB
    writes. A handler that raised just after a chunk went out, before the buffer counted it,
    made the buffer send that chunk again (a review counted thousands of repeated lines): every
    write is now one piece for the handlers, so each line comes out once, in order."""
    import threading
    import time

    ready = tmp_path / "ready"
    p = subprocess.Popen([sys.executable, "-c", _MANY_WRITES, "3", str(ready)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=_interruptible)

    def pester():
        # from when the child's handlers are in place (a signal during its start-up, which a
        # loaded machine can stretch past any fixed wait, ends it before it writes a line)
        while not ready.exists() and p.poll() is None:
            time.sleep(0.01)
        time.sleep(0.2)
        while p.poll() is None:
            try:
                p.send_signal(signal.SIGINT)
            except ProcessLookupError:
                break
            time.sleep(0.0005)

    threading.Thread(target=pester, daemon=True).start()
    out, err = p.communicate(timeout=60)
    assert p.returncode in (0, 1, -signal.SIGINT) and b"Error" not in err.replace(b"KeyboardInterrupt", b""), err
    numbers = [int(line) for line in out.split()]
    assert len(numbers) > 10000 and all(len(line) == 9 for line in out.split())
    assert numbers == sorted(set(numbers)), "a line came out twice or out of order"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
@pytest.mark.parametrize("named", [False, True])
def test_named_pipe_does_not_hang_the_scan(tiny_weights, tmp_path, named):
    write_image(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    target = tmp_path / "pipe.jpg" if named else tmp_path
    args = ["scan", "-w", str(tiny_weights), str(target), *([str(tmp_path / "a.jpg")] if named else [])]
    r = subprocess.run([sys.executable, "-m", "fakedet", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    rows = {os.path.basename(line.split("\t")[0]): line.split("\t") for line in r.stdout.splitlines()}
    assert rows["pipe.jpg"][1:] == ["", "", "not a regular file (named pipe)"]
    assert 0.0 <= float(rows["a.jpg"][1]) <= 1.0


def _signal_another_thread(pid: int, sig) -> bool:
    """tgkill(2) ``sig`` to a thread of ``pid`` other than its main one; False where that cannot
    be done (no such thread yet, or an architecture whose syscall number is not known here)."""
    import ctypes
    import platform

    nr = {"x86_64": 234, "aarch64": 131}.get(platform.machine())
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    except OSError:
        return False
    if nr is None or not tids:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(nr, pid, min(tids), int(sig)) == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
@pytest.mark.parametrize("sig, status, fmt, empty, extra", [
    (signal.SIGINT, 130, "json", b"[]\n", []),
    (signal.SIGTERM, 143, "csv", b"path,p_fake,label,error\n", []),
    (signal.SIGINT, 130, "json", b"[]\n", ["-o", "/dev/stdout"]),  # stdout by another name: the same
])
def test_a_signal_while_the_model_loads_acts_at_once(tiny_weights, many, sig, status, fmt, empty, extra):
    """The model loads in a background thread; the signal may be delivered to that thread, and a
    main thread blocked in a plain wait used to act only once torch was imported (seconds). Its
    exit must not run libtorch's destructors under the loading thread either (SIGABRT)."""
    import time

    p = fakedet("scan", "--format", fmt, "-w", str(tiny_weights), "-j", "2", *extra, str(many))
    maps = f"/proc/{p.pid}/maps"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        try:
            with open(maps) as fh:
                if "libtorch" in fh.read():  # import torch has begun
                    break
        except OSError:
            pass
        time.sleep(0.005)
    t0 = time.monotonic()
    # The kernel usually hands a process's signal to its main thread, where a plain wait would
    # be interrupted anyway; aim it at another thread (the loader or a decoder), the case to test.
    if not _signal_another_thread(p.pid, sig):
        p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert p.returncode == status, err
    # "At once" is measured against the wait it replaces, the rest of `import torch`, timed now on
    # the same machine under the same load: a process that acted only after the import would take
    # nearly all of it. An absolute bound failed on a loaded 2-core machine (1.16 s for 1.0 s).
    t1 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, timeout=120)
    import_s = time.monotonic() - t1
    assert elapsed < max(1.0, 0.5 * import_s), f"took {elapsed:.2f} s to stop (import torch: {import_s:.2f} s)"
    assert out == empty, out  # a whole document on stdout: json's [], csv's header
    assert b"Traceback" not in err and b"terminate called" not in err


_BREAK_IMPORT = """
import sys
KIND = sys.argv[1]
class Breaker:  # an import of the CLI that ends in a Ctrl-C, or an error it caused, or another error
    def find_spec(self, name, path=None, target=None):
        if name == "fakedet.cli":
            if KIND == "interrupt":
                raise KeyboardInterrupt
            if KIND == "wrapped":
                try:
                    raise KeyboardInterrupt
                except KeyboardInterrupt as exc:
                    raise RuntimeError("an import cut short") from exc
            raise ValueError("a broken install")
sys.meta_path.insert(0, Breaker())
sys.argv = ["fakedet", "--version"]
from fakedet.__main__ import main
main()
"""


@pytest.mark.parametrize("kind", ["interrupt", "wrapped"])
def test_ctrl_c_while_the_cli_imports_exits_130_without_a_traceback(kind):
    """``python -m fakedet`` and the ``fakedet`` command start in fakedet.__main__.main, which
    imports the CLI before its signal handling exists: a Ctrl-C there still ends as one later
    does."""
    r = subprocess.run([sys.executable, "-c", _BREAK_IMPORT, kind], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 130, r.stderr
    assert r.stderr == "fakedet: interrupted\n"


def test_other_errors_while_the_cli_imports_are_not_taken_for_ctrl_c():
    r = subprocess.run([sys.executable, "-c", _BREAK_IMPORT, "other"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 70  # not 1, which --exit-code gives to "labelled fake"
    assert "Traceback" in r.stderr and "ValueError: a broken install" in r.stderr


def test_the_fakedet_command_starts_where_python_m_fakedet_does():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "fakedet"]
    assert ep.value == "fakedet.__main__:main"


_WATCH_TORCH = """
import os, sys, threading
class Watch:  # notes which thread imports torch first
    seen = False
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not Watch.seen:
            Watch.seen = True
            with open(os.environ["FAKEDET_TEST_TORCH_THREAD"], "w") as fh:
                fh.write("main" if threading.current_thread() is threading.main_thread() else "other")
sys.meta_path.insert(0, Watch())
sys.argv = ["fakedet", *sys.argv[1:]]
from fakedet.__main__ import main
main()
"""


@pytest.mark.parametrize("command", ["scan", "scan-faces", "explain", "eval"])
def test_no_command_imports_torch_in_the_main_thread(tiny_weights, many, tmp_path, command):
    """The CLI raises Ctrl-C and SIGTERM in the main thread. Raised there during ``import torch``
    an interruption can land in Python code that libtorch's C++ runs (``torch._C._c10d_init``),
    where it cannot be handled: the process aborted (SIGABRT, no output) when a SIGTERM came
    1.4 s into a face-mode scan. So every command loads its model in another thread. A signal
    cannot be aimed at that moment reliably; the test checks the thread instead."""
    if command == "eval":
        (tmp_path / "data").mkdir()
        args = ["eval", "-j", "0", str(_eval_folder(many, tmp_path / "data"))]
    else:
        args = {"scan": ["scan", str(many)], "scan-faces": ["scan", "--faces", str(many)],
                "explain": ["explain", "--no-faces", "--grid", "2", str(many / "000.jpg"),
                            "-o", str(tmp_path / "x")]}[command]
    record = tmp_path / "thread"
    r = subprocess.run([sys.executable, "-c", _WATCH_TORCH, *args, "-w", str(tiny_weights)],
                       env=dict(os.environ, FAKEDET_TEST_TORCH_THREAD=str(record)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1, 3), r.stderr[-3000:]  # scored (0/3: verdicts, eval: 0/1)
    assert record.read_text() == "other"


_SETTLED = """
import os, signal, sys
from fakedet.cli.common import handle_signals, settled
with handle_signals():
    settled()
    os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode: no Terminated
    sum(range(1000))
    print("survived", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # a second one ends the process by default
    import time
    time.sleep(5)
    print("not reached", flush=True)
"""


def test_a_signal_after_the_work_is_done_does_not_raise_and_a_second_ends_the_process():
    r = subprocess.run([sys.executable, "-c", _SETTLED], capture_output=True, text=True, timeout=60)
    assert r.stdout == "survived\n" and r.returncode == -signal.SIGTERM, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr


_ENDING = """
import os, signal, sys, time
from fakedet.cli import common
# as a command started from a shell has them (under nohup SIGHUP starts ignored, and stays so)
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
with common.handle_signals(ending=True):
    pass
if sys.argv[1] == "known":
    common.ending_status(3)  # as fakedet's main does once its command returned
print("ending", flush=True)
os.kill(os.getpid(), int(sys.argv[2]))
time.sleep(5)
print("not reached", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
@pytest.mark.parametrize("known", ["known", "unknown"])
def test_a_signal_while_the_process_ends_keeps_the_status_of_the_finished_work(sig, known):
    """A Ctrl-C in the few tenths of a second that the interpreter and libtorch take to exit
    turned a finished scan's status into 130 with nothing said (a new user saw it in one of
    three tries): it now ends the process at once with the work's status; before that status
    is known, by the signal's default action."""
    r = subprocess.run([sys.executable, "-c", _ENDING, known, str(int(sig))], capture_output=True, text=True,
                       timeout=60)
    assert r.stdout == "ending\n", r.stderr
    assert r.returncode == (3 if known == "known" else -sig), r.stderr


_LAST_EXIT_HANDLER = """
import os, signal, sys, time
from fakedet.cli import common
# default actions, whatever this child inherited (a background job starts with SIGINT ignored)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_DFL)
if sys.argv[1] == "known":
    common.ending_status(3)
common.ignore_signals_at_exit()  # what fakedet's main has run last, as Python finalises
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    os.kill(os.getpid(), sig)
time.sleep(0.2)
print("survived", flush=True)
sys.exit(5)
"""


@pytest.mark.parametrize("known", ["known", "unknown"])
def test_signals_are_ignored_for_the_last_of_the_exit_once_the_status_is_known(known):
    """Python gives signals with handlers of its own their default action back as it finalises,
    and libtorch's destructors run after that: the last exit handler ignores them instead, and
    leaves the process's own status alone (5 here: a caller running main in its process keeps
    its status)."""
    r = subprocess.run([sys.executable, "-c", _LAST_EXIT_HANDLER, known], capture_output=True, text=True,
                       timeout=60)
    if known == "known":
        assert (r.returncode, r.stdout) == (5, "survived\n"), r.stderr
    else:
        assert r.returncode == -signal.SIGINT and r.stdout == "", r.stderr


def test_main_registers_the_last_exit_handler_first(monkeypatch):
    import atexit

    import fakedet.cli as fc

    seen = []
    monkeypatch.setattr(atexit, "register", lambda f, *a, **k: seen.append(f))
    monkeypatch.setattr(fc, "_main", lambda: seen.append("command") or 0)
    monkeypatch.setattr(fc, "_exit", lambda code: seen.append(("exit", code)))
    fc.main()
    assert seen == [fc.ignore_signals_at_exit, "command", ("exit", 0)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_just_after_the_summary_ends_cleanly(tiny_weights, many, sig):
    """A signal in the moment after the summary used to land in a thread pool's clean-up
    callback (a traceback, "Exception ignored", status 0) or in the restoring of the handlers
    (a traceback, status 1: "fake"): seen in about two of three tries by a new user. Now it has
    nothing left to stop: the scan's own status, 128 + N, or the signal's default action."""
    for _ in range(4):
        p = fakedet("scan", "-f", "json", "-w", str(tiny_weights), "-j", "2", str(many))
        seen = b""
        while b"images:" not in seen:  # the summary line on stderr
            chunk = p.stderr.read(1)
            if not chunk:
                break
            seen += chunk
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        err = seen + err
        assert p.returncode in (0, 128 + sig, -sig), (p.returncode, err)
        assert b"Traceback" not in err and b"Exception ignored" not in err, err
        assert len(json.loads(out)) == 60


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_a_stdout_that_is_not_utf8_loses_no_record_to_a_file_name(tiny_weights, tmp_path, encoding, fmt):
    """A stdout in another encoding (a Windows code page, PYTHONIOENCODING) writes what it
    cannot hold as its JSON escape: every record comes out, and jsonl parses back to the name."""
    names = ["uni_é中.jpg", "smile_😀.jpg", "plain.jpg"]
    for i, n in enumerate(names):
        write_image(tmp_path / n, size=(64, 64), seed=i)
    env = dict(os.environ, PYTHONIOENCODING=encoding)
    out = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-q", "-w", str(tiny_weights), "-f", fmt,
                          *(str(tmp_path / n) for n in names)], env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    lines = out.stdout.decode(encoding).splitlines()
    assert len(lines) == 3
    if fmt == "jsonl":
        assert [os.path.basename(json.loads(x)["path"]) for x in lines] == names
    else:
        assert lines[1].startswith(str(tmp_path / "smile_\\ud83d\\ude00.jpg") + "\t")


def _close_stderr():
    _interruptible()
    os.close(2)


@pytest.mark.parametrize("command", ["scan", "eval"])
def test_a_closed_stderr_costs_nothing_but_the_messages(tiny_weights, tmp_path, command):
    """``2>&-`` (cron, daemons): the records and the exit status are as with stderr open (was an
    AttributeError on the progress check, exit 70, its traceback in the records' file)."""
    write_image(tmp_path / "real" / "a.jpg", size=(64, 64))
    out = tmp_path / "records.txt"
    target = tmp_path / "real" if command == "scan" else tmp_path  # eval reads real/ and fake/ in it
    args = [sys.executable, "-m", "fakedet", command, "-w", str(tiny_weights), str(target)]
    done = subprocess.run(args + (["-o", str(out)] if command == "scan" else []), preexec_fn=_close_stderr,
                          stdout=subprocess.PIPE, timeout=120)
    assert done.returncode == 0
    text = out.read_text() if command == "scan" else done.stdout.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1 and "a.jpg" in text if command == "scan" else "bal.acc" in text


@pytest.mark.parametrize("name, status", [("a.jpg", 0), ("missing.jpg", 3)])
def test_a_stderr_whose_reader_is_gone_keeps_the_exit_status(tiny_weights, tmp_path, name, status):
    """stderr a pipe whose reader has gone (``2>&1 | head -1``, a log collector that died): the
    summary's write fails, and the interpreter's last flush failed on it again and ended the
    scan with Python's status 120 instead of 0 (or 3)."""
    write_image(tmp_path / "a.jpg", size=(64, 64))
    r, w = os.pipe()
    os.close(r)
    try:
        done = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), str(tmp_path / name)],
                              stdout=subprocess.PIPE, stderr=w, timeout=120)
    finally:
        os.close(w)
    assert done.returncode == status
    assert done.stdout.count(b"\n") == 1 and name.encode() in done.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_failed_load_ends_at_once_while_the_list_of_paths_waits(tmp_path):
    """--files-from a FIFO whose writer sends nothing yet, and weights that cannot be loaded: the
    error ends the scan at once (closing the list would wait for the reader thread's read)."""
    fifo = tmp_path / "list"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"sleep 30 > '{fifo}'"])
    try:
        p = fakedet("scan", "--files-from", str(fifo), "-w", str(tmp_path / "missing.safetensors"))
        out, err = p.communicate(timeout=20)
        assert p.returncode == 2 and b"weights file not found" in err, err
    finally:
        writer.kill()
        writer.wait()


def test_a_program_that_runs_main_in_its_own_process_keeps_its_exit_status():
    """main's exit handling must not decide the status of a process that caught its SystemExit
    and went on (a test suite: an earlier exit handler that ended the process with main's
    status made the suite's own run end with 70)."""
    code = ("import sys\nfrom fakedet.cli import main\nsys.argv = ['fakedet', 'info', '-w', 'missing.safetensors']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 2, e.code\nsys.exit(7)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 7, r.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_usage_error_whose_stderr_cannot_be_written_is_still_status_2():
    """The message cannot be shown (stderr full or closed): the status must still say "usage
    error", not 1 ("fake found"), which the failed traceback used to give."""
    with open("/dev/full", "wb") as full:
        p = fakedet("scan", "--exit-code", "--bogus", stderr_to=full)
        p.communicate(timeout=60)
    assert p.returncode == 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_weights_that_fail_to_load_end_the_scan_while_the_list_of_paths_waits(tiny_weights, tmp_path):
    """Weights whose header is fine but whose tensors do not fit the model fail only once the
    model loads, in the background while the first inputs decode: with a list of paths that has
    sent nothing yet, the error must still end the scan at once (it waited for the first path)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_weights), "pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    key = next(k for k, v in tensors.items() if v.ndim == 4)
    tensors[key] = tensors[key][:1, :1, :1, :1].clone()
    bad = tmp_path / "wrong-shape.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    fifo = tmp_path / "list"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"sleep 30 > '{fifo}'"])
    try:
        p = fakedet("scan", "-j", "2", "--files-from", str(fifo), "-w", str(bad))
        out, err = p.communicate(timeout=20)
        assert p.returncode == 2, err
    finally:
        writer.kill()
        writer.wait()


_RUN_CLI = """
from fakedet.__main__ import main
sys.argv = ["fakedet", *sys.argv[1:]]
main()
"""
SLOW_BATCHES = """
import sys, time
import fakedet.inference.pipeline as pipeline
_prepare = pipeline.prepare_batch
def slow(batch, task):  # the third batch of 4 as slow as a big batch of faces, the others at once
    if any(item.path.endswith("008.jpg") for item in batch):
        time.sleep(60)
    return _prepare(batch, task)
pipeline.prepare_batch = slow
""" + _RUN_CLI


def _patched_scan(script: str, weights, folder) -> subprocess.Popen:
    """``fakedet scan -f json -j 1 -b 4 FOLDER`` in a child that ``script`` slows down first."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-c", script, "scan", "-f", "json", "-w", str(weights),
                             "-j", "1", "-b", "4", str(folder)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0, preexec_fn=_interruptible)


def _signal_and_wait(p: subprocess.Popen, sig, status: int) -> tuple:
    """Sends ``sig``; the child must end with ``status`` within 5 s. Its stdout and stderr."""
    import time

    t0 = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    took = time.monotonic() - t0
    assert p.returncode == status, err
    assert took < 5, f"{took:.1f} s after the signal"
    assert b"Traceback" not in err
    return out, err


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_does_not_wait_for_a_batch_still_being_decoded(tiny_weights, many, sig, status):
    """A decoding thread part-way through a slow batch (MTCNN over a batch of faces, 8000 px
    photos: many seconds) is not waited for: the command ends at once with its records closed,
    well inside the 10 s that ``docker stop`` gives before SIGKILL."""
    import time

    p = _patched_scan(SLOW_BATCHES, tiny_weights, many)
    seen = b""
    while seen.count(b'"path"') < 7:  # the first two batches' records (json holds the last back
        line = p.stdout.readline()       # until it knows whether a comma or "]" follows it)
        if not line:
            break
        seen += line
    assert seen.count(b'"path"') == 7, seen
    time.sleep(0.5)  # the third batch is being decoded (asleep in its thread)
    out, _ = _signal_and_wait(p, sig, status)
    records = json.loads(seen + out)  # the array was closed
    assert len(records) == 8
    assert [os.path.basename(r["path"]) for r in records] == [f"{i:03d}.jpg" for i in range(len(records))]


SLOW_LOAD = """
import sys, time
import fakedet.inference.pipeline as pipeline
from fakedet.inference.detector import Detector
_prepare, _load = pipeline.prepare_batch, Detector.load.__func__
def slow(batch, task):  # every batch as slow as a big batch of faces; says when one begins
    print("decoding a batch", file=sys.stderr, flush=True)
    time.sleep(60)
    return _prepare(batch, task)
def slow_load(cls, *a, **kw):  # a model that takes a while to load (a CPU with a big model)
    time.sleep(10)
    return _load(cls, *a, **kw)
pipeline.prepare_batch = slow
Detector.load = classmethod(slow_load)
""" + _RUN_CLI


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_the_model_loads_does_not_wait_for_a_batch_being_decoded(tiny_weights, many, sig, status):
    """Batches are decoded while the model loads; a signal then ends the scan at once, with an
    empty json array, not when the batch being decoded is done."""
    p = _patched_scan(SLOW_LOAD, tiny_weights, many)
    first = p.stderr.readline()
    assert first == b"decoding a batch\n", first
    out, _ = _signal_and_wait(p, sig, status)
    assert json.loads(out) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets a pipe's size (Linux)")
@pytest.mark.parametrize("to", ["fifo", "/dev/stdout"])
def test_one_signal_ends_a_scan_whose_o_pipe_reader_stopped_reading(tiny_weights, two_hundred, tmp_path, to):
    """`-o` naming a pipe (a named pipe, or /dev/stdout on a pipe) is given up on after a signal
    as stdout is: its records used to go through a plain file object the give-up never saw,
    and one signal left the scan blocked for ever (code review)."""
    import fcntl
    import time

    from fakedet.cli import pipeout

    if to == "fifo":
        fifo = tmp_path / "records"
        os.mkfifo(fifo)
        p = fakedet("scan", "-f", "json", "-w", str(tiny_weights), "-j", "1", "-b", "1", "-o", str(fifo),
                    str(two_hundred), stdout_to=subprocess.DEVNULL)
        r = os.open(fifo, os.O_RDONLY)  # waits for the scan's open
        fcntl.fcntl(r, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
        name = str(fifo)
    else:
        r, w = _small_pipe()
        p = fakedet("scan", "-f", "json", "-w", str(tiny_weights), "-j", "1", "-b", "1", "-o", "/dev/stdout",
                    str(two_hundred), stdout_to=w)
        os.close(w)
        name = "stdout"
    os.read(r, 1024)  # the scan is writing; the pipe fills behind this read
    time.sleep(3)
    assert p.poll() is None, "the scan ended before the signal"
    elapsed = _signal_a_scan_whose_reader_stopped(p, r, signal.SIGTERM)
    err = p.stderr.read().decode()
    assert p.returncode == 143, err
    assert elapsed >= pipeout.GIVE_UP_S - 1
    assert f"its reader took nothing from {name} for" in err and "Traceback" not in err, err


@pytest.mark.parametrize("sig, status, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_ends_a_scan_waiting_for_its_o_named_pipes_reader(tiny_weights, many, tmp_path, sig, status,
                                                                   word):
    """A named pipe given to -o that no reader opens: the scan waits for one, and a signal ends
    the wait (Ctrl-C used to be held back by the write the open was in, for ever)."""
    import time

    fifo = tmp_path / "records"
    os.mkfifo(fifo)
    p = fakedet("scan", "-w", str(tiny_weights), "-j", "1", "-o", str(fifo), str(many))
    time.sleep(4)
    assert p.poll() is None
    p.send_signal(getattr(signal, sig))
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("a signal did not end a scan waiting for its -o named pipe's reader")
    err = p.stderr.read().decode()
    assert p.returncode == status and word in err and "Traceback" not in err, err


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_o_dev_stdout_into_a_file_writes_the_records_there(tiny_weights, many, tmp_path, fmt):
    """-o /dev/stdout with stdout redirected to a file: the records land in it whole (jsonl by
    stdout itself, parquet by its path)."""
    pytest.importorskip("pyarrow") if fmt == "parquet" else None
    out = tmp_path / f"out.{fmt}"
    with open(out, "wb") as fh:
        p = fakedet("scan", "-q", "-f", fmt, "-w", str(tiny_weights), "-j", "1", "-o", "/dev/stdout", str(many),
                    stdout_to=fh)
        err = p.communicate(timeout=120)[1].decode()
    assert p.returncode == 0, err
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(out).num_rows == 60
    else:
        assert len(out.read_text().splitlines()) == 60


def test_a_scan_with_no_images_and_an_o_named_pipe_ends_at_once(tiny_weights, tmp_path):
    """A named pipe given to -o is opened at the first record, as a file is: a scan that finds no
    image says so and ends (status 2) without waiting for a reader (review)."""
    fifo = tmp_path / "records"
    os.mkfifo(fifo)
    empty = tmp_path / "empty"
    empty.mkdir()
    p = fakedet("scan", "-w", str(tiny_weights), "-j", "0", "-o", str(fifo), str(empty))
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("a scan with no images waited for its -o named pipe's reader")
    assert p.returncode == 2 and b"no images found" in err, err
    # a reader already waiting on the pipe gets its end, not a wait for ever (review)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    import time

    time.sleep(0.5)  # cat waits in its open
    p = fakedet("scan", "-w", str(tiny_weights), "-j", "0", "-o", str(fifo), str(empty))
    p.communicate(timeout=60)
    try:
        assert reader.communicate(timeout=20)[0] == b""
    except subprocess.TimeoutExpired:
        reader.kill()
        pytest.fail("the pipe's reader waited for ever after a scan that wrote nothing")


_PARQUET_ROW_BY_ROW = """
import sys
from fakedet.data import writers
writers.PARQUET_ROWS = 1  # a row group per record: one is on disk soon after the scan starts
from fakedet.cli import main
sys.argv = ["fakedet", *sys.argv[1:]]
main()
"""


def test_a_parquet_scan_killed_outright_leaves_the_earlier_file_whole(tiny_weights, two_hundred, tmp_path):
    """A persona's rerun with -f parquet -o FILE, killed (SIGKILL, out of memory) after its first
    row group, left FILE at 0 bytes: the earlier complete file was gone and the new one, without
    its footer, unreadable. The file is now written under a temporary name and renamed when whole;
    the temporary file a killed run leaves is removed by a later run in the folder, once stale."""
    import time

    pq = pytest.importorskip("pyarrow.parquet")
    from fakedet.cli import main  # noqa: F401 (the entry point the child runs)

    out = tmp_path / "scores.parquet"
    r = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-q", "-f", "parquet", "-o", str(out),
                        "-w", str(tiny_weights), str(two_hundred / "000.jpg"), str(two_hundred / "001.jpg")],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    before = out.read_bytes()
    assert len(pq.read_table(out)) == 2
    p = subprocess.Popen([sys.executable, "-c", _PARQUET_ROW_BY_ROW, "scan", "-q", "-f", "parquet", "-o", str(out),
                          "-w", str(tiny_weights), "--files-from", "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(f"{two_hundred / '002.jpg'}\n{two_hundred / '003.jpg'}\n".encode())
        p.stdin.flush()  # the list stays open: the scan waits for more
        deadline = time.monotonic() + 60
        parts: list = []
        while time.monotonic() < deadline and p.poll() is None and not any(x.stat().st_size > 4 for x in parts):
            time.sleep(0.05)
            parts = list(tmp_path.glob(".fakedet-*.part"))
        assert parts and p.poll() is None, p.stderr.read() if p.poll() is not None else "no row group written"
        p.kill()
        p.wait(30)
    finally:
        p.kill()
    assert out.read_bytes() == before  # the earlier run's file, whole
    (part,) = parts
    old = time.time() - 2 * 3600
    os.utime(part, (old, old))  # a killed run's, stale
    r = subprocess.run([sys.executable, "-m", "fakedet", "scan", "-q", "-f", "parquet", "-o", str(out),
                        "-w", str(tiny_weights), str(two_hundred / "004.jpg")], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert not part.exists() and not list(tmp_path.glob(".fakedet-*"))
    assert [os.path.basename(x) for x in pq.read_table(out).column("path").to_pylist()] == ["004.jpg"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the TIFF library is found in /proc/self/maps")
def test_quiet_silences_what_the_tiff_library_prints_about_a_damaged_file(tiny_weights, tmp_path):
    """-q means nothing on stderr; a damaged fax TIFF had libtiff print dozens of lines there,
    without the file's name (its record says what was found)."""
    import numpy as np
    from PIL import Image

    path = tmp_path / "fax.tif"
    Image.fromarray((np.random.default_rng(0).random((200, 200)) > 0.5)).save(path, compression="group4")
    data = bytearray(path.read_bytes())
    for i in range(20, min(len(data) - 200, 2000), 7):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))
    args = [sys.executable, "-m", "fakedet", "scan", "-w", str(tiny_weights), "-j", "0", str(path)]
    loud = subprocess.run(args, capture_output=True, timeout=120)
    assert b"Fax4Decode" in loud.stderr, loud.stderr  # the library's own lines, without -q
    quiet = subprocess.run([*args, "-q"], capture_output=True, timeout=120)
    assert quiet.stderr == b"" and quiet.stdout.startswith(str(path).encode()), quiet.stderr
