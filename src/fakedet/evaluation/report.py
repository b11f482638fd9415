"""Evaluation layer: scoring labelled data with a detector and summarising it (behind ``fakedet eval``).

The detector is anything with ``threshold`` and ``iter_batches`` (a
:class:`fakedet.inference.detector.Detector`); this layer does not import the inference layer.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import numpy as np

from fakedet.data.labelled import LabelledImage
from fakedet.data.provenance import generated_evidence, telling_evidence
from fakedet.data.sources import Item
from fakedet.data.writers import tsv_escape
from fakedet.evaluation.metrics import ECE_BINS, summarize
from fakedet.evaluation.verdicts import threshold_text


def score_labelled(det, images: list[LabelledImage], batch_size: Optional[int] = None,
                   workers: Optional[int] = None, progress=None, with_verdicts: bool = False,
                   on_batch: Optional[Callable[[list, list[LabelledImage]], None]] = None):
    """Returns (labels, probabilities, errors) for the images; unreadable ones are set aside.
    ``with_verdicts`` appends the model's own verdict for each scored image (never one that
    provenance evidence decided: these are the model's figures) and, per true label, how many
    images had provenance evidence and how many of them evidence that they were generated.
    ``on_batch(results, images)``, when given, gets each batch of Results as it is scored with
    the LabelledImages they belong to (for a per-image report)."""
    labels, probs, errors, verdicts = [], [], [], []
    evidence = {"real": {"any": 0, "generated": 0}, "fake": {"any": 0, "generated": 0}}
    items = (Item(im.path, source=im.path, error=im.error) for im in images)
    i = 0
    for batch in det.iter_batches(items, batch_size, workers):
        if on_batch is not None:
            on_batch(batch, images[i:i + len(batch)])
        for r in batch:
            im = images[i]
            i += 1
            if telling_evidence(r.evidence):
                counts = evidence["fake" if im.label else "real"]
                counts["any"] += 1
                counts["generated"] += bool(generated_evidence(r.evidence))
            if r.error is not None:
                errors.append((im.path, r.error))
            else:
                labels.append(im.label)
                probs.append(r.p_fake)
                verdicts.append(r.model_label)
        if progress is not None:
            progress.update(len(batch))
    out = np.asarray(labels, dtype=np.int64), np.asarray(probs, dtype=np.float64), errors
    return (*out, np.asarray(verdicts, dtype=object), evidence) if with_verdicts else out


@dataclass
class Report:
    """What :func:`report` measured.

    Attributes:
        threshold: the detector's "fake" threshold, at which the labels were counted.
        real_below: its "real" threshold (scores in between are "uncertain"); equal to
            ``threshold`` under the two-way rule.
        sets: figures per data set (see :func:`~fakedet.evaluation.metrics.summarize`, plus
            ``errors``), and over all of them as ``"all"`` when there are several.
        unreadable: ``{"set", "path", "error"}`` for each image that could not be scored.
        scores: per data set, the labels and probabilities of the images scored (for plots).
        verdicts: per data set, the verdict of each of those images, in the same order.
    """

    threshold: float
    real_below: Optional[float] = None
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    verdicts: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (``threshold``, ``sets``, ``unreadable``), without
        the scores."""
        return {"threshold": self.threshold, "real_below": self.real_below, "sets": self.sets,
                "unreadable": self.unreadable}


def report(det, datasets: dict[str, list[LabelledImage]], batch_size=None, workers=None,
           progress=None, on_batch: Optional[Callable[[str, list, list[LabelledImage]], None]] = None
           ) -> Report:
    """Metrics per data set and over all of them at the detector's threshold, the files that
    could not be scored, and the scores themselves. ``on_batch(name, results, images)``, when
    given, gets each batch of Results of the data set ``name`` as it is scored (see
    :func:`score_labelled`)."""
    out = Report(det.threshold, getattr(det, "real_below", det.threshold))
    all_y, all_p, all_v, n_err = [], [], [], 0
    for name, images in datasets.items():
        each = None if on_batch is None else functools.partial(on_batch, name)
        y, p, errors, v, evidence = score_labelled(det, images, batch_size, workers, progress,
                                                   with_verdicts=True, on_batch=each)
        res = summarize(y, p, det.threshold, verdicts=v)
        res["errors"] = len(errors)
        res["provenance_evidence"] = evidence  # reported apart: not in the model's figures
        truth = {im.path: ("fake" if im.label else "real") for im in images}  # which class lost it
        out.unreadable += [{"set": name, "path": path, "label": truth.get(path), "error": err}
                           for path, err in errors]
        out.sets[name] = res
        all_y.append(y)
        all_p.append(p)
        all_v.append(v)
        n_err += len(errors)
        out.scores[name] = (y, p)
        out.verdicts[name] = v
    if len(datasets) > 1:
        res = summarize(np.concatenate(all_y), np.concatenate(all_p), det.threshold,
                        verdicts=np.concatenate(all_v))
        res["errors"] = n_err
        res["provenance_evidence"] = {
            c: {k: sum(out.sets[n]["provenance_evidence"][c][k] for n in datasets) for k in ("any", "generated")}
            for c in ("real", "fake")}
        out.sets["all"] = res
    return out


def write_plots(scores: dict, threshold: float, folder: str, real_below: Optional[float] = None) -> list[str]:
    """ROC curves, score histograms (with the `fake` threshold, and the `real` one when
    ``real_below`` is lower) and reliability diagrams (the bins of the expected calibration
    error) as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fakedet.evaluation.metrics import roc_curve

    os.makedirs(folder, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    one_class = []  # a ROC curve needs both real and fake images
    for name, (y, p) in scores.items():
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, label=_literal(name))
        else:
            one_class.append(name)
    if len(scores) > 1:  # every set's images together, as the table's "all" row
        y_all = np.concatenate([v[0] for v in scores.values()])
        if 0 < y_all.sum() < len(y_all):
            fpr, tpr, _ = roc_curve(y_all, np.concatenate([v[1] for v in scores.values()]))
            ax.plot(fpr, tpr, "k-", lw=1.6, label="all")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    if one_class:
        ax.text(0.98, 0.02, "no curve (one class only): " + ", ".join(map(_literal, one_class)), fontsize=7,
                ha="right", va="bottom", transform=ax.transAxes, wrap=True)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    paths.append(_save(fig, folder, "roc.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    y = np.concatenate([v[0] for v in scores.values()])
    p = np.concatenate([v[1] for v in scores.values()])
    bins = np.linspace(0, 1, 41)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, label="real")
    ax.hist(p[y == 1], bins=bins, alpha=0.6, label="fake")
    if real_below is not None and real_below < threshold:
        ax.axvline(threshold, color="k", ls="--", lw=0.8, label=f"fake at >= {threshold_text(threshold)}")
        ax.axvline(real_below, color="k", ls=":", lw=0.8, label=f"real below {threshold_text(real_below)}")
    else:
        ax.axvline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold_text(threshold)}")
    ax.set(xlabel="p_fake", ylabel="images", title="score histogram")
    ax.legend()
    paths.append(_save(fig, folder, "histogram.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    nb = ECE_BINS
    edges = np.linspace(0, 1, nb + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, nb - 1)
    xs = [p[idx == b].mean() for b in range(nb) if (idx == b).any()]
    ys = [y[idx == b].mean() for b in range(nb) if (idx == b).any()]
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.plot(xs, ys, "o-")
    ax.set(xlabel="mean p_fake", ylabel="fraction fake", title="reliability")
    paths.append(_save(fig, folder, "reliability.png"))
    return paths


def _literal(name: str) -> str:
    """A set's name as matplotlib text, shown as typed: a ``$`` would start mathtext, and a
    name such as ``cost_$5`` would stop the plot with a parse error."""
    return name.replace("$", r"\$")


def _save(fig, folder, name) -> str:
    path = os.path.join(folder, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _shown(name: str) -> str:
    """A set's name on one line of a terminal: a folder's name may hold a newline or an escape
    (bytes that are not UTF-8 stay the name's own, as in scan's tsv records)."""
    return tsv_escape(name)


#: the share of a set's images labelled uncertain above which the table warns that acc and
#: bal.acc say little there
MOSTLY_UNCERTAIN = 0.5


def format_table(rep: dict) -> Iterable[str]:
    """The figures of :meth:`Report.to_dict` as a table, line by line."""
    cols = [("n", "n", 6, "d"), ("real", "n_real", 6, "d"), ("fake", "n_fake", 6, "d"),
            ("AUC", "auc", 7, ".4f"), ("AP", "ap", 7, ".4f"), ("acc", "accuracy", 7, ".4f"),
            ("bal.acc", "balanced_accuracy", 7, ".4f"), ("FPR", "fpr", 7, ".4f"), ("TPR", "tpr", 7, ".4f"),
            ("uncert", "uncertain", 7, ".4f"),
            ("TPR@1%", "tpr_at_1pct_fpr", 7, ".4f"), ("TPR@5%", "tpr_at_5pct_fpr", 7, ".4f"),
            ("ECE", "ece", 7, ".4f"), ("errors", "errors", 6, "d")]
    yield f"{'set':<22}" + "".join(f" {c[0]:>{c[2]}}" for c in cols)
    for name, r in rep["sets"].items():
        cells = []
        for _, key, width, spec in cols:
            v = r.get(key)
            if v is None or (isinstance(v, float) and v != v):
                cells.append(f" {'-':>{width}}")
            else:
                cells.append(f" {v:>{width}{spec}}")
        yield f"{_shown(name):<22}" + "".join(cells)
    real_below = rep.get("real_below")
    if real_below is not None and real_below < rep["threshold"]:
        rule = (f"fake at p_fake >= {rep['threshold']:.6f}, real below {threshold_text(real_below)}, "
                "uncertain in between or where only the score of a picture scored with its wide margins reaches fake")
    else:
        rule = f"threshold {threshold_text(rep['threshold'])}"
    yield (f"{rule}; AUC/AP/TPR@ need both classes; FPR = real images labelled fake, "
           "TPR = fakes labelled fake, uncert = images labelled uncertain; acc counts uncertain as not fake"
           + ("; all = every set's images pooled (a larger set weighs more)" if "all" in rep["sets"] else ""))
    whole = rep.get("whole_image_cutoffs")
    if whole:  # face mode: the thresholds above are those of images with a face found
        fake_at, real_below = whole
        yield ("face mode: those thresholds apply where a face was found; images without one are labelled "
               + (f"by the whole-image thresholds, fake at p_fake >= {fake_at:.6f}, real below "
                  f"{threshold_text(real_below)}" if real_below < fake_at
                  else f"by the whole-image threshold {threshold_text(fake_at)}"))
    mostly = [(name, r["uncertain"]) for name, r in rep["sets"].items()
              if (r.get("uncertain") or 0) > MOSTLY_UNCERTAIN]  # the pooled row too: a paper quotes it
    if mostly:  # a persona read acc 1.0000 on real photos of which every one was uncertain
        # to a tenth of a per cent, rounded down (99.96 % is not all of them; 0.57 is 57 %, which a
        # float's 56.99999 would make 56 without the nudge)
        sets = ", ".join(f"{_shown(name)} {math.floor(share * 1000 + 1e-6) / 10:g}%" for name, share in mostly)
        yield (f"most images labelled uncertain ({sets}): acc and bal.acc count uncertain as not fake, so on "
               "such a set they read high for real images and low for fakes although the model decided nothing; "
               "FPR and TPR count the fake verdicts alone")
    for name, r in rep["sets"].items():
        ev = r.get("provenance_evidence") or {}
        if name != "all" and any(c.get("any") for c in ev.values()):
            yield (f"{_shown(name)}: provenance evidence on {ev['real']['any']} real images ({ev['real']['generated']} "
                   f"saying generated) and {ev['fake']['any']} fakes ({ev['fake']['generated']} saying "
                   "generated); the model's figures above leave it out")
