"""Training layer: recipes, a base file, small override files, ``--set``/``--seed``, validated.

A recipe file is JSON with four sections, ``model`` (a :class:`fakedet.model.config.ModelConfig`),
``data``, ``calibration`` and ``train``; every key the trainer reads is a field below, with the
default it takes when no file gives it. A file may name the file(s) it builds on::

    {"extends": "_base.json", "train": {"probe_steps": 150}}

``extends`` is a path relative to the file, or a list of them merged in order; the file's own keys
go on top. Dictionaries merge key by key; anything else (lists included) replaces what the base
had, and ``null`` sets a key back to "none" (for example ``"init": null``: no ImageNet start).
Then come command-line overrides, ``--set train.steps=2`` (the value parsed as JSON, else taken as
a string) and ``--seed N``. The result is checked: an unknown or misspelt key, or a value of the
wrong type, is an error that names it.

A run's name is the recipe file's path below ``configs/`` (``configs/ablation/all.json`` is
``ablation-all``) unless the top file gives ``"name"``; ``--seed N`` with another seed than the
recipe's appends ``_seedN`` to it and to the model's name.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from fakedet.model.config import ModelConfig


class RecipeError(ValueError):
    """A recipe that cannot be read or does not validate."""


@dataclass
class Augment:
    """Probabilities of the augmentations, drawn alike for both classes (see ``augment.augment``)."""

    p_crop: float = 0.5
    p_colour: float = 0.2
    p_resize: float = 0.3
    p_downscale: float = 0.0  # off by default: recipes without it draw the same numbers as before
    p_sharpen: float = 0.0
    p_blur: float = 0.1
    p_noise: float = 0.1
    p_jpeg: float = 0.5
    p_webp: float = 0.1
    p_frame: float = 0.0  # off by default: see augment.reframe


@dataclass
class Data:
    """Which sets' train splits are learned, which val splits calibrate, which test splits are reported."""

    train_sets: list[str]
    eval_sets: list[str]
    calibration_sets: Optional[list[str]] = None  # None: the training sets
    # Shell patterns on a manifest's ``group`` column: matching images are left out of training
    # and of the val calibration (never out of the test figures), e.g. "ffpp-*-Deepfakes-*" to
    # hold one FaceForensics++ method out of a run.
    exclude_groups: list[str] = field(default_factory=list)

    @property
    def calibration(self) -> list[str]:
        return self.calibration_sets if self.calibration_sets is not None else self.train_sets


@dataclass
class Calibration:
    """Threshold rule: at most ``target_fpr`` of real val images labelled fake, pooled over the
    calibration sets or averaged over them (``macro``)."""

    target_fpr: float = 0.05
    rule: str = "pooled"

    def __post_init__(self):
        if self.rule not in ("pooled", "macro"):
            raise RecipeError(f"calibration.rule must be 'pooled' or 'macro', got {self.rule!r}")


@dataclass
class Train:
    """The optimisation and the training-time tricks (each off unless named)."""

    steps: int
    batch_size: int
    lr: float
    seed: int = 0
    threads: Optional[int] = None  # None: one per CPU
    workers: int = 2
    init: Optional[str] = None  # "efficientnet_lite0": ImageNet weights for the backbone
    init_from: Optional[str] = None  # a finished run's checkpoint: a warm restart
    backbone_lr_mult: float = 1.0
    weight_decay: float = 1e-4
    warmup: int = 100
    log_every: int = 25
    save_every: int = 200
    legacy_augment_seed: bool = False  # one fixed augmentation per image and worker (older runs)
    augment: Augment = field(default_factory=Augment)
    view_crop: bool = False  # a native-resolution crop as the view
    pseudo_only: bool = False  # real images against pseudo-fakes only
    real_share: float = 0.5  # real images' share of the samples; pseudo- and genuine fakes share the rest
    sbi_share: float = 0.0  # self-blended pseudo-fakes' share of the samples
    sbi_sets: list[str] = field(default_factory=list)
    # relative weights that spread sbi_share over the sbi_sets ({set: weight}, 1 for a set not
    # named; null: evenly): e.g. more self-blends of a real-only set, whose look has no genuine fakes
    sbi_set_weights: Optional[dict] = None
    sbi_version: int = 1
    sbi_boxes: Optional[str] = None  # face boxes (experiments/face_boxes.py) for version 2
    # Sets whose images, real and fake alike, are cropped to their face (box from face_crop_boxes,
    # made by experiments/face_boxes.py --all-labels) before augmentation: for a set whose two
    # classes are framed differently (stylegan2_faces: tight crops against aligned portraits).
    face_crop_sets: list[str] = field(default_factory=list)
    face_crop_boxes: Optional[str] = None
    # Sets whose images the head learns from through the native-resolution texture branch only:
    # for their samples the backbone's and colour branch's features are withheld (zeroed) before
    # the head, so neither gets a gradient from them. For a fake-only set whose content and
    # composition no real set shares (sd15_finetunes), so that "looks like this set" cannot be
    # learnt as "fake" while its pixel-level traces still can.
    texture_only_sets: list[str] = field(default_factory=list)
    recon_share: float = 0.0  # decoder-trace pseudo-fakes' share of the samples
    recon_dir: str = "runs/decoders"
    recon_local: float = 0.5
    domain_adv: float = 0.0  # weight of the class-conditional domain adversary
    probe_steps: int = 0  # LP-FT: steps with a frozen backbone first
    average_from: Optional[float] = None  # weight averaging from this fraction of the steps
    bn_batches: int = 50  # batches that measure BatchNorm statistics of averaged weights
    # A checkpoint of the same architecture (usually the run's own starting point) whose weights
    # and BatchNorm statistics are mixed into the trained ones at the end, with this weight
    # (WiSE-FT, Wortsman et al. 2022): (1 - w) * trained + w * other.
    interpolate_with: Optional[str] = None
    interpolate_weight: Optional[float] = None


@dataclass
class Recipe:
    """A resolved recipe: what one training run does."""

    model: dict
    data: Data
    train: Train
    calibration: Calibration = field(default_factory=Calibration)
    name: str = "run"
    about: str = ""  # what the recipe is for, in words (never inherited, like the name)

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.model)

    def to_dict(self) -> dict:
        """Every setting, defaults included: a complete recipe file that reproduces the run."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


# ----------------------------------------------------------------------------- validation
def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
        origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where} must be an object, got {value!r}")
        return value
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}[tp]
    if not ok(value):
        raise RecipeError(f"{where} must be {'a number' if tp is float else 'a ' + tp.__name__}, got {value!r}")
    return value


def _build(cls, raw: Any, where: str):
    if not isinstance(raw, dict):
        raise RecipeError(f"{where or 'the recipe'} must be an object, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            path = f"{where}.{key}" if where else key
            near = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise RecipeError(f"unknown recipe key {path!r}{hint}; {where or 'a recipe'} takes: "
                              f"{', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name in raw:
            kwargs[name] = _check_type(raw[name], hints[name], path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecipeError(f"the recipe gives no {path!r}")
    return cls(**kwargs)


def validate(raw: dict) -> Recipe:
    """A Recipe from a merged recipe dictionary, or RecipeError naming the first bad key."""
    recipe = _build(Recipe, raw, "")
    try:
        ModelConfig.from_dict(recipe.model)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"model: {exc}") from None
    return recipe


# ----------------------------------------------------------------------------- files and overrides
def merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: dictionaries key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def read(path: str | Path, _seen: tuple = ()) -> dict:
    """A recipe file with the files it extends merged under it (not yet validated)."""
    path = Path(path)
    if path.resolve() in _seen:
        raise RecipeError(f"{path}: extends itself (through {' -> '.join(str(p) for p in _seen)})")
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise RecipeError(f"{path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a JSON object")
    bases = raw.pop("extends", [])
    out: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        out = merge(out, read(path.parent / base, _seen + (path.resolve(),)))
    out.pop("name", None)  # a run's name and description are its own file's, never inherited
    out.pop("about", None)
    return merge(out, raw)


def run_name(path: str | Path) -> str:
    """``configs/ablation/all.json`` -> ``ablation-all``; a path outside configs/: its stem."""
    parts = Path(path).with_suffix("").parts
    if "configs" in parts:
        parts = parts[len(parts) - parts[::-1].index("configs"):]
    else:
        parts = parts[-1:]
    return "-".join(parts)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string: --set train.init_from=runs/x/final.safetensors


def apply_set(raw: dict, assignment: str) -> dict:
    """``key.sub=value`` on a recipe dictionary (the value parsed as JSON, else a string)."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {assignment!r}: expected KEY=VALUE, for example train.steps=100")
    node = raw = copy.deepcopy(raw)
    *parents, leaf = key.strip().split(".")
    for p in parents:
        if not isinstance(node.get(p, {}), dict):
            raise RecipeError(f"--set {assignment!r}: {p!r} is not a section")
        node = node.setdefault(p, {})
    node[leaf] = _parse_value(value)
    return raw


def resolve(path: str | Path, sets: list[str] | tuple = (), seed: int | None = None) -> Recipe:
    """The recipe a run uses: the file with its bases, then each ``--set``, then ``--seed``."""
    raw = read(path)
    own = json.loads(Path(path).read_text())
    raw["name"] = own.get("name") or run_name(path)
    for assignment in sets:
        raw = apply_set(raw, assignment)
    recipe = validate(raw)
    if seed is not None and seed != recipe.train.seed:
        recipe.train.seed = seed
        recipe.name += f"_seed{seed}"
        if recipe.model.get("name"):
            recipe.model["name"] += f"_seed{seed}"
    return recipe
