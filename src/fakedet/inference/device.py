"""Inference layer: device and thread policy (which torch device, how many decoding threads).

:func:`gpu_driver_present` and :func:`default_workers` answer without importing torch, so that a
scan can decide to start decoding before torch has loaded.
"""

from __future__ import annotations

import os


class DeviceError(Exception):
    """The requested device cannot be used."""


class DependencyError(Exception):
    """A package the requested mode needs cannot be imported here (face mode's torchvision
    beside a torch it was not built for, say)."""


def gpu_driver_present() -> bool:
    """Whether this machine shows a GPU driver (NVIDIA, ROCm or WSL's), checked without torch.
    Where none is, ``device="auto"`` is certain to mean the CPU before torch is imported."""
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"))


def default_workers() -> int:
    """Decoding threads when none are asked for: the CPU count, at most 8."""
    return max(0, min(8, (os.cpu_count() or 1)))


def resolve_device(spec: str = "auto"):
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> torch.device, or DeviceError with the reason."""
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    elif isinstance(spec, int) and not isinstance(spec, bool):
        spec = f"cuda:{spec}"  # torch's meaning of a bare device index
    elif spec is not None and not isinstance(spec, str):
        raise DeviceError(f"device must be a string such as 'cpu' or 'cuda:0', a torch.device or "
                          f"a CUDA index, not {type(spec).__name__}")
    spec = (spec or "auto").strip().lower()
    if spec.startswith("cpu:") and spec[4:].isdigit():
        spec = "cpu"
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} requested but CUDA is not available on this machine")
        if ":" in spec:
            try:
                index = int(spec.split(":", 1)[1])
            except ValueError:
                raise DeviceError(f"invalid device {spec!r}: expected cuda:N") from None
            if not 0 <= index < torch.cuda.device_count():
                raise DeviceError(
                    f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
                )
        return torch.device(spec)
    raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
