"""Training layer: weight averaging (SWA/SWAD, a run's running mean), interpolation with another
checkpoint (WiSE-FT) and BatchNorm statistics measured afresh."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fakedet.model.fused import FakeDetector


class WeightAverage:
    """The running mean of a model's floating-point state (weights and BatchNorm buffers) over the
    steps it is updated at; saved next to the run's checkpoint so that a resumed run goes on."""

    def __init__(self, model: FakeDetector):
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        self.n = 1

    def update(self, model: FakeDetector) -> None:
        self.n += 1
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if k in self.state:
                    self.state[k] += (v.detach() - self.state[k]) / self.n

    def save(self, path: Path, step: int) -> None:
        from safetensors.torch import save_file

        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in self.state.items()}, str(tmp),
                  metadata={"n": str(self.n), "step": str(step)})
        os.replace(tmp, path)

    @classmethod
    def resume(cls, model: FakeDetector, path: Path, step: int) -> "WeightAverage | None":
        """The saved average if it was saved at ``step`` (the weights' own step), else None."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        if int(meta.get("step", -1)) != step:
            return None
        avg = cls(model)
        avg.state, avg.n = load_file(str(path)), int(meta["n"])
        return avg

    def apply(self, model: FakeDetector) -> None:
        model.load_state_dict({**model.state_dict(), **self.state})


@torch.no_grad()
def recompute_bn(model: FakeDetector, loader, batches: int) -> int:
    """Measures every BatchNorm layer's running statistics afresh, as the plain mean over
    ``batches`` training batches; averaged weights need statistics of their own."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative mean
    model.train()
    n = 0
    for view, patches, _label, _set in loader:
        model.features(view, patches)
        n += 1
        if n >= batches:
            break
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()
    return n


def interpolate(model: FakeDetector, other: FakeDetector, weight: float) -> None:
    """Set every floating-point weight and BatchNorm statistic of ``model`` to ``(1 - weight) *
    its own + weight * other's`` (WiSE-FT, Wortsman et al. 2022: a fine-tuned model mixed with
    its starting point). The two must have the same architecture; integer buffers
    (``num_batches_tracked``) stay ``model``'s."""
    if not 0.0 < weight < 1.0:
        raise ValueError(f"interpolation weight must lie strictly between 0 and 1, not {weight}")
    mine, theirs = model.state_dict(), other.state_dict()
    if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
        raise ValueError("cannot interpolate models of different architectures")
    model.load_state_dict({k: (1.0 - weight) * v + weight * theirs[k].to(v.dtype) if v.is_floating_point() else v
                           for k, v in mine.items()})
