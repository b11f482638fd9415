"""fakedet: a command-line detector of deepfake and AI-generated images (package root, layer 0).

The package's folders are its layers, each importing only from the ones below it: ``data``
(inputs, decoding, labelled sets, record writers), ``model`` (config, network, checkpoints, face
detector), ``inference`` (the Detector and its pipeline) and ``evaluation`` (metrics, reports)
side by side, ``training``, and the ``cli`` on top. ``tests/test_layers.py`` checks this.

``from fakedet import Detector`` loads the inference layer lazily, so importing the package (and
``fakedet --version``) does not import torch.
"""

from fakedet._version import __version__

__all__ = ["CheckpointError", "DependencyError", "Detector", "DeviceError", "Result", "__version__"]


def __getattr__(name):
    # The public API, imported on first use. These are the only imports that point up a layer
    # (tests/test_layers.py allows them here and nowhere else).
    if name == "Detector":
        from fakedet.inference.detector import Detector

        return Detector
    if name == "Result":
        from fakedet.inference.result import Result

        return Result
    if name == "DeviceError":
        from fakedet.inference.device import DeviceError

        return DeviceError
    if name == "DependencyError":
        from fakedet.inference.device import DependencyError

        return DependencyError
    if name == "CheckpointError":
        from fakedet.model.checkpoint import CheckpointError

        return CheckpointError
    raise AttributeError(f"module 'fakedet' has no attribute {name!r}")
