"""Model layer: checkpoints, one ``.safetensors`` file with the state dict and a JSON metadata entry.

The metadata entry ``fakedet`` holds the model and preprocessing config, the decision threshold,
the calibration temperature, training provenance and evaluation figures. Loading uses
safetensors only (no pickle), and a state dict that does not match its config is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from fakedet.model.config import ModelConfig, backbone_builder

FORMAT_VERSION = 1
META_KEY = "fakedet"
DEFAULT_WEIGHTS_NAME = "fakedet-default.safetensors"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why."""


@dataclass
class CheckpointMeta:
    """Everything a checkpoint carries besides tensors."""

    model: dict[str, Any]
    threshold: float = 0.5
    temperature: float = 1.0
    #: Threshold for face mode (the maximum over faces and the whole image), calibrated apart
    #: because a maximum of several scores is higher than one score; None: use ``threshold``.
    face_threshold: Optional[float] = None
    #: The three verdicts: ``{"fake": f, "real": r, "rule": "..."}`` with 0 <= r <= f <= 1:
    #: "fake" when p_fake >= f, "real" when p_fake < r, "uncertain" in between. None: the
    #: plain two-way rule at ``threshold``.
    verdicts: Optional[dict[str, Any]] = None
    #: The same for face mode (images in which a face was found); None: ``face_threshold``.
    face_verdicts: Optional[dict[str, Any]] = None
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CheckpointMeta":
        data = json.loads(text)
        if not isinstance(data, dict) or "model" not in data:
            raise CheckpointError("checkpoint metadata has no model config")
        version = data.get("format_version", 0)
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint format version {version} is not supported (expected {FORMAT_VERSION})"
            )
        known = {"model", "threshold", "face_threshold", "verdicts", "face_verdicts", "temperature",
                 "training", "evaluation", "format_version"}
        meta = cls(**{k: v for k, v in data.items() if k in known})
        meta.validate()
        return meta

    def cutoffs(self, faces: bool = False) -> tuple[float, float]:
        """``(fake_at, real_below)`` of the verdicts; equal (two-way) when the checkpoint has
        no three-verdict thresholds. ``faces``: those for an image in which a face was found."""
        v = self.face_verdicts if faces else self.verdicts
        if v is None and faces and self.face_threshold is not None:
            return float(self.face_threshold), float(self.face_threshold)
        if v is None:
            return (self.cutoffs(False) if faces else (float(self.threshold), float(self.threshold)))
        return float(v["fake"]), float(v["real"])

    def model_config(self) -> ModelConfig:
        """The model and preprocessing config this metadata carries; the one place it is parsed.

        Raises:
            CheckpointError: the config has unknown keys or invalid values.
        """
        try:
            return ModelConfig.from_dict(self.model)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint model config is invalid: {exc}") from None

    def validate(self) -> None:
        """Refuses metadata that would load but score nonsense (or fail on every image)."""
        if not isinstance(self.model, dict):
            raise CheckpointError("checkpoint model config is not a mapping")
        for name in ("training", "evaluation"):
            if not isinstance(getattr(self, name), dict):
                raise CheckpointError(f"checkpoint {name} metadata is not a mapping")
        for name in ("threshold", "face_threshold"):
            v = getattr(self, name)
            if v is None and name == "face_threshold":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise CheckpointError(f"checkpoint {name} must be a number in [0, 1], got {v!r}")
        for name in ("verdicts", "face_verdicts"):
            v = getattr(self, name)
            if v is None:
                continue
            ok = isinstance(v, dict) and all(
                not isinstance(v.get(k), bool) and isinstance(v.get(k), (int, float)) for k in ("fake", "real"))
            if not ok or not 0.0 <= v["real"] <= v["fake"] <= 1.0:
                raise CheckpointError(f"checkpoint {name} must hold numbers 0 <= real <= fake <= 1, got {v!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t < 1e6:  # a 400-digit int too
            raise CheckpointError(f"checkpoint temperature must be a positive number, got {t!r}")


def default_weights_path() -> Path:
    """Where the shipped weights are: $FAKEDET_WEIGHTS, inside the installed package (wheel), or
    the repository's weights/ folder (editable install or source checkout)."""
    env = os.environ.get("FAKEDET_WEIGHTS")
    if env:
        return Path(env)
    return locate_weights(DEFAULT_WEIGHTS_NAME)


def locate_weights(name: str) -> Path:
    """A shipped weights file: inside the installed package (wheel) or in the repository's
    weights/ folder (editable install or source checkout); the latter when neither exists."""
    package = Path(__file__).resolve().parents[1]
    candidates = [package / "weights" / name, package.parents[1] / "weights" / name]
    for cand in candidates:
        if cand.is_file():
            return cand
    return candidates[-1]


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(model, meta: CheckpointMeta, path: str | os.PathLike) -> None:
    """Writes the model's state dict and metadata to one safetensors file (atomically)."""
    from safetensors.torch import save_file

    if getattr(model, "fused", False):
        raise ValueError("a model fused for inference has no BatchNorm layers left to save; "
                         "save the model as loaded by checkpoint.load")

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata={META_KEY: meta.to_json()})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


#: the largest checkpoint read (the shipped one is 14 MB; a timm backbone of a billion float32
#: parameters would be 4 GB)
MAX_CHECKPOINT_BYTES = 4 << 30


def read_meta(path: str | os.PathLike) -> CheckpointMeta:
    """Reads only the metadata (cheap: no tensor is loaded, and torch is not imported)."""
    from safetensors import safe_open

    shown = os.fsdecode(path)  # as the user typed it: Path drops a trailing slash
    if not shown:
        raise CheckpointError("weights path is empty")
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"weights path is a folder, not a .safetensors file: {shown}")
    if not path.is_file() or shown.endswith("/"):
        from fakedet.data.sources import missing_message

        raise CheckpointError(missing_message("weights file", shown))
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:  # its hash alone would read it all (a sparse file can claim terabytes)
        raise CheckpointError(f"{shown} is {size:,} bytes, more than a fakedet checkpoint may be "
                              f"({MAX_CHECKPOINT_BYTES:,})")
    try:
        with safe_open(str(path), framework="numpy") as fh:  # "pt" would import torch
            raw = (fh.metadata() or {}).get(META_KEY)
    except Exception as exc:
        raise CheckpointError(f"not a readable safetensors file: {path} ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path} has no '{META_KEY}' metadata: not a fakedet checkpoint")
    try:
        return CheckpointMeta.from_json(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint metadata is invalid: {exc}") from None


# State-dict entries that are BatchNorm statistics, not trained parameters.
_BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")
_MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header


def tensor_shapes(path: str | os.PathLike) -> dict[str, list[int]]:
    """Each tensor's shape, from the file's JSON header alone (no tensor is read, torch is not
    imported).

    Raises:
        CheckpointError: the header cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if not 0 < size <= _MAX_HEADER_BYTES:
                raise ValueError(f"header size {size}")
            header = json.loads(fh.read(size))
        return {k: [int(n) for n in v["shape"]] for k, v in header.items() if k != "__metadata__"}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"not a readable safetensors file: {path} ({exc})") from None


def parameter_count(path: str | os.PathLike) -> int:
    """How many trained parameters the checkpoint holds (BatchNorm statistics excluded)."""
    total = 0
    for name, shape in tensor_shapes(path).items():
        if not name.endswith(_BUFFER_SUFFIXES):
            n = 1
            for d in shape:
                n *= d
            total += n
    return total


def describe(path: Optional[str | os.PathLike], meta: Optional[CheckpointMeta] = None) -> dict[str, Any]:
    """What ``fakedet info`` shows: the model, its input handling, verdict thresholds, training
    and evaluation, read from the file's header without building the model (or importing torch).
    ``path`` None: from ``meta`` alone (no parameter count, file name or hash).

    Raises:
        CheckpointError: the file is not a usable fakedet checkpoint.
    """
    meta = read_meta(path) if meta is None else meta
    cfg = meta.model_config()
    pre = cfg.preprocess
    training = dict(meta.training)
    training.pop("config", None)
    return {
        "name": cfg.name,
        "backbone": cfg.backbone,
        "backbone_built_by": backbone_builder(cfg.backbone, cfg.backbone_kwargs),
        "branches": [n for n, on in (("backbone", cfg.use_backbone), ("colour", cfg.use_colour),
                                     ("texture", cfg.use_texture)) if on],
        "input": {
            "global_view": f"whole image resized to {pre.global_size}x{pre.global_size} ({pre.interpolation})",
            "texture_patches": f"{pre.num_patches} native-resolution {pre.patch_size}x{pre.patch_size} crops "
                               "on a fixed grid",
            "min_size": pre.min_size,
            "max_pixels": pre.max_pixels,
        },
        "parameters": parameter_count(path) if path is not None else None,
        "threshold": meta.cutoffs(faces=False)[0],
        "face_threshold": meta.face_threshold,
        "two_way_threshold": meta.threshold,
        "verdicts": meta.verdicts,
        "face_verdicts": meta.face_verdicts,
        "cutoffs": {"whole_image": list(meta.cutoffs(faces=False)), "face": list(meta.cutoffs(faces=True))},
        "temperature": float(meta.temperature),
        "training": training,
        "evaluation": meta.evaluation,
        "weights": str(path) if path is not None else None,
        "sha256": sha256(path) if path is not None else None,
    }


def state_problems(expected: dict, state: dict) -> list[str]:
    """What keeps the tensors ``state`` from being the model's ``expected`` state dict: names
    missing or unexpected, shapes, dtypes (``load_state_dict`` would cast bool or int tensors
    without a word, and score with them) and values that are not finite; [] when none."""
    import torch

    common = set(expected) & set(state)
    found = [
        ("missing", sorted(set(expected) - set(state))),
        ("unexpected", sorted(set(state) - set(expected))),
        ("wrong shape", sorted(k for k in common if expected[k].shape != state[k].shape)),
        ("wrong dtype", sorted(k for k in common if expected[k].dtype != state[k].dtype)),
        ("not finite (NaN or infinity)", sorted(k for k in common if state[k].is_floating_point()
                                                 and not bool(torch.isfinite(state[k]).all()))),
    ]
    parts = []
    for label, keys in found:
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            parts.append(f"{label}: {', '.join(keys[:3])}{more}")
    return parts


def load(path: str | os.PathLike, device: str = "cpu"):
    """Builds the model from the checkpoint's config and loads its weights.

    Returns:
        ``(model, meta)`` with the model in eval mode on ``device``.

    Raises:
        CheckpointError: unreadable file, missing metadata, or weights that do not match the config.
    """
    from safetensors.torch import load_file

    from fakedet.model.fused import FakeDetector

    meta = read_meta(path)
    cfg = meta.model_config()
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"cannot read weights from {path}: {exc}") from None
    try:
        model = FakeDetector(cfg)
    except Exception as exc:
        raise CheckpointError(f"cannot build model {cfg.backbone!r}: {exc}") from None
    parts = state_problems(model.state_dict(), state)
    if parts:
        raise CheckpointError(
            f"weights in {path} do not match the model config ({cfg.backbone}): " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(device), meta
