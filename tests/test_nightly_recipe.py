"""The nightly job of docs/cli.md, run as written: what makes it move its stamp, and what it
appends. A persona's run of it lost a night's uploads for good when the weights were missing
(status 2 passed its check) and glued a record onto half of one after a full disk."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_image

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform != "linux" or not (shutil.which("sed") and shutil.which("flock")),
                                 reason="the recipe is a Linux shell script (GNU sed, util-linux flock)")]

REPO = Path(__file__).resolve().parents[1]


def recipe() -> str:
    """The shell block of docs/cli.md that keeps the stamp ``.last-scan``."""
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "docs" / "cli.md").read_text(), re.S)
    (block,) = [b for b in blocks if ".last-scan" in b]
    return block


@pytest.fixture
def job(tmp_path, tiny_weights):
    """A job folder with the recipe as ``nightly.sh`` and ``fakedet`` on PATH."""
    (tmp_path / "nightly.sh").write_text(recipe())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "fakedet"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fakedet "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               FAKEDET_WEIGHTS=str(tiny_weights))

    def run(**extra_env) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "nightly.sh"], cwd=tmp_path, env={**env, **extra_env},
                              capture_output=True, text=True, timeout=300)

    return tmp_path, run


def records(folder: Path) -> list:
    return [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]


def upload(folder: Path, name: str, seed: int) -> None:
    write_image(folder / "uploads" / name, size=(64, 64), seed=seed)


def test_each_night_appends_the_new_files_only(job):
    folder, run = job
    upload(folder, "a.jpg", 1)
    upload(folder, "b.jpg", 2)
    assert run().returncode == 0
    assert sorted(r["path"] for r in records(folder)) == ["uploads/a.jpg", "uploads/b.jpg"]
    upload(folder, "c.jpg", 3)
    assert run().returncode == 0
    assert [r["path"] for r in records(folder)][2:] == ["uploads/c.jpg"]


def test_a_scan_that_fails_keeps_the_stamp_so_the_next_night_scans_its_files(job):
    folder, run = job
    upload(folder, "a.jpg", 1)
    assert run().returncode == 0
    stamp = (folder / ".last-scan").stat().st_mtime_ns
    upload(folder, "b.jpg", 2)
    r = run(FAKEDET_WEIGHTS=str(folder / "missing.safetensors"))  # status 2: nothing scored
    assert r.returncode != 0 and "missing.safetensors" in r.stderr
    assert (folder / ".last-scan").stat().st_mtime_ns == stamp
    assert run().returncode == 0
    assert [r["path"] for r in records(folder)] == ["uploads/a.jpg", "uploads/b.jpg"]


def test_half_a_record_left_by_a_killed_run_is_taken_off_before_appending(job):
    folder, run = job
    upload(folder, "a.jpg", 1)
    assert run().returncode == 0
    with open(folder / "scores.jsonl", "a") as fh:
        fh.write('{"path": "uplo')  # a run killed mid-write
    upload(folder, "b.jpg", 2)
    assert run().returncode == 0
    assert [r["path"] for r in records(folder)] == ["uploads/a.jpg", "uploads/b.jpg"]


def test_a_second_run_while_one_is_going_does_nothing(job):
    """A review: a run that started while the last one still wrote took off the end of its file
    (half of the record being written) and replaced the file under it."""
    import fcntl

    folder, run = job
    upload(folder, "a.jpg", 1)
    with open(folder / ".nightly.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the run still going
        r = run()
    assert r.returncode == 0 and not (folder / "scores.jsonl").exists() and not (folder / ".last-scan").exists()
    assert run().returncode == 0
    assert [r["path"] for r in records(folder)] == ["uploads/a.jpg"]
