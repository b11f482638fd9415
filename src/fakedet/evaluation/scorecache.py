"""Evaluation layer: a checkpoint's scores on one labelled set's split, cached on disk.

The experiment scripts that compare checkpoints (``experiments/trust_eval.py``,
``experiments/method_eval.py``) score the same sets again and again; the scores are the
calibrated ``p_fake`` of the detector that ``load(weights)`` returns (the scripts pass
``fakedet.Detector.load(weights, provenance=False)``: no face mode, no provenance, and, as a
scan since 2026-12-06, the picture inside plain margins cut out), kept under
``cache/<sha256 of the weights, 16 hex digits>.<SCORING>/<set>.<split>.json`` so that a second
reading costs nothing; :data:`SCORING` changes with the way images are scored, so that scores
of an earlier way are never mixed with today's. An unreadable image is left out and counted.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.model import checkpoint as ckpt

#: the way images are scored, part of the cache's key: "crop" since the scan cuts the picture
#: out of wide plain margins (scores cached before, under the weights' hash alone, are not read),
#: "crop15" since it cuts narrower bands too, from 15 % of the image (session 57), "stories"
#: since it cuts a story's picture out of its blurred or gradient backdrop (session 58)
SCORING = "stories"


@functools.lru_cache(maxsize=None)
def sha256(weights: Path) -> str:
    return ckpt.sha256(weights)


_loaded: dict = {}  # the last detector loaded, by weights path


def detector(weights: Path, load: Callable[[Path], Any]):
    if weights not in _loaded:
        _loaded.clear()
        _loaded[weights] = load(weights)
    return _loaded[weights]


def scores(weights: Path, name: str, split: str, cache: Path,
           load: Callable[[Path], Any]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, p_fake) of every readable image of one set's split, in manifest order; the
    detector (``load(weights)``, loaded only when something is not cached) scores them.
    (Evaluation does not import the inference layer, so the caller says how to load it.)"""
    f = cache / f"{sha256(weights)[:16]}.{SCORING}" / f"{name}.{split}.json"
    if f.exists():
        d = json.loads(f.read_text())
        return np.array(d["y"], dtype=int), np.array(d["p"], dtype=float)
    from fakedet.evaluation.report import score_labelled

    t0 = time.time()
    y, p, errors = score_labelled(detector(weights, load), read_manifest(str(manifest(name)), split))
    print(f"  scored {name}/{split}: {len(p)} images in {time.time() - t0:.0f} s"
          + (f", {len(errors)} unreadable" if errors else ""), flush=True)
    f.parent.mkdir(parents=True, exist_ok=True)
    # written aside and renamed: a run stopped mid-write must not leave a cache every later run trips on
    tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"y": [int(v) for v in y], "p": [float(v) for v in p], "unreadable": len(errors)}))
    os.replace(tmp, f)
    return np.array(y, dtype=int), np.array(p, dtype=float)
