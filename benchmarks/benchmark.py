#!/usr/bin/env python
"""Throughput and memory benchmark of fakedet, end to end and against its bounds.

    python benchmarks/benchmark.py                    # CPU (and CUDA when present), default sizes
    python benchmarks/benchmark.py --sizes face,1024 --n 200 --device cpu
    python benchmarks/benchmark.py --memory 1000,20000   # peak RSS while scanning N images

For each image size (224 px face crops, 1024 px JPEGs, 12-megapixel 4032x3024 phone JPEGs) it
reports images/s of:
  * ``cli``: ``fakedet scan DIR`` in a fresh process, start-up included;
  * ``cli_long``: the same on a long ``--files-from`` list (the folder's files repeated), where
    the start-up weighs little, as in a scan of a large archive;
  * ``api``: ``Detector.predict`` on the paths (model already loaded);
  * ``loop``: a one-image-at-a-time reference (PIL open, preprocess, forward at batch 1);
  * ``decode``: decoding + preprocessing only, through the same worker pool (a bound);
  * ``model``: the model only, on pre-decoded tensors at the same batch size (the other bound);
and ``cli / loop``, ``cli / min(decode, model)`` and the serial bound ``1 / (1/decode + 1/model)``
(decoding and the model share the same cores). It also times the model with and without
fakedet's glibc allocator tuning, and measures peak resident memory (process tree) while scanning
growing numbers of images. Images are generated (photo-like gradients, texture and noise) so that
anyone can rerun it (fakedet.evaluation.synthetic); results are printed as a Markdown table and written as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fakedet.evaluation.synthetic import SIZES, make_images

DEFAULT_N = {"face": 3000, "1024": 1000, "12mp": 200}
LONG_N = {"face": 12000, "1024": 5000, "12mp": 1000}  # the long CLI scan (about a minute each)


class RssSampler:
    """Peak resident memory of a process and all its descendants, sampled from /proc."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def _tree(self, pid):
        out = [pid]
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    for c in fh.read().split():
                        out.extend(self._tree(int(c)))
        except OSError:
            pass
        return out

    def _rss(self, pid):
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(self._rss(p) for p in self._tree(self.pid)))
            time.sleep(self.interval)


def run_cli(args: list[str], stdin_data: bytes | None = None, env=None) -> tuple[float, int, int]:
    """Runs ``fakedet ARGS`` in a fresh process; returns (seconds, records, peak RSS bytes)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "fakedet", *args], stdin=subprocess.PIPE if stdin_data else None,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or os.environ.copy())
    count = 0
    with RssSampler(p.pid) as rss:
        if stdin_data:
            threading.Thread(target=lambda: (p.stdin.write(stdin_data), p.stdin.close()), daemon=True).start()
        for _ in p.stdout:
            count += 1
        err = p.stderr.read()
        p.wait()
    if p.returncode not in (0, 1):
        raise RuntimeError(f"fakedet exited {p.returncode}: {err.decode()[-2000:]}")
    return time.perf_counter() - t0, count, rss.peak


def bench_size(det, size, paths, device, batch_size, workers, weights, long_n=0):
    import torch

    from fakedet.data import decode as imageio
    from fakedet.data.sources import Item
    from fakedet.inference.pipeline import Task, chunks, decode_pool, prepare_batch

    n = len(paths)
    cfg = det.config.preprocess
    res = {"size": f"{SIZES[size][0]}x{SIZES[size][1]}", "n": n}

    # end to end, fresh process
    folder = str(Path(paths[0]).parent)
    args = ["scan", folder, "-q", "--device", device, "-b", str(batch_size)]
    if workers is not None:
        args += ["-j", str(workers)]
    if weights:
        args += ["-w", weights]
    secs, count, _ = run_cli(args)
    assert count == n, (count, n)
    res["cli"] = n / secs

    # a long scan, where the start-up weighs little: the same files listed over and over
    if long_n:
        listing = "\n".join(paths[i % n] for i in range(long_n)).encode() + b"\n"
        secs, count, _ = run_cli(["scan", "--files-from", "-"] + args[2:], stdin_data=listing)
        assert count == long_n, (count, long_n)
        res["cli_long_n"], res["cli_long"] = long_n, long_n / secs

    # API, model loaded
    det.predict(paths[: batch_size])  # warm-up
    t0 = time.perf_counter()
    out = det.predict(paths)
    res["api"] = n / (time.perf_counter() - t0)
    assert all(r.ok for r in out)

    # one image at a time
    m = min(n, {"face": 300, "1024": 150, "12mp": 30}[size])  # a few seconds each: less noise
    t0 = time.perf_counter()
    with torch.inference_mode():
        for p in paths[:m]:
            img = Image.open(p).convert("RGB")
            v, pt = imageio.preprocess(img, cfg)
            det.forward(torch.from_numpy(v)[None], torch.from_numpy(pt)[None])
    res["loop"] = m / (time.perf_counter() - t0)

    # decode-only bound through the same pool
    nworkers = det.workers if workers is None else workers
    items = [Item(p, source=p) for p in paths]
    t0 = time.perf_counter()
    if nworkers == 0:
        prepared = [prepare_batch(b, Task(cfg)) for b in chunks(items, batch_size)]
    else:
        task = Task(cfg)
        with decode_pool(nworkers) as pool:
            prepared = list(pool.map(lambda b: prepare_batch(b, task), chunks(items, batch_size)))
    res["decode"] = n / (time.perf_counter() - t0)

    # model-only bound on pre-decoded tensors
    batches = [(torch.from_numpy(np.concatenate([r.views for r in b])),
                torch.from_numpy(np.concatenate([r.patches for r in b])))
               for b in prepared]
    det.forward(*batches[0])
    if det.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for v, pt in batches:
        det.forward(v, pt)
    if det.device.type == "cuda":
        torch.cuda.synchronize()
    res["model"] = n / (time.perf_counter() - t0)
    res["cli/loop"] = res["cli"] / res["loop"]
    if long_n:
        res["cli_long/loop"] = res["cli_long"] / res["loop"]
    # decoding and the model share the cores: 1 / (1/decode + 1/model) is what they allow together
    res["serial"] = 1.0 / (1.0 / res["decode"] + 1.0 / res["model"])
    res["api/serial"] = res["api"] / res["serial"]
    res["cli/bound"] = res["cli"] / min(res["decode"], res["model"])
    res["api/bound"] = res["api"] / min(res["decode"], res["model"])
    res["api/loop"] = res["api"] / res["loop"]
    return res


def bench_startup(image: str, device: str, weights, repeats: int = 3) -> float:
    """Median wall time of ``fakedet scan`` on one image: process start-up, imports, model load."""
    args = ["scan", image, "-q", "--device", device] + (["-w", weights] if weights else [])
    times = sorted(run_cli(args)[0] for _ in range(repeats))
    return times[len(times) // 2]


def bench_decode_strategies(path: str, cfg, repeats: int = 5) -> dict:
    """Per-image milliseconds of ways to get the model's inputs out of one large JPEG."""
    from fakedet.data import decode as imageio

    data = Path(path).read_bytes()
    g = cfg.global_size

    def full():
        im = Image.open(io.BytesIO(data))
        im.load()
        return im

    def draft():
        im = Image.open(io.BytesIO(data))
        im.draft("RGB", (2 * g, 2 * g))
        im.load()
        return im

    big = full()
    cases = {
        "full decode": full,
        "reduced-size decode (JPEG draft, DCT scaling)": draft,
        "plain bilinear resize of the full image to the view": lambda: big.resize((g, g), Image.Resampling.BILINEAR),
        "fakedet view (bilinear, reducing_gap=3)":
            lambda: big.resize((g, g), Image.Resampling.BILINEAR, reducing_gap=3.0),
        "fakedet view + native patches (imageio.preprocess)": lambda: imageio.preprocess(big, cfg),
        "fakedet total: decode + view + patches": lambda: imageio.preprocess(imageio.load(data, cfg), cfg),
    }
    out = {}
    for name, fn in cases.items():
        fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        out[name] = 1000 * (time.perf_counter() - t0) / repeats
    return out


MALLOC_CHILD = r"""
import sys, time, torch
from fakedet import Detector
det = Detector.load(sys.argv[1] or None, device="cpu", workers=0)
g, k, p = det.config.preprocess.global_size, det.config.preprocess.num_patches, det.config.preprocess.patch_size
v = torch.randint(0, 256, (32, 3, g, g), dtype=torch.uint8)
pt = torch.randint(0, 256, (32, k, 3, p, p), dtype=torch.uint8)
det.forward(v, pt)
import resource
r0 = resource.getrusage(resource.RUSAGE_SELF)
w0 = time.perf_counter()
for _ in range(8):
    det.forward(v, pt)
wall = time.perf_counter() - w0
r1 = resource.getrusage(resource.RUSAGE_SELF)
user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
print(f"{32 * 8 / wall:.1f} {system / max(user + system, 1e-9):.3f}")
"""


def bench_malloc(weights):
    out = {}
    for name, extra in (("fakedet (mallopt at start-up)", {}),
                        ("glibc default", {"FAKEDET_NO_MALLOC_TUNING": "1"}),
                        ("MALLOC_MMAP_THRESHOLD_=33554432 in the environment", {"MALLOC_MMAP_THRESHOLD_": "33554432"})):
        env = dict(os.environ, **extra)
        r = subprocess.run([sys.executable, "-c", MALLOC_CHILD, weights or ""], env=env,
                           capture_output=True, text=True, check=True)
        ips, sys_frac = r.stdout.split()
        out[name] = {"model_img_s": float(ips), "kernel_time_fraction": float(sys_frac)}
    return out


def bench_fusion(det, rounds: int = 3, batches: int = 6) -> dict:
    """Model-only images/s at batch 32 of the weights as trained (``checkpoint.load``) and of the
    Detector's model (BatchNorm folded into the convolutions, channels-last), on the same random
    inputs, alternating rounds so that a drift in the machine's speed hits both alike."""
    import torch

    from fakedet.model import checkpoint as checkpoint

    plain = checkpoint.load(det.weights_path)[0].to(det.device).eval()
    pre = det.config.preprocess
    g = torch.Generator().manual_seed(0)
    v = torch.randint(0, 256, (32, 3, pre.global_size, pre.global_size), dtype=torch.uint8, generator=g)
    pt = torch.randint(0, 256, (32, pre.num_patches, 3, pre.patch_size, pre.patch_size), dtype=torch.uint8, generator=g)
    fused, models = det.model, {"as trained": plain, "fused for inference": det.model}
    secs = dict.fromkeys(models, 0.0)
    try:
        for _ in range(rounds):
            for name, model in models.items():
                det.model = model
                det.forward(v, pt)  # warm-up
                t0 = time.perf_counter()
                for _ in range(batches):
                    det.forward(v, pt)
                secs[name] += time.perf_counter() - t0
    finally:
        det.model = fused
    return {name: 32 * batches * rounds / t for name, t in secs.items()}


def bench_memory(face_paths, counts, device, weights, batch_size):
    """Peak RSS while scanning N images: a --files-from list repeating the face images."""
    out = {}
    for n in counts:
        listing = "\n".join(face_paths[i % len(face_paths)] for i in range(n)).encode() + b"\n"
        args = ["scan", "--files-from", "-", "-q", "--device", device, "-b", str(batch_size)]
        if weights:
            args += ["-w", weights]
        secs, count, peak = run_cli(args, stdin_data=listing)
        assert count == n
        out[str(n)] = {"peak_rss_mib": peak / 2**20, "img_s": n / secs}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="face,1024,12mp")
    ap.add_argument("--n", type=int, default=None, help="images per size (default: 3000/1000/200)")
    ap.add_argument("--device", default=None, help="cpu, cuda (default: cpu, and cuda when present)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--memory", default="1000,20000", help="image counts for the memory test ('' to skip)")
    ap.add_argument("--no-malloc", action="store_true", help="skip the allocator comparison")
    ap.add_argument("--no-fusion", action="store_true", help="skip the fused-model comparison")
    ap.add_argument("--no-long", action="store_true",
                    help="skip the long CLI scans (12,000 / 5,000 / 1,000 images, files listed repeatedly)")
    ap.add_argument("--dir", default=None, help="where to generate images (default: a temp folder)")
    ap.add_argument("--json", default="benchmark.json", help="write results here")
    args = ap.parse_args(argv)

    import torch

    from fakedet import Detector

    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    root = Path(args.dir or tempfile.mkdtemp(prefix="fakedet-bench-"))
    sizes = [s for s in args.sizes.split(",") if s]
    images = {s: make_images(root / f"{s}-{args.n or DEFAULT_N[s]}", s, args.n or DEFAULT_N[s]) for s in sizes}
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "batch_size": args.batch_size, "runs": [],
    }
    for device in devices:
        det = Detector.load(args.weights, device=device, batch_size=args.batch_size, workers=args.workers)
        results["workers"] = det.workers
        for s in sizes:
            r = bench_size(det, s, images[s], device, args.batch_size, args.workers, args.weights,
                           0 if args.no_long else LONG_N[s])
            r["device"] = device
            results["runs"].append(r)
            print(json.dumps(r), file=sys.stderr)
    face_one = (images.get("face") or make_images(root / "face-1", "face", 1))[0]
    results["startup_s"] = bench_startup(face_one, devices[0], args.weights)
    if "12mp" in images:
        results["decode_12mp_ms"] = bench_decode_strategies(images["12mp"][0], det.config.preprocess)
    if not args.no_fusion:
        results["fusion"] = bench_fusion(det)
    if not args.no_malloc:
        results["malloc"] = bench_malloc(args.weights)
    if args.memory:
        faces = images.get("face") or make_images(root / "face-400", "face", 400)
        counts = [int(c) for c in args.memory.split(",") if c]
        results["memory"] = bench_memory(faces, counts, devices[0], args.weights, args.batch_size)
    Path(args.json).write_text(json.dumps(results, indent=2))

    m = results["machine"]
    print(f"\nMachine: {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, GPU: {m['gpu'] or 'none'}; "
          f"batch {args.batch_size}, workers {results.get('workers')}\n")
    print("| device | images | n | cli img/s | api img/s | 1-by-1 loop img/s | decode-only img/s "
          "| model-only img/s | serial bound img/s | cli / loop | cli / min(bounds) | api / loop "
          "| api / min(bounds) | api / serial bound |")
    print("|---" * 14 + "|")
    for r in results["runs"]:
        print(f"| {r['device']} | {r['size']} | {r['n']} | {r['cli']:.1f} | {r['api']:.1f} | {r['loop']:.1f} | "
              f"{r['decode']:.1f} | {r['model']:.1f} | {r['serial']:.1f} | "
              f"{r['cli/loop']:.2f}x | {r['cli/bound']:.0%} | "
              f"{r['api/loop']:.2f}x | {r['api/bound']:.0%} | {r['api/serial']:.0%} |")
    if any("cli_long" in r for r in results["runs"]):
        print("\n| device | images | long scan n | cli img/s | cli / loop | cli / min(bounds) | cli / serial bound |")
        print("|---" * 7 + "|")
        for r in results["runs"]:
            if "cli_long" in r:
                lo = r["cli_long"]
                print(f"| {r['device']} | {r['size']} | {r['cli_long_n']} | {lo:.1f} | {r['cli_long/loop']:.2f}x | "
                      f"{lo / min(r['decode'], r['model']):.0%} | {lo / r['serial']:.0%} |")
    print(f"\nstart-up: `fakedet scan` on one image takes {results['startup_s']:.2f} s (median of 3)")
    if "decode_12mp_ms" in results:
        print("\n| one 4032x3024 JPEG, one core | ms |\n|---|---|")
        for k, v in results["decode_12mp_ms"].items():
            print(f"| {k} | {v:.1f} |")
    if "fusion" in results:
        print(f"\n| model ({det.device.type}, batch 32) | model-only img/s |\n|---|---|")
        for k, v in results["fusion"].items():
            print(f"| {k} | {v:.1f} |")
    if "malloc" in results:
        print("\n| allocator | model-only img/s (batch 32) | kernel share of CPU time |\n|---|---|---|")
        for k, v in results["malloc"].items():
            print(f"| {k} | {v['model_img_s']:.1f} | {v['kernel_time_fraction']:.0%} |")
    if "memory" in results:
        print("\n| images scanned | peak RSS (process tree) | img/s |\n|---|---|---|")
        for k, v in results["memory"].items():
            print(f"| {k} | {v['peak_rss_mib']:.0f} MiB | {v['img_s']:.1f} |")
    if not args.dir:  # generated images live in a temporary folder: remove it
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
