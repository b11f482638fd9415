"""benchmarks/startup_signals.py, small: a face-mode scan stopped during start-up, three times.

Run as a script (benchmarks/ are drivers, not a package). The full-size figures are in
docs/reliability.md.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "startup_signals.py"

pytestmark = pytest.mark.slow  # starts fakedet three times


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_signals_during_start_up_stop_the_scan_cleanly(tiny_weights, tmp_path, sig):
    out = tmp_path / "s.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--runs", "3", "--signal", sig, "--from", "0.3", "--to", "1.0",
                        "-w", str(tiny_weights), "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    counts = res["counts"]
    assert res["runs"] == 3 and sum(counts.values()) == 3 and res["signal"] == "SIG" + sig
    assert counts["crashed"] == counts["hung"] == 0
    # a moment within the first second lands in start-up: fakedet's handler, or Python's own
    # before it exists; never a finished scan of 40 face-mode images
    assert counts["stopped"] + counts["default action"] == 3
    assert all(d["signal_sent"] for d in res["runs_detail"])


def test_a_bad_window_is_a_usage_error():
    r = subprocess.run([sys.executable, str(SCRIPT), "--from", "2", "--to", "1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "--from" in r.stderr


def test_an_interrupted_command_whose_threads_still_run_ends_at_once():
    """A second Ctrl-C can cut short the joining of a scan's threads; the interpreter's shutdown
    would then wait for them, or abort under libtorch's threads (status 134). An interrupted
    command with threads left ends at once, with its own status, its output flushed."""
    code = ("import threading, time, sys\n"
            "from fakedet.cli import _exit\n"
            "threading.Thread(target=time.sleep, args=(60,)).start()\n"
            "sys.stdout.write('last record\\n')\n"
            "_exit(130)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (130, "last record\n")
