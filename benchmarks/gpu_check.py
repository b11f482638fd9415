#!/usr/bin/env python
"""The checks that need a GPU, in one call of seven minutes at most: the CUDA tests (skipped
on the CPU-only machines the project is built on, so never run there), the shipped weights'
scores on CUDA against the CPU's, and the GPU throughput figure.

    python benchmarks/gpu_check.py --out gpu_out          # on a machine with CUDA
    PYTHONPATH=src python3 benchmarks/gpu_check.py ...    # without installing fakedet

Steps, each written under ``--out`` and summed up in the last lines printed:

1. ``tests.log``: pytest on ``tests/test_engine.py``, which holds the CUDA tests (CUDA against
   the CPU, with CPU and with GPU decoding) beside the engine's other tests.
2. ``summary.json``'s ``agreement``: the shipped weights on generated face crops and 1024 px
   photos, scored on the CPU and on CUDA (CPU decoding, and torchvision's GPU decoding): the
   largest difference in ``p_fake`` and how many verdicts differ; and face mode (MTCNN and the
   face expert) on the same images plus scikit-image's astronaut portrait when scikit-image is
   there (a real photo with a face; the project's own tests have no face image).
3. ``benchmark_cuda_*.json`` and ``benchmark.log``: ``benchmarks/benchmark.py --device cuda``
   (face crops and 1024 px JPEGs at ``--n``, 12 MP photos at ``--n-12mp``), no long scans,
   no memory or allocator runs.

Each step has a time limit (tests 2 minutes, benchmark runs 2.5 and 1.5; the agreement step,
about 200 images, has none) and ``summary.json`` is rewritten after each, so that a call
stopped from outside still returns what was done. The exit status is that of the tests (1 if
the CUDA checks could not run: no GPU). Everything it needs is in the repository and fakedet's
own requirements (torch, torchvision, pillow, numpy, click, tqdm, safetensors) plus pytest;
nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list, log: Path, timeout: int) -> int:
    """Runs ``cmd`` in the repository root, its output to ``log`` and to this process's stderr."""
    t0 = time.time()
    with open(log, "ab") as fh:
        fh.write(f"$ {' '.join(cmd)}\n".encode())
        fh.flush()
        try:
            p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
            out, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as exc:
            out, rc = (exc.stdout or b"") + f"\n(stopped after {timeout} s)\n".encode(), 124
        fh.write(out)
    sys.stderr.buffer.write(out[-4000:])
    sys.stderr.flush()
    print(f"{' '.join(cmd[:4])} ...: rc {rc}, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return rc


def astronaut(folder: Path) -> list:
    try:
        from skimage import data
    except ImportError:
        return []
    from PIL import Image

    path = folder / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=95)
    return [str(path)]


def agreement(folder: Path) -> dict:
    """The shipped weights' scores on CUDA against the CPU's, per decoder and in face mode."""
    from fakedet import Detector
    from fakedet.evaluation.synthetic import make_images

    paths = [str(p) for p in make_images(folder / "face", "face", 64) + make_images(folder / "1024", "1024", 32)]
    faces = paths[:16] + astronaut(folder)

    def scores(paths, **kw):
        recs = Detector.load(**kw).predict(paths)
        return [(r.p_fake, r.label, r.error) for r in recs]

    out = {}
    cpu = scores(paths, device="cpu")
    for decode in ("pil", "torch"):
        gpu = scores(paths, device="cuda", decode=decode)
        out[f"whole_image_decode_{decode}"] = _compare(cpu, gpu)
    out["faces"] = _compare(scores(faces, device="cpu", faces=True), scores(faces, device="cuda", faces=True))
    out["faces"]["astronaut"] = bool(len(faces) > 16)
    return out


def _compare(a: list, b: list) -> dict:
    both = [(x[0], y[0]) for x, y in zip(a, b) if x[0] is not None and y[0] is not None]
    return {"images": len(a), "scored_on_both": len(both),
            "errors_differ": sum((x[2] is None) != (y[2] is None) for x, y in zip(a, b)),
            "max_abs_p_fake_diff": max((abs(x - y) for x, y in both), default=None),
            "verdicts_differ": sum(x[1] != y[1] for x, y in zip(a, b))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu_out"))
    ap.add_argument("--n", type=int, default=500, help="face crops and 1024 px JPEGs per size")
    ap.add_argument("--n-12mp", type=int, default=40)
    ap.add_argument("--skip-benchmark", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env_src = str(ROOT / "src")
    os.environ["PYTHONPATH"] = env_src + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    sys.path.insert(0, env_src)
    import torch

    summary = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(json.dumps(summary), file=sys.stderr, flush=True)

    def save():
        (out / "summary.json").write_text(json.dumps(summary, indent=1))

    py = sys.executable
    summary["tests_rc"] = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/test_engine.py"],
                              out / "tests.log", 120)
    save()
    if not torch.cuda.is_available():
        print("no CUDA device: the CUDA checks did not run", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        try:
            summary["agreement"] = agreement(Path(tmp))
        except Exception as exc:  # reported, and the benchmark still runs
            summary["agreement"] = {"error": f"{type(exc).__name__}: {exc}"}
    save()
    if not args.skip_benchmark:
        bench = [py, "benchmarks/benchmark.py", "--device", "cuda", "--no-long", "--memory", "", "--no-malloc",
                 "--no-fusion"]
        summary["benchmark_rc"] = [
            run(bench + ["--sizes", "face,1024", "--n", str(args.n), "--json", str(out / "benchmark_cuda_small.json")],
                out / "benchmark.log", 150)]
        save()
        summary["benchmark_rc"].append(
            run(bench + ["--sizes", "12mp", "--n", str(args.n_12mp), "--json", str(out / "benchmark_cuda_12mp.json")],
                out / "benchmark.log", 90))
        save()
    print(json.dumps(summary, indent=1))
    return 0 if summary["tests_rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
