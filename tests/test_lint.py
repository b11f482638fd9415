"""The repository passes its own lint rules (``[tool.ruff]`` in pyproject.toml).

ruff comes with the test extra, so CI (``CI=true``) always runs this check; elsewhere it skips
when ruff is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff():
    try:
        from ruff.__main__ import find_ruff_bin  # the ruff wheel's own locator

        return find_ruff_bin()
    except Exception:
        return shutil.which("ruff")


def test_ruff_check_is_clean():
    ruff = _ruff()
    if ruff is None:
        if os.environ.get("CI"):
            pytest.fail("no ruff in CI: the test extra must install it")
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    proc = subprocess.run([str(ruff), "check", "--no-cache", "--output-format", "concise", str(ROOT)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_ruff_reads_the_projects_rules():
    """The check above can fail, with the project's own rules: unsorted imports (I001, which
    ruff does not check unless configured to) are reported."""
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    proc = subprocess.run([str(ruff), "check", "--no-cache", "--stdin-filename", str(ROOT / "src" / "x.py"), "-"],
                          cwd=ROOT, input="import sys\nimport os\n\nprint(os, sys)\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "I001" in proc.stdout, proc.stdout + proc.stderr
