"""Model layer: the model's configuration (architecture plus the data layer's preprocessing contract).

The configuration travels inside every checkpoint (see :mod:`fakedet.model.checkpoint`), so the way an
image is turned into model inputs at scan time can never drift from the way it was done in
training. The preprocessing part, :class:`~fakedet.data.preprocess.PreprocessConfig`, belongs to
the data layer, which decodes images by it; it is re-exported here. This module imports neither
torch nor PIL.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fakedet.data.preprocess import PreprocessConfig

__all__ = ["NATIVE_BACKBONES", "ModelConfig", "PreprocessConfig", "backbone_builder"]

#: backbones that :mod:`fakedet.model.backbones` builds itself (timm's architecture and parameter
#: names, without importing timm); any other name is built by ``timm.create_model``
NATIVE_BACKBONES = tuple(f"tf_efficientnet_lite{i}" for i in range(5))


def backbone_builder(name: str, kwargs: dict | None = None) -> str:
    """Who builds the backbone ``name``: ``"fakedet"`` (no timm needed) or ``"timm"``."""
    return "fakedet" if name in NATIVE_BACKBONES and not kwargs else "timm"


@dataclass
class ModelConfig:
    """Architecture of the fused detector.

    Attributes:
        name: a human-readable model name, shown by ``fakedet info``.
        backbone: a timm model name, created with ``pretrained=False``
            (``tf_efficientnet_lite0``-``lite4`` by :mod:`fakedet.model.backbones`, without timm).
        backbone_kwargs: extra keyword arguments for ``timm.create_model`` (with any, timm
            builds the backbone): only ``drop_rate`` and ``drop_path_rate``, numbers
            (:data:`fakedet.model.backbones.TIMM_KWARGS`; others could make timm read a file).
        use_backbone: include the backbone's pooled features in the fused head.
        use_colour: include the global-colour branch.
        use_texture: include the local-texture branch.
        colour_bins: histogram bins per colour statistic in the colour branch.
        colour_dim: width of the colour branch's output.
        texture_width: channel width of the texture branch's convolutions.
        texture_dim: width of the texture branch's output.
        dropout: dropout before the fused linear head.
        preprocess: the preprocessing contract.
    """

    name: str = "fakedet"
    backbone: str = "tf_efficientnet_lite0"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    use_backbone: bool = True
    use_colour: bool = True
    use_texture: bool = True
    colour_bins: int = 16
    colour_dim: int = 32
    texture_width: int = 32
    texture_dim: int = 64
    dropout: float = 0.2
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self):
        """Refuses values a checkpoint's metadata could hold that would build no model, a huge one
        (gigabytes for a few-megabyte file), or one that silently differs ("false" is true)."""
        if not isinstance(self.name, str) or not isinstance(self.backbone, str):
            raise ValueError("name and backbone must be text")
        if not isinstance(self.backbone_kwargs, dict):
            raise ValueError(f"backbone_kwargs must be a mapping, got {self.backbone_kwargs!r}")
        for flag in ("use_backbone", "use_colour", "use_texture"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        for size in ("colour_bins", "colour_dim", "texture_width", "texture_dim"):
            v = getattr(self, size)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096:
                raise ValueError(f"{size} must be a whole number from 1 to 4096, got {v!r}")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {d!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Builds a config from a dict, refusing unknown keys so typos never pass silently."""
        data = dict(data)
        pre = data.pop("preprocess", {}) or {}
        if not isinstance(pre, dict):
            raise ValueError("preprocess config must be a mapping")
        _check_keys(cls, data, "model")
        _check_keys(PreprocessConfig, pre, "preprocess")
        pre = {k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()}
        return cls(**data, preprocess=PreprocessConfig(**pre))


def _check_keys(klass: type, data: dict[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(klass)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} config keys: {', '.join(unknown)}")
