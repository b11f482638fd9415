"""benchmarks/face_mode.py, small: face mode against the default scan, on photos it makes.

Run as a script (benchmarks/ are drivers, not a package), with the shipped weights and face
expert, on three generated images made 320x240 by ``--resize``: one round, so that it checks what
the script reports, not how fast anything is.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "face_mode.py"

pytestmark = pytest.mark.slow  # loads the shipped model three times


def test_face_mode_is_timed_against_the_default_scan_on_resized_photos(tmp_path):
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", "PNG", size=(200, 300), seed=i)
    out = tmp_path / "speed.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--whole", "--rounds", "1", "--images", str(tmp_path / "in"),
                        "--n", "2", "--resize", "320x240", "--detect-side", "160", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["images"] == 2 and res["resize"] == "320x240"  # --n: the first two images
    assert res["detect_max_side"] == 160
    assert set(res["images_per_s"]) == {"network", "fused", "whole"}
    assert all(v > 0 for v in res["images_per_s"].values())
    ips = res["images_per_s"]
    assert res["ratio_fused_to_whole"] == pytest.approx(ips["fused"] / ips["whole"])
    assert res["ratio_network_to_whole"] == pytest.approx(ips["network"] / ips["whole"])
    assert res["faces_found"] == 0  # generated gradients and noise: no face
    assert "fused / whole:" in r.stdout


def test_cached_faces_find_each_image_s_faces_once(tiny_weights, tmp_path, monkeypatch):
    """--cached-faces: face mode's decode pipeline asks the cache, which calls the face finder
    once per image; the records are the same as without it."""
    import importlib.util

    from fakedet import Detector
    from fakedet.model import faces

    spec = importlib.util.spec_from_file_location("face_mode_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    paths = [write_image(tmp_path / f"{i}.jpg", size=(120, 90), seed=i) for i in range(2)]
    det = Detector.load(tiny_weights, device="cpu", faces=True, workers=0, expert=None)
    plain = det.predict(paths)
    calls = []
    find = faces.find_faces
    monkeypatch.setattr(faces, "find_faces", lambda img, detector=None: calls.append(img.size) or find(img, detector))
    bench.cache_faces()
    first, second = det.predict(paths), det.predict(paths)
    assert calls == [(120, 90), (120, 90)]
    assert [r.to_dict() for r in first] == [r.to_dict() for r in second] == [r.to_dict() for r in plain]
