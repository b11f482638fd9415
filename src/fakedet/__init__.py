"""fakedet: a command-line detector of deepfake and AI-generated images.

``from fakedet import Detector`` loads the engine lazily, so importing the package (and
``fakedet --version``) does not import torch.
"""

from fakedet._version import __version__

__all__ = ["CheckpointError", "Detector", "DeviceError", "Result", "__version__"]


def __getattr__(name):
    if name in ("Detector", "Result", "DeviceError"):
        from fakedet.inference import detector as engine

        return getattr(engine, name)
    if name == "CheckpointError":
        from fakedet.model.checkpoint import CheckpointError

        return CheckpointError
    raise AttributeError(f"module 'fakedet' has no attribute {name!r}")
