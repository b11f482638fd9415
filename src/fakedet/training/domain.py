"""Training layer: domain heads, a class-conditional adversary that makes the features forget an image's
training set."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


class DomainHeads(torch.nn.Module):
    """Class-conditional domain adversary (after Ganin & Lempitsky 2015, conditioned on the label):
    one small classifier guesses which training set a *real* image came from, another which set
    a *fake* one came from, both through a gradient-reversal layer. The fused features are thus
    pushed to carry no information about the data set beyond the real/fake label, i.e. away from
    "what this data set looks like". Used only in training; not part of the checkpoint."""

    def __init__(self, dim: int, n_sets: int, hidden: int = 128):
        super().__init__()
        self.heads = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_sets))
            for _ in range(2))

    def loss(self, feats, label, set_idx, alpha):
        rev = _ReverseGrad.apply(feats, alpha)
        total = feats.new_zeros(())
        for cls, head in enumerate(self.heads):
            sel = label == cls
            if sel.any():
                total = total + F.cross_entropy(head(rev[sel]), set_idx[sel]) * sel.float().mean()
        return total
