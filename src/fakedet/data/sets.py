"""Data layer: the training data, where it lives (``data_root``) and which labelled sets it holds.

Every set is a folder ``<root>/<set>/`` with ``real/``, ``fake/`` and a ``manifest.csv``
(``file,label,group,split``; see ``../shared/data/README.md``). Scripts, tests and the trainer
take the root and the set names from here, so that neither is written out anywhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PAIRED, REAL_ONLY, FAKE_ONLY = "paired", "real-only", "fake-only"


@dataclass(frozen=True)
class DataSet:
    """One labelled set: its folder name, which classes it holds, and whether its images are
    face crops (the sets that self-blending and the face studies use)."""

    name: str
    kind: str  # PAIRED, REAL_ONLY or FAKE_ONLY
    faces: bool = False


# In the order of the data README's table. The first six are the sets every recipe and study so
# far trains or reports on (``CORE``); the last three were added later and are used by none yet.
SETS: tuple[DataSet, ...] = (
    DataSet("dfdc_faceswap", PAIRED, faces=True),
    DataSet("lfw_faceswap", PAIRED, faces=True),
    DataSet("cifake_sd14", PAIRED),
    DataSet("stylegan2_faces", PAIRED, faces=True),
    DataSet("imagenet_real_photos", REAL_ONLY),
    DataSet("sd15_finetunes", FAKE_ONLY),
    DataSet("ffpp_faces", PAIRED, faces=True),
    DataSet("utkface_real", REAL_ONLY, faces=True),
    DataSet("unsplash_portraits", REAL_ONLY, faces=True),
)
BY_NAME = {s.name: s for s in SETS}
CORE: tuple[str, ...] = tuple(s.name for s in SETS[:6])


def names(kind: str | None = None, faces: bool | None = None, core: bool = True) -> list[str]:
    """Set names in table order, optionally only those of one ``kind`` or only face sets;
    ``core`` (the default) keeps to the six sets of the recipes and studies."""
    return [s.name for s in SETS
            if (not core or s.name in CORE) and (kind is None or s.kind == kind)
            and (faces is None or s.faces == faces)]


def _checkout_root() -> Path | None:
    """The repository this package runs from, when it runs from a checkout (an editable install)."""
    repo = Path(__file__).resolve().parents[3]
    return repo if (repo / "pyproject.toml").is_file() and (repo / "src" / "fakedet").is_dir() else None


def data_root() -> Path:
    """The folder holding the sets: ``$FAKEDET_DATA`` when set, else ``shared/data`` beside the
    repository (``../shared/data`` seen from a checkout), else ``../shared/data`` from the
    current folder."""
    env = os.environ.get("FAKEDET_DATA")
    if env:
        return Path(env)
    repo = _checkout_root()
    return (repo.parent if repo else Path.cwd().parent) / "shared" / "data"


def manifest(name: str, root: str | Path | None = None) -> str:
    """The path of a set's manifest.csv (under ``root``, default ``data_root()``)."""
    return str(Path(root if root is not None else data_root()) / name / "manifest.csv")
