"""Shared fixtures: a tiny randomly initialised checkpoint and images made inside the tests."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FAKEDET_DATA", REPO.parent / "shared" / "data"))


def load_experiment(name: str):
    """``experiments/<name>.py``, a script and not part of the package, loaded as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config_dict(**overrides) -> dict:
    cfg = {
        "name": "tiny-test",
        "backbone": "test_efficientnet",
        "colour_bins": 8,
        "colour_dim": 8,
        "texture_width": 8,
        "texture_dim": 8,
        "preprocess": {"global_size": 64, "patch_size": 32, "num_patches": 4, "min_size": 32},
    }
    cfg.update(overrides)
    return cfg


def make_tiny_checkpoint(path: Path, threshold: float = 0.5, face_threshold=None, temperature: float = 1.0,
                         verdicts=None, face_verdicts=None, **overrides) -> Path:
    """A checkpoint of a tiny model (the same weights for the same ``overrides``) with the given
    threshold, face-mode threshold and calibration temperature."""
    import torch

    from fakedet.model import checkpoint as ckpt
    from fakedet.model.config import ModelConfig
    from fakedet.model.fused import FakeDetector

    torch.manual_seed(0)
    cfg = ModelConfig.from_dict(tiny_config_dict(**overrides))
    model = FakeDetector(cfg).eval()
    # Give the head a real spread of outputs so label/threshold tests are meaningful.
    with torch.no_grad():
        model.head.weight.mul_(20.0)
    ckpt.save(model, ckpt.CheckpointMeta(model=cfg.to_dict(), threshold=threshold, temperature=temperature,
                                         face_threshold=face_threshold, verdicts=verdicts,
                                         face_verdicts=face_verdicts,
                                         training={"train_sets": ["none"], "steps": 0}), path)
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


TEMPERATURE = 2.5


@pytest.fixture(scope="session")
def tiny_weights_calibrated(tmp_path_factory) -> Path:
    """The tiny model of ``tiny_weights`` with calibration temperature :data:`TEMPERATURE`."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("weights") / "tiny-t.safetensors",
                                temperature=TEMPERATURE)


def random_image(size=(96, 80), mode="RGB", seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # smooth structure plus noise, closer to a photo than pure noise
    yy, xx = np.mgrid[0:h, 0:w]
    arr[..., 0] = (arr[..., 0] // 4 + (xx * 255 // max(w - 1, 1)) * 3 // 4).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    return img if mode == "RGB" else img.convert(mode)


def image_bytes(fmt="JPEG", size=(96, 80), mode="RGB", seed=0, **save) -> bytes:
    buf = io.BytesIO()
    random_image(size, mode, seed).save(buf, fmt, **save)
    return buf.getvalue()


def write_image(path: Path, fmt="JPEG", size=(96, 80), mode="RGB", seed=0, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(fmt, size, mode, seed, **save))
    return path


@pytest.fixture
def runner():
    """A CLI runner that keeps stderr apart from stdout."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always keeps stderr apart
        return CliRunner()


@contextlib.contextmanager
def fifo_watchdog(path, seconds: float = 30.0):
    """While the block runs, after ``seconds`` keeps opening the named pipe ``path`` for writing,
    which releases a reader blocked in ``open()``: code that wrongly opens the pipe then fails
    its test instead of hanging the whole run."""
    stop = threading.Event()

    def watch():
        if stop.wait(seconds):
            return
        while not stop.is_set():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO while nobody reads
            except OSError:
                pass
            stop.wait(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def story_screen(pic, backdrop="blur", scale=1, controls=True):
    """``pic`` on a 540x960 story screen (``scale`` times that: 2, a 1080x1920 phone's): a
    blurred, enlarged copy of itself or a diagonal gradient, with a progress bar and a name above
    it and a reply box below (none without ``controls``: a fill exported by an editor); and the
    picture's box."""
    from PIL import ImageDraw, ImageFilter

    w, h = 540 * scale, 960 * scale
    if backdrop == "blur":
        screen = pic.resize((w, h), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(18 * scale))
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        t = ((yy / h + xx / w) / 2)[..., None]
        screen = Image.fromarray(((1 - t) * np.array([200, 90, 60]) + t * np.array([40, 70, 160])).astype(np.uint8))
    if controls:
        d = ImageDraw.Draw(screen)
        d.rectangle((10 * scale, 15 * scale, w - 10 * scale, 17 * scale), fill=(235, 235, 235))
        d.text((65 * scale, 45 * scale), "someone  5h", fill=(255, 255, 255))
        d.rounded_rectangle((15 * scale, h - 65 * scale, w - 80 * scale, h - 25 * scale), 20 * scale,
                            outline=(255, 255, 255), width=2 * scale)
        d.text((35 * scale, h - 50 * scale), "Send message", fill=(255, 255, 255))
    x0, y0 = (w - pic.width) // 2, (h - pic.height) // 2
    screen.paste(pic, (x0, y0))
    return screen, (x0, y0, x0 + pic.width, y0 + pic.height)
