"""fakedet: a command-line detector of deepfake and AI-generated images.

``from fakedet import Detector`` loads the engine lazily, so importing the package (and
``fakedet --version``) does not import torch.
"""

from ._version import __version__

__all__ = ["Detector", "Result", "__version__"]


def __getattr__(name):
    if name in ("Detector", "Result"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'fakedet' has no attribute {name!r}")
