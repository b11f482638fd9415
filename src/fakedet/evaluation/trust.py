"""Evaluation layer: a checkpoint judged by the trust rules (docs/decisions/2026-12-01-trust-continued.md):
per-set val AUC, the three verdicts' thresholds chosen on the val splits of named sources, and the
share of held-out sources' images labelled ``fake`` at them. Used by experiments/trust_eval.py and
experiments/loso_real.py. Scores come from :mod:`fakedet.evaluation.scorecache`; the caller says how
to load a detector (this layer does not import the inference layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from fakedet.data.sets import BY_NAME, PAIRED
from fakedet.evaluation.metrics import auc
from fakedet.evaluation.scorecache import scores, sha256
from fakedet.evaluation.verdicts import choose

PAIRED_SETS = [s.name for s in BY_NAME.values() if s.kind == PAIRED]


def study(weights: Path, real_sources, fake_sources, heldout, heldout_splits, cache: Path,
          load: Callable[[Path], Any]) -> dict:
    """The figures of one checkpoint (see the module's docstring), as a JSON-ready dict."""
    val = {n: scores(weights, n, "val", cache, load)
           for n in sorted(set(real_sources) | set(fake_sources) | set(PAIRED_SETS) - set(heldout))}
    th = choose({n: val[n][1][val[n][0] == 0] for n in real_sources},
                {n: val[n][1][val[n][0] == 1] for n in fake_sources})
    out = {"weights": str(weights), "sha256": sha256(weights), "t_fake": th.fake, "t_real": th.real,
           "val_auc": {n: auc(*val[n]) for n in PAIRED_SETS if n in val},
           "val_fake_caught": {n: float(np.mean(val[n][1][val[n][0] == 1] >= th.fake)) for n in fake_sources},
           "val_real_labelled_fake": {n: float(np.mean(val[n][1][val[n][0] == 0] >= th.fake)) for n in real_sources},
           "heldout": {}}
    out["val_fake_caught_mean"] = float(np.mean(list(out["val_fake_caught"].values())))
    for n in heldout:
        parts = [scores(weights, n, s, cache, load) for s in heldout_splits]
        y = np.concatenate([a for a, _ in parts])
        p = np.concatenate([b for _, b in parts])
        r = {"n": int(len(y)), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
             "real_labelled_fake": float(np.mean(p[y == 0] >= th.fake)) if (y == 0).any() else None,
             "real_labelled_uncertain": (float(np.mean((p[y == 0] >= th.real) & (p[y == 0] < th.fake)))
                                         if (y == 0).any() else None),
             "fake_labelled_fake": float(np.mean(p[y == 1] >= th.fake)) if (y == 1).any() else None,
             "auc": auc(y, p) if (y == 1).any() and (y == 0).any() else None}
        out["heldout"][n] = r
    return out
