"""Evaluation layer: the thresholds of the three verdicts (fake / uncertain / real), chosen on
val scores by the rules in docs/decisions/2026-12-01-verdicts-and-trust-weights.md.

- ``t_fake``: the smallest threshold at which no real source has more than ``max_fpr`` of its
  real images at or above it (every source counts alike, whatever its size);
- ``t_real``: the largest threshold at which at most ``max_fnr`` of the fake images, averaged
  over the fake sources, fall below it (or, by the per-source rule, of every fake source's
  images); never above ``t_fake``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

FAKE_RULE = "no real val source has more than {} of its images labelled fake"
REAL_RULE = "at most {} of fake val images labelled real, averaged over the fake sources"
REAL_RULE_PER_SOURCE = "no fake val source has more than {} of its images labelled real"


def threshold_text(t: float) -> str:
    """A threshold as text with the digits that place it, as records print scores: six decimals,
    or, below 0.001, three significant digits (the `real` threshold, 1.13e-06, would print as
    0.000001 and seem to label that score `real`)."""
    from fakedet.data.writers import score_text

    return score_text(t)


def percent(share: float) -> str:
    """0.02 -> '2%', 0.005 -> '0.5%'."""
    return f"{100 * share:.4g}%"


@dataclass(frozen=True)
class VerdictThresholds:
    """``fake`` when p >= fake, ``real`` when p < real, ``uncertain`` in between."""

    fake: float
    real: float
    rule: str

    def to_dict(self) -> dict:
        return {"fake": self.fake, "real": self.real, "rule": self.rule}


class RuleUnmet(ValueError):
    """No threshold in [0, 1] meets a verdict rule (a source's real scores saturate at 1.0)."""


def fake_threshold(real_scores_by_source: Sequence[Sequence[float]], max_fpr: float = 0.02) -> float:
    """Smallest threshold at which every source's share of real scores at or above it is at
    most ``max_fpr``."""
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr!r}")
    best = 0.0
    for g in real_scores_by_source:
        g = np.sort(np.asarray(g, dtype=np.float64))
        if not len(g):
            continue
        allowed = int(np.floor(max_fpr * len(g) + 1e-9))  # images of this source allowed at or above
        if allowed >= len(g):
            continue
        # the (allowed+1)-th highest score must fall below the threshold
        t = float(np.nextafter(g[len(g) - 1 - allowed], np.inf))
        best = max(best, t)
    if best > 1.0:  # a real score of exactly 1.0 beyond the allowed share: no threshold in [0, 1] meets the rule
        raise RuleUnmet(f"no fake threshold meets the rule: more than {percent(max_fpr)} of a source's real "
                         "scores are 1.0")
    return best


def real_threshold(fake_scores_by_source: Sequence[Sequence[float]], max_fnr: float = 0.10,
                   cap: float = 1.0) -> float:
    """Largest threshold (at most ``cap``) at which the share of fake scores below it, averaged
    over the sources, is at most ``max_fnr``."""
    if not 0.0 <= max_fnr <= 1.0:
        raise ValueError(f"max_fnr must be in [0, 1], got {max_fnr!r}")
    sources = [np.sort(np.asarray(g, dtype=np.float64)) for g in fake_scores_by_source if len(g)]
    if not sources:
        return 0.0
    # The averaged share below t only changes at a fake score, so the best t is a fake score
    # (or the cap, or 0); evaluate every candidate at once.
    cands = np.unique(np.concatenate(sources + [np.array([0.0, cap])]))
    cands = cands[(cands >= 0.0) & (cands <= cap)]
    below = np.mean([np.searchsorted(s, cands, side="left") / len(s) for s in sources], axis=0)
    ok = cands[below <= max_fnr]
    return float(ok.max()) if len(ok) else 0.0


def real_threshold_per_source(fake_scores_by_source: Sequence[Sequence[float]], max_fnr: float = 0.10,
                              cap: float = 1.0) -> float:
    """Largest threshold (at most ``cap``) at which no source has more than ``max_fnr`` of its
    fake scores below it: every source counts alike, as the ``fake`` rule counts real sources."""
    ts = [real_threshold([g], max_fnr, cap) for g in fake_scores_by_source if len(g)]
    return min(ts) if ts else 0.0


def choose(real_by_source: Mapping[str, Sequence[float]], fake_by_source: Mapping[str, Sequence[float]],
           max_fpr: float = 0.02, max_fnr: float = 0.10, real_rule: str = "averaged") -> VerdictThresholds:
    """Both thresholds from val scores grouped by source; ``real_rule`` is ``averaged`` (the
    share of fakes below ``t_real`` averaged over the fake sources) or ``per-source``."""
    if real_rule not in ("averaged", "per-source"):
        raise ValueError(f"real_rule must be 'averaged' or 'per-source', got {real_rule!r}")
    t_fake = fake_threshold(list(real_by_source.values()), max_fpr)
    pick = real_threshold if real_rule == "averaged" else real_threshold_per_source
    t_real = pick(list(fake_by_source.values()), max_fnr, cap=t_fake)
    words = REAL_RULE if real_rule == "averaged" else REAL_RULE_PER_SOURCE
    rule = f"fake: {FAKE_RULE.format(percent(max_fpr))}; real: {words.format(percent(max_fnr))}"
    return VerdictThresholds(fake=t_fake, real=t_real, rule=rule)


def moved(t: float, logit: float) -> float:
    """Threshold ``t`` moved ``logit`` up in logit (down when negative; 0 and 1 stay): the margin
    between a rule's threshold, one float step from a val score, and the one a checkpoint stores,
    so that a score computed on another numerical path does not cross it."""
    if t <= 0.0 or t >= 1.0:
        return t
    return 1.0 / (1.0 + math.exp(-(math.log(t / (1.0 - t)) + logit)))


def verdict_table(y, p, fake: float, real: float) -> dict:
    """One set's row of a checkpoint's verdict tables (``evaluation.verdicts_val`` / ``_test``):
    its real and fake image counts and, per class, the share labelled each verdict (None for a
    class it lacks)."""
    y, p = np.asarray(y), np.asarray(p)

    def shares(x) -> dict:
        v = np.array([verdict(s, fake, real) for s in x])
        return {k: float(np.mean(v == k)) for k in ("fake", "uncertain", "real")}
    return {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
            "real": shares(p[y == 0]) if (y == 0).any() else None,
            "fake": shares(p[y == 1]) if (y == 1).any() else None}


def table_changes(old: dict, new: dict, kind: str, digits: int) -> list[str]:
    """Lines showing, per set, the share of reals and of fakes labelled ``kind`` in the verdict
    table ``old`` and in ``new`` (rows as :func:`verdict_table` makes them)."""
    def f(d, k):
        return "-" if d is None else f"{d[k]:.{digits}f}"
    return [f"  {n:22s} reals {f(old[n]['real'], kind)} -> {f(r['real'], kind)}   "
            f"fakes {f(old[n]['fake'], kind)} -> {f(r['fake'], kind)}" for n, r in new.items()]


def verdict(p: float, fake: float, real: float) -> str:
    """The label for one calibrated score."""
    if p >= fake:
        return "fake"
    if p < real:
        return "real"
    return "uncertain"
