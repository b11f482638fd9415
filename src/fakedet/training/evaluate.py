"""Training layer: scoring a model on sets' splits, and calibration (temperature and threshold fitted on val)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from fakedet.evaluation.metrics import fit_temperature, sigmoid, summarize, threshold_at_fpr, threshold_at_macro_fpr
from fakedet.training.datasets import EvalSet, load_sets
from fakedet.training.recipe import Calibration

log = logging.getLogger("fakedet.training")


@torch.no_grad()
def logits_for(model, items, pre, batch_size, workers, view_crop=False):
    """The model's logits for (path, label, set) items, in order."""
    model.eval()
    loader = torch.utils.data.DataLoader(EvalSet(items, pre, view_crop), batch_size=batch_size,
                                         num_workers=workers, shuffle=False)
    out = []
    for view, patches in loader:
        out.append(model(view, patches).float())
    return torch.cat(out).numpy() if out else np.zeros(0)


def evaluate(model, root, sets, split, pre, temperature, threshold, bs, workers, view_crop=False,
             exclude_groups=()):
    """Metrics over ``split`` of all ``sets`` and of each (less the manifest groups matching
    ``exclude_groups``); also the logits, labels and set names."""
    items = load_sets(root, sets, split, exclude_groups)
    z = logits_for(model, items, pre, bs, workers, view_crop)
    p = sigmoid(z / temperature)
    labels = np.array([it[1] for it in items])
    names = np.array([it[2] for it in items])
    res = {"all": summarize(labels, p, threshold)}
    for name in sets:
        m = names == name
        res[name] = summarize(labels[m], p[m], threshold)
    return res, z, labels, names


def calibrate(zval, yval, nval, sets: list[str], calibration: Calibration) -> tuple[float, float, str]:
    """(temperature, threshold, rule in words) from val logits, labels and set names: the
    temperature by NLL, the threshold labelling at most ``target_fpr`` of the real val images
    fake, pooled or averaged over ``sets`` (``calibration.rule``)."""
    temperature = fit_temperature(yval, zval)
    target_fpr = calibration.target_fpr
    pval = sigmoid(zval / temperature)
    if calibration.rule == "macro":
        threshold = threshold_at_macro_fpr(
            [pval[(yval == 0) & (nval == name)] for name in sets], target_fpr)
        rule = f"at most {target_fpr:.0%} of real val images labelled fake, averaged over the sets"
    else:
        threshold = threshold_at_fpr(pval[yval == 0], target_fpr)
        rule = f"at most {target_fpr:.0%} of real val images labelled fake"
    # a real val image scored exactly 1.0 puts "just above it" past 1, which no probability
    # reaches and Detector refuses: 1.0 is then the strictest threshold there is
    threshold = min(threshold, 1.0)
    log.info("temperature %.3f, threshold %.4f (%s)", temperature, threshold, rule)
    return temperature, threshold, rule
