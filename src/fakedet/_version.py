"""Package root (layer 0): the version, read by the build backend and ``fakedet --version``."""

__version__ = "0.1.0"
