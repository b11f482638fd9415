"""Training layer: training and evaluation sets, manifest rows to items, pseudo-fakes, balanced sampling, Datasets."""

from __future__ import annotations

import fnmatch
import random
from pathlib import Path

import numpy as np
import torch

from fakedet.data import decode as imageio
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.training.augment import augment, face_crop, native_crop
from fakedet.training.decoders import decoder_trace
from fakedet.training.selfblend import self_blend, self_blend_v2


class TrainSet(torch.utils.data.Dataset):
    """Items are (path, label, set, make): ``make`` is None for an image as it is, "sbi" or
    "recon" for a real image that is turned into a pseudo-fake (label 1) when it is loaded."""

    def __init__(self, items, pre, aug_cfg, seed, recon_dir=None, recon_local=0.5, view_crop=False,
                 sbi_version=1, face_boxes=None, fresh_draws=True, crop_boxes=None):
        self.items, self.pre, self.aug_cfg, self.seed = items, pre, aug_cfg, seed
        # {"<set>/<file name>": box} for the sets whose images are cropped to their face
        self.crop_boxes = crop_boxes or {}
        self.sbi_version, self.face_boxes = sbi_version, face_boxes or {}
        self.recon_dir, self.recon_local, self.view_crop = recon_dir, recon_local, view_crop
        self.set_index = {name: k for k, name in enumerate(set_order(items))}
        # Each draw of an image gets augmentations of its own. Recipes trained before this was
        # fixed (``legacy_augment_seed``) seeded them from the image and the worker only, so an
        # image had one fixed variant per loader worker for the whole run; they keep that, so
        # that their figures can be reproduced.
        self.fresh_draws = fresh_draws
        self._draws = 0  # per worker process: each worker holds its own copy of the data set

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label, name, make = self.items[i]
        if self.fresh_draws:
            self._draws += 1
            rng = random.Random((self.seed, i, torch.initial_seed(), self._draws).__hash__())
        else:
            rng = random.Random((self.seed, i, torch.initial_seed()).__hash__())
        try:
            img = imageio.load(path, self.pre)
            crop = self.crop_boxes.get(f"{name}/{Path(path).name}")
            if crop is not None:
                img = face_crop(img, crop, rng)
            if make == "sbi" and self.sbi_version == 2:
                img = self_blend_v2(img, rng, self.face_boxes.get(f"{name}/{Path(path).name}"))
            elif make == "sbi":
                img = self_blend(img, rng)
            elif make == "recon":
                img = decoder_trace(img, rng, self.recon_dir, self.recon_local)
            img = augment(img, rng, self.aug_cfg, self.pre.min_size)
            if self.view_crop:
                img = native_crop(img, self.pre.global_size, rng)
            view, patches = imageio.preprocess(img, self.pre, np.random.default_rng(rng.getrandbits(32)))
        except imageio.ImageError as exc:  # should not happen on the curated sets
            raise RuntimeError(f"{path}: {exc}") from None
        return (torch.from_numpy(view), torch.from_numpy(patches), torch.tensor(float(label)),
                torch.tensor(self.set_index[name]))


class EvalSet(torch.utils.data.Dataset):
    """Items as they are (no augmentation): the model's two inputs of each."""

    def __init__(self, items, pre, view_crop=False):
        self.items, self.pre, self.view_crop = items, pre, view_crop

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path = self.items[i][0]
        img = imageio.load(path, self.pre)
        if self.view_crop:
            img = native_crop(img, self.pre.global_size, None)
        view, patches = imageio.preprocess(img, self.pre)
        return torch.from_numpy(view), torch.from_numpy(patches)


def set_order(items) -> list[str]:
    """The set names of ``items`` in the order of the set index each sample carries."""
    return sorted({it[2] for it in items})


def load_sets(root: Path, sets: list[str], split: str, exclude_groups=(), removed=None):
    """(path, label, set) of every image in ``split`` of each set, in the sets' order, less
    those whose manifest ``group`` matches one of the shell patterns ``exclude_groups``; each
    pattern's count of images left out is added to the dict ``removed`` when one is given."""
    items = []
    for name in sets:
        for row in read_manifest(manifest(name, root), split):
            hit = next((pat for pat in exclude_groups if fnmatch.fnmatchcase(row.group, pat)), None)
            if hit is not None:
                if removed is not None:
                    removed[hit] = removed.get(hit, 0) + 1
                continue
            items.append((row.path, row.label, name))
    return items


def with_pseudo_fakes(items, sbi_sets=(), recon=False):
    """Adds a pseudo-fake copy (label 1) of every real item: "sbi" for the face sets in
    ``sbi_sets``, "recon" for all real items when ``recon``. Genuine items get make=None."""
    out = [(path, label, name, None) for path, label, name in items]
    for path, label, name in items:
        if label == 0 and name in sbi_sets:
            out.append((path, 1, name, "sbi"))
        if label == 0 and recon:
            out.append((path, 1, name, "recon"))
    return out


def balanced_weights(items, shares=None, set_weights=None, real_share=0.5):
    """Sampling weights. Real images make up ``real_share`` of the samples (half unless told),
    each set's real cell the same share; the rest is split between the pseudo-fake kinds (``shares``, e.g.
    {"sbi": 0.1, "recon": 0.15}, each spread evenly over its sets, or in proportion to
    ``set_weights`` {kind: {set: weight}}, 1 for a set not named) and the genuine fake cells,
    which share what is left equally."""
    shares, set_weights = shares or {}, set_weights or {}
    counts: dict = {}
    for _, label, name, make in items:
        counts[(name, label, make)] = counts.get((name, label, make), 0) + 1
    real = [c for c in counts if c[1] == 0]
    fake = [c for c in counts if c[1] == 1 and c[2] is None]
    if not 0.0 < real_share < 1.0:
        raise ValueError(f"the real images' share must lie strictly between 0 and 1, not {real_share}")
    total = {c: real_share / len(real) for c in real}
    genuine = 1.0 - real_share - sum(shares.get(m, 0.0) for m in {c[2] for c in counts if c[2]})
    if fake and genuine <= 1e-9:
        raise ValueError("pseudo-fake shares must leave room for the genuine fakes")
    if not fake and abs(genuine) > 1e-9:
        raise ValueError("with no genuine fakes the pseudo-fake shares must add up to the fake share")
    total.update({c: genuine / len(fake) for c in fake})
    for make in {c[2] for c in counts if c[2]}:
        cells = [c for c in counts if c[2] == make]
        rel = {c: float(set_weights.get(make, {}).get(c[0], 1.0)) for c in cells}
        total.update({c: shares.get(make, 0.0) * rel[c] / sum(rel.values()) for c in cells})
    return [total[(name, label, make)] / counts[(name, label, make)] for _, label, name, make in items]
