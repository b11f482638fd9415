"""Model layer: the face expert of ``fakedet scan --faces`` and its fusion with the network.

The expert is an EfficientNet-Lite0 trained on real faces, each against a self-blended copy of
itself and, in files whose ``training`` record says so, against genuine fakes of the face sets
(``experiments/sbi_expert.py``; ``ExpertMeta.trained_on`` says which). In face mode each face
MTCNN finds is scored by both models: the network on its usual face crop, the expert on a square
mapped from the same box. The two logits are fused in the network's units::

    l = (1 - w) * l_n + w * (mu_n + sd_n * (l_e - mu_e) / sd_e)

with ``mu`` and ``sd`` each model's mean and standard deviation over real val faces (no other
label read), so that ``w = 0`` is the network's own face score. Decision record:
docs/decisions/2026-12-03-a-fused-face-mode-in-the-product.md.

Everything the fusion needs ships in one safetensors file: the expert's tensors, and in its
metadata the weight, the norms, the box-to-square map, the face-mode verdict thresholds for the
fused score and the sha256 of the network the norms were read for (the fusion is used only with
that network).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

FACE_EXPERT_WEIGHTS = "face-expert.safetensors"
#: the square crop is first resized to this (as the expert's training crops were stored), then
#: to the expert's input size
STORED_CROP = 256
MEAN = 0.5  # EfficientNet-Lite's (TensorFlow) normalisation, every channel
STD = 0.5


class ExpertError(ValueError):
    """The face expert's file is missing, unreadable or inconsistent."""


def build_model():
    """The expert's network: EfficientNet-Lite0 features and one linear logit (torch is
    imported here, so that reading the metadata does not need it)."""
    import torch.nn as nn

    from fakedet.model.backbones import create_backbone

    class FaceExpert(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = create_backbone("tf_efficientnet_lite0")
            self.head = nn.Linear(self.backbone.num_features, 1)

        def forward(self, x):
            return self.head(self.backbone(x)).squeeze(1)

    return FaceExpert()


def _check_training(t) -> None:
    """Raise TypeError unless ``t`` is a well-formed training record (see ExpertMeta.training)."""
    if not isinstance(t, dict):
        raise TypeError(f"training is {type(t).__name__}, not a mapping")
    for key in ("real_sets", "genuine_fakes"):
        v = t.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise TypeError(f"training[{key!r}] is not a list of names: {v!r}")
    for key in ("left_out", "recipe"):
        if t.get(key) is not None and not isinstance(t[key], str):
            raise TypeError(f"training[{key!r}] is not a name: {t[key]!r}")
    steps = t.get("steps", 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise TypeError(f"training['steps'] is not a count: {steps!r}")


@dataclass(frozen=True)
class ExpertMeta:
    """What the fusion needs besides the expert's tensors."""

    size: int  # the expert's input side, px
    weight: float  # w, the expert's share of the fused logit
    norm_expert: tuple[float, float]  # (mean, sd) of the expert's logits over the reference reals
    norm_network: tuple[float, float]  # the same for the network's face logits
    box_map: dict  # MTCNN box -> square: {"ratio", "dx", "dy"} (see ``expert_square``)
    network_sha256: str  # the network the norms were read for
    face_verdicts: Optional[dict] = None  # {"fake", "real", "rule"} for the fused face score
    #: what it was trained on: {"recipe": pseudo-fakes ("self", "parts", "swap", "mix", "ae", "aemix"),
    #: "real_sets": [...], "genuine_fakes": [...], "left_out": a method or None, "steps": n};
    #: None in files written before it was recorded
    training: Optional[dict] = None
    #: a number g: an image with a face found is scored by its faces (the maximum of their fused
    #: scores), and by the whole image too when the whole image's p_fake is at least g (the
    #: network's whole-image fake threshold); the whole image's score is reported as ``p_whole``
    #: either way. None (files written before it): the maximum over the whole image and the faces
    #: (docs/decisions/2026-12-05-the-whole-image-when-it-is-sure.md)
    whole_gate: Optional[float] = None

    def to_metadata(self) -> dict[str, str]:
        d = {"size": self.size, "weight": self.weight, "norm_expert": list(self.norm_expert),
             "norm_network": list(self.norm_network), "box_map": self.box_map,
             "network_sha256": self.network_sha256, "face_verdicts": self.face_verdicts}
        if self.training is not None:
            d["training"] = self.training
        if self.whole_gate is not None:
            d["whole_gate"] = self.whole_gate
        return {"fakedet_face_expert": json.dumps(d)}

    def trained_on(self) -> str:
        """In plain words, what the expert learnt from."""
        t = self.training
        if not t:
            return "(not recorded in the file)"
        made = {"self": "self-blends", "parts": "self-blends (half through a mouth or lower-face mask)",
                "swap": "pseudo swaps", "mix": "self-blends and pseudo swaps",
                "ae": "autoencoder-redrawn blends", "aemix": "self-blends and autoencoder-redrawn blends"}
        recipe = t.get("recipe") or "self"
        sets = ", ".join(t.get("real_sets") or [])
        words = f"{made.get(recipe, recipe + ' pseudo-fakes')} of the real faces of {sets}"
        if t.get("genuine_fakes"):
            words += f" and genuine fakes of {', '.join(t['genuine_fakes'])}"
            if t.get("left_out"):
                words += f" (without {t['left_out']})"
        else:
            words += " (no genuine fake)"
        if t.get("continued_from") and t.get("continued_steps") is not None:
            words += (f"; {t.get('steps')} steps, the last {t['continued_steps']} continued from "
                      f"{t['continued_from']}")
        elif t.get("continued_from"):
            words += f"; {t.get('steps')} steps continued from {t['continued_from']}"
        return words

    def image_score(self, three_way: bool = True) -> str:
        """In plain words, how face mode scores an image with this expert (``three_way``: with
        the `real` verdict, which then needs every score below its threshold)."""
        if self.whole_gate is not None:
            return (f"the highest of its faces' scores, and the whole image's too when that reaches "
                    f"{self.whole_gate:.6f} (no face found: the whole image's)"
                    + ("; `real` needs every score, the whole image's included, below the real threshold"
                       if three_way else ""))
        return "the maximum over the whole image and its faces"

    def describe(self, three_way: bool = True) -> dict:
        """What ``fakedet info`` and ``Detector.info`` show of it."""
        return {"weight": self.weight, "input": f"{self.size}x{self.size} face square",
                "image_score": self.image_score(three_way), "trained_on": self.trained_on(),
                "training": self.training, "face_verdicts": self.face_verdicts}

    @classmethod
    def from_metadata(cls, md: Optional[dict]) -> "ExpertMeta":
        try:
            d = json.loads((md or {})["fakedet_face_expert"])
            if isinstance(d["size"], bool) or not isinstance(d["size"], int):  # 128.9 or "128" was cut to 128
                raise ValueError(f"size must be a whole number, not {d['size']!r}")
            meta = cls(size=d["size"], weight=float(d["weight"]),
                       norm_expert=(float(d["norm_expert"][0]), float(d["norm_expert"][1])),
                       norm_network=(float(d["norm_network"][0]), float(d["norm_network"][1])),
                       box_map={k: float(d["box_map"][k]) for k in ("ratio", "dx", "dy")},
                       network_sha256=str(d["network_sha256"]), face_verdicts=_verdicts(d.get("face_verdicts")),
                       training=d.get("training"), whole_gate=_gate(d.get("whole_gate")))
            if meta.training is not None:
                _check_training(meta.training)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:  # Overflow: a 400-digit int
            raise ExpertError(f"face expert metadata missing or malformed: {exc!r}") from None
        numbers = [meta.weight, *meta.norm_expert, *meta.norm_network, *meta.box_map.values()]
        if meta.whole_gate is not None and not (0.0 <= meta.whole_gate <= 1.0):  # NaN too
            raise ExpertError(f"face expert metadata out of range: whole_gate {meta.whole_gate!r}")
        if not all(math.isfinite(v) for v in numbers) or not (0.0 <= meta.weight <= 1.0) \
                or meta.norm_expert[1] <= 1e-6 or meta.norm_network[1] <= 1e-6 or not 16 <= meta.size <= MAX_SIZE \
                or meta.box_map["ratio"] <= 0:
            raise ExpertError(f"face expert metadata out of range: {d}")
        return meta


#: the largest expert input side a file may ask for (the shipped expert's is 128): a file asking
#: for thousands would have every face scored at that size, gigabytes a batch
MAX_SIZE = 512

def _verdicts(value) -> Optional[dict]:
    """The file's ``face_verdicts``: None (not calibrated), or ``fake`` and ``real`` numbers with
    0 <= real <= fake <= 1, as the network's own verdicts are checked."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"face_verdicts must be an object, not {value!r}")
    for key in ("fake", "real"):
        v = value.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"face_verdicts {key} must be a number, not {v!r}")
    if not 0.0 <= value["real"] <= value["fake"] <= 1.0:  # NaN too
        raise ValueError(f"face_verdicts out of range (0 <= real <= fake <= 1): {value!r}")
    return value


def _gate(value) -> Optional[float]:
    """The file's ``whole_gate``: None, or a JSON number (not true/false, not a string)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"whole_gate must be a number, not {value!r}")
    return float(value)


def default_expert_path() -> Path:
    """The shipped face expert: inside the installed package (wheel) or in the repository's
    weights/ folder."""
    from fakedet.model.checkpoint import locate_weights

    return locate_weights(FACE_EXPERT_WEIGHTS)


def read_meta(path: Path) -> ExpertMeta:
    """The expert file's metadata alone (no tensor read, torch not imported)."""
    from safetensors import safe_open

    shown = os.fsdecode(path)  # as the user typed it: Path drops a trailing slash
    path = Path(path)
    if not path.is_file() or shown.endswith("/"):
        from fakedet.data.sources import missing_message

        raise ExpertError(missing_message("face expert weights file", shown))
    try:
        with safe_open(str(path), framework="numpy") as f:
            md = f.metadata()
    except Exception as exc:
        raise ExpertError(f"face expert weights {path} cannot be read: {exc}") from None
    return ExpertMeta.from_metadata(md)


def load(path: Path):
    """The expert (eval mode, CPU) and its metadata, from safetensors only."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_meta(path)
    try:
        state = load_file(str(path))
        model = build_model()
        from fakedet.model.checkpoint import state_problems

        parts = state_problems(model.state_dict(), state)
        if parts:
            raise ExpertError(f"face expert weights {path} do not match the expert: " + "; ".join(parts))
        model.load_state_dict(state)
    except ExpertError:
        raise
    except Exception as exc:
        raise ExpertError(f"face expert weights {path} cannot be used: {exc}") from None
    return model.eval(), meta


def save(path: Path, tensors: dict, meta: ExpertMeta) -> None:
    """Writes the expert's tensors and metadata to ``path`` (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta.to_metadata())
    tmp.replace(path)


def expert_square(box: Sequence[float], box_map: dict, w: int, h: int) -> tuple[int, int, int, int]:
    """The expert's square for an MTCNN box ``[x0, y0, x1, y1]``: the box's longer side times
    ``ratio``, its centre moved by ``(dx, dy)`` box sides; shrunk and shifted to lie inside a
    ``w`` x ``h`` image."""
    side0 = max(box[2] - box[0], box[3] - box[1])
    cx = (box[0] + box[2]) / 2 + box_map["dx"] * side0
    cy = (box[1] + box[3]) / 2 + box_map["dy"] * side0
    side = min(side0 * box_map["ratio"], w, h)
    x0, y0 = min(max(cx - side / 2, 0), w - side), min(max(cy - side / 2, 0), h - side)
    return tuple(int(round(v)) for v in (x0, y0, x0 + side, y0 + side))


def expert_crop(img: Image.Image, box: Sequence[float], box_map: dict, size: int) -> np.ndarray:
    """The expert's input for one face, ``(size, size, 3)`` uint8: the mapped square, resized to
    :data:`STORED_CROP` (bicubic) and then to ``size`` (bilinear), as in training."""
    sq = expert_square(box, box_map, img.width, img.height)
    crop = img.crop(sq).resize((STORED_CROP, STORED_CROP), Image.Resampling.BICUBIC)
    return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))


def to_input(crops: np.ndarray):
    """``(N, S, S, 3)`` uint8 crops as the expert's float input ``(N, 3, S, S)``."""
    import torch

    x = torch.from_numpy(np.array(crops, dtype=np.uint8)).permute(0, 3, 1, 2).float()  # a writable copy
    # contiguous: in the channels-last layout the permute leaves, a crop's logit on the CPU
    # depends on the other crops of its sub-batch (so a record would depend on scan -b)
    return ((x / 255.0 - MEAN) / STD).contiguous()


def expert_logits(model, crops: np.ndarray, runner=None, device=None) -> np.ndarray:
    """The expert's logits for ``(N, S, S, 3)`` uint8 crops: on ``device`` (the model's) when
    given, else with ``runner`` (a :class:`~fakedet.inference.cpurun.CpuRunner`) in its fixed
    sub-batches and threads, so that a logit does not depend on the batch it came in."""
    import torch

    if len(crops) == 0:
        return np.zeros(0, np.float64)
    x = to_input(crops)
    if runner is not None and device is None:
        return torch.cat(runner.run(model, x)).double().numpy()
    with torch.inference_mode():
        return model(x if device is None else x.to(device)).double().cpu().numpy()


def fuse(l_network, l_expert, meta: ExpertMeta):
    """The fused logit, in the network's units (``w = 0``: ``l_network``)."""
    (mu_n, sd_n), (mu_e, sd_e) = meta.norm_network, meta.norm_expert
    w = meta.weight
    return (1 - w) * np.asarray(l_network, np.float64) + w * (mu_n + sd_n * (np.asarray(l_expert) - mu_e) / sd_e)


def standardised(l_expert: float, meta: ExpertMeta) -> float:
    """The expert's logit standardised by its reference reals (0 at their mean); its sigmoid is
    the ``p_expert`` of a face record (for reading, not for verdicts)."""
    return (l_expert - meta.norm_expert[0]) / meta.norm_expert[1]
