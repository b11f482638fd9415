"""Evaluation layer: detection metrics and calibration in plain numpy (no sklearn dependency)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: equal-width bins of p_fake for the expected calibration error (and eval's reliability plot)
ECE_BINS = 15


def _arrays(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError("labels and scores differ in length")
    return y, s


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (fpr, tpr, thresholds), thresholds descending, ties grouped."""
    y, s = _arrays(labels, scores)
    if len(s) == 0:
        return np.zeros(1), np.zeros(1), np.full(1, np.inf)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    tpr = np.r_[0.0, tps / pos]
    fpr = np.r_[0.0, fps / neg]
    thr = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thr


def auc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half). NaN if a class is absent."""
    y, s = _arrays(labels, scores)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(labels, scores) -> float:
    """Sum over thresholds of (gain in recall) x precision, with tied scores taken together
    (one threshold), so that the order of the inputs never matters. NaN without positives."""
    y, s = _arrays(labels, scores)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    precision = tps / (distinct + 1)
    recall = tps / tps[-1]
    return float((np.diff(np.r_[0.0, recall]) * precision).sum())


def tpr_at_fpr(labels, scores, max_fpr: float) -> float:
    """Highest true-positive rate whose false-positive rate does not exceed ``max_fpr``."""
    fpr, tpr, _ = roc_curve(labels, scores)
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def threshold_at_fpr(real_scores, max_fpr: float) -> float:
    """Smallest threshold at which at most ``max_fpr`` of the real scores are labelled fake
    (label = fake when score >= threshold)."""
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr!r}")
    s = np.sort(np.asarray(real_scores, dtype=np.float64))
    if len(s) == 0:
        return 0.5
    allowed = int(math.floor(max_fpr * len(s) + 1e-9))  # 0.29 * 100 is 28.999999999999996
    if allowed >= len(s):  # every real image may be labelled fake
        return float(s[0])
    # scores strictly above the (n - allowed)-th smallest are allowed to be fake
    cut = s[len(s) - allowed - 1]
    return float(np.nextafter(cut, np.inf))


def threshold_at_macro_fpr(real_scores_by_source, max_fpr: float) -> float:
    """Smallest threshold at which the false-positive rate *averaged over sources* is at most
    ``max_fpr``: each source of real images counts equally, however many images it has (a
    pooled rate lets a large, easy source hide a high rate on a small, hard one)."""
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr!r}")
    groups = [np.sort(np.asarray(g, dtype=np.float64)) for g in real_scores_by_source if len(g)]
    if not groups:
        return 0.5

    def macro_fpr(t: float) -> float:
        return float(np.mean([(len(g) - np.searchsorted(g, t, side="left")) / len(g) for g in groups]))

    # Candidates: just above each real score (where some rate drops), plus the lowest score.
    lowest = min(g[0] for g in groups)
    cands = np.unique(np.concatenate([np.nextafter(g, np.inf) for g in groups] + [[lowest]]))
    lo, hi = 0, len(cands) - 1  # macro_fpr(cands[hi]) == 0, non-increasing in t
    while lo < hi:
        mid = (lo + hi) // 2
        if macro_fpr(cands[mid]) <= max_fpr + 1e-9:  # a mean of exactly max_fpr may round above it
            hi = mid
        else:
            lo = mid + 1
    return float(cands[lo])


def expected_calibration_error(labels, probs, bins: int = ECE_BINS) -> float:
    y, p = _arrays(labels, probs)
    if len(y) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)


def sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def fit_temperature(labels, logits, lo: float = 0.05, hi: float = 20.0) -> float:
    """Temperature T minimising the negative log-likelihood of sigmoid(logit / T) (golden search
    over log T; the NLL is unimodal in T)."""
    y, z = _arrays(labels, logits)

    def nll(log_t: float) -> float:
        p = np.clip(sigmoid(z / math.exp(log_t)), 1e-12, 1 - 1e-12)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(80):
        if nll(c) < nll(d):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return float(math.exp((a + b) / 2))


def _share(verdicts, of, verdict: str) -> float:
    """The share of the images ``of`` selects that ``verdicts`` labels ``verdict``; NaN without
    verdicts or without such images."""
    if verdicts is None or not of.any():
        return float("nan")
    return float((np.asarray(verdicts)[of] == verdict).mean())


def summarize(labels, probs, threshold: float, verdicts=None) -> dict:
    """The standard figures for one labelled set at one threshold; with ``verdicts`` (the
    detector's label per image) the counted figures follow those labels instead, "uncertain"
    counting as not fake, and ``uncertain`` is the share of images labelled uncertain."""
    y, p = _arrays(labels, probs)
    pred = p >= threshold if verdicts is None else np.asarray(verdicts) == "fake"
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    tpr = float((pred & (y == 1)).sum() / n_pos) if n_pos else float("nan")
    tnr = float((~pred & (y == 0)).sum() / n_neg) if n_neg else float("nan")
    # of one class only, balanced accuracy is that class's rate alone: undefined, as AUC is (a
    # persona read 1.0000 on a set of real photos)
    bal = float(np.mean([tpr, tnr])) if (n_pos and n_neg) else float("nan")
    return {
        "n": int(len(y)),
        "n_real": n_neg,
        "n_fake": n_pos,
        "auc": auc(y, p),
        "ap": average_precision(y, p) if n_pos and n_neg else float("nan"),  # 1 without reals
        "accuracy": float((pred == (y == 1)).mean()) if len(y) else float("nan"),
        "balanced_accuracy": bal,
        "tpr": tpr,
        "fpr": (1.0 - tnr) if n_neg else float("nan"),
        "tpr_at_1pct_fpr": tpr_at_fpr(y, p, 0.01) if n_pos and n_neg else float("nan"),
        "tpr_at_5pct_fpr": tpr_at_fpr(y, p, 0.05) if n_pos and n_neg else float("nan"),
        "ece": expected_calibration_error(y, p),
        "threshold": float(threshold),
        "uncertain": (float(np.mean(np.asarray(verdicts) == "uncertain")) if len(y) else float("nan"))
        if verdicts is not None else float("nan"),
        # fakes given the `real` verdict: what "real proves nothing" costs on this set
        "fake_labelled_real": _share(verdicts, y == 1, "real"),
        # each class's share labelled uncertain (``uncertain`` pools them)
        "real_labelled_uncertain": _share(verdicts, y == 0, "uncertain"),
        "fake_labelled_uncertain": _share(verdicts, y == 1, "uncertain"),
    }
