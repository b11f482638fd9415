"""The fault-injection benchmark (benchmarks/faults.py), small: hostile files and signals.

The benchmark is run as a script, never imported (benchmarks/ are drivers, not a package): 200
entries, two -j/-b combinations plus the defaults, four signal runs. docs/reliability.md has the
full-size figures.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "faults.py"

pytestmark = [pytest.mark.slow,  # about a minute: builds a folder, starts fakedet seven times
              pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="the folder needs os.mkfifo (FIFOs)")]


@pytest.mark.parametrize("faces", [False, True], ids=["whole-image", "face-mode"])
def test_hostile_folder_and_signals(tiny_weights, tmp_path, faces):
    out = tmp_path / "faults.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--files", "200", "--quick", "--signal-runs", "4",
                        "--seed", "0", "-w", str(tiny_weights), "--json-out", str(out),
                        *(["--faces"] if faces else [])],
                       capture_output=True, text=True, timeout=900)
    assert out.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    s = res["summary"]
    assert s["files"] == 200 and s["hostile_share"] >= 0.10 and s["faces"] is faces
    # face mode reached fakedet: the scored records of every full run carry their faces (the
    # 200 entries include about 25 hostile ones, which get an error record and no faces)
    counts = s["face_mode_records"]
    assert len(counts) == 3 and len(set(counts)) == 1, counts
    assert (150 <= counts[0] < 200) if faces else counts[0] == 0, counts
    assert {"fifo", "self_link", "dangling_link", "bomb", "non_utf8_name", "zero_length"} <= set(s["by_kind"])
    assert s["full_runs"] == 3 and s["signal_runs"] == 4
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    # the script's verdict: every check passed (its failures say which did not)
    assert r.returncode == 0 and s["failures"] == 0, "\n".join(res["failures"]) or r.stdout[-3000:]
