"""Model layer: face detection (MTCNN) and face crops for ``fakedet scan --faces``.

The three small MTCNN networks (Zhang et al., 2016) are defined here and load the weights that
facenet-pytorch (MIT licence, (c) 2019 Timothy Esler) ships, converted once to safetensors by
``tools/convert_mtcnn.py`` and shipped in ``weights/mtcnn.safetensors``. The detection cascade
follows facenet-pytorch's ``detect_face``. It runs on the CPU inside the decoding threads, or in
the calling thread when there are none.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import nms

MTCNN_WEIGHTS = "mtcnn.safetensors"


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)


def default_mtcnn_path() -> Path:
    env = os.environ.get("FAKEDET_MTCNN_WEIGHTS")
    if env:
        return Path(env)
    from fakedet.model.checkpoint import locate_weights

    return locate_weights(MTCNN_WEIGHTS)


class MTCNN(nn.Module):
    """The P-R-O cascade. :meth:`detect` returns boxes ``(N, 5)``: x0, y0, x1, y1, score."""

    def __init__(self, min_face: int = 20, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor

    @classmethod
    def load(cls, path: Optional[str | os.PathLike] = None, **kw) -> "MTCNN":
        from safetensors.torch import load_file

        path = Path(path) if path else default_mtcnn_path()
        if not path.is_file():
            from fakedet.data.sources import missing_message

            raise FileNotFoundError(missing_message("face detector weights file", path))
        model = cls(**kw)
        model.load_state_dict(load_file(str(path)), strict=True)
        return model.eval()

    @torch.inference_mode()
    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Faces in an HxWx3 uint8 image, as an (N, 5) float array (x0, y0, x1, y1, score)."""
        img = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float()
        h, w = img.shape[2:]
        m = 12.0 / self.min_face
        minl = min(h, w) * m
        scales, s = [], m
        while minl >= 12:
            scales.append(s)
            s *= self.factor
            minl *= self.factor
        empty = np.zeros((0, 5), dtype=np.float32)
        if not scales:
            return empty

        # stage 1: proposals at every scale
        boxes = []
        for scale in scales:
            im = F.interpolate(img, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, probs = self.pnet((im - 127.5) * 0.0078125)
            b = _generate_boxes(reg[0], probs[0, 1], scale, self.thresholds[0])
            if len(b):
                b = b[nms(b[:, :4], b[:, 4], 0.5)]
                boxes.append(b)
        if not boxes:
            return empty
        boxes = torch.cat(boxes)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                             boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh,
                             boxes[:, 4]], dim=1)
        boxes = _square(boxes)

        # stage 2: refine
        crops, keep = _crops(img, boxes, 24, w, h)
        if not len(keep):
            return empty
        boxes = boxes[keep]
        reg, probs = self.rnet((crops - 127.5) * 0.0078125)
        ok = probs[:, 1] > self.thresholds[1]
        boxes = torch.cat([boxes[ok, :4], probs[ok, 1:2]], dim=1)
        reg = reg[ok]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_regress(boxes[pick], reg[pick]))
        if not len(boxes):
            return empty

        # stage 3: output
        crops, keep = _crops(img, boxes, 48, w, h)
        if not len(keep):
            return empty
        boxes = boxes[keep]
        reg, _, probs = self.onet((crops - 127.5) * 0.0078125)
        ok = probs[:, 1] > self.thresholds[2]
        boxes = torch.cat([boxes[ok, :4], probs[ok, 1:2]], dim=1)
        boxes = _regress(boxes, reg[ok]).numpy()
        boxes = boxes[_nms_min(boxes, 0.7)]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return boxes.astype(np.float32)


def _generate_boxes(reg, prob, scale, thresh):
    stride, cell = 2, 12
    mask = prob >= thresh
    idx = mask.nonzero()
    if not len(idx):
        return torch.zeros((0, 9))
    score = prob[mask]
    r = reg[:, mask].permute(1, 0)
    bb = idx.float().flip(1)  # (x, y)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cell) / scale).floor()
    return torch.cat([q1, q2, score[:, None], r], dim=1)


def _regress(boxes, reg):
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.clone()
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _square(boxes):
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(w, h)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _crops(img, boxes, size, w, h):
    b = boxes[:, :4].trunc().int().numpy()
    x0, y0 = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    x1, y1 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    out, keep = [], []
    for k in range(len(b)):
        if y1[k] > y0[k] - 1 and x1[k] > x0[k] - 1:
            crop = img[:, :, y0[k] - 1 : y1[k], x0[k] - 1 : x1[k]]
            out.append(F.interpolate(crop, size=(size, size), mode="area"))
            keep.append(k)
    if not out:
        return None, []
    return torch.cat(out), keep


def _nms_min(boxes: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy NMS where overlap is intersection over the smaller box (MTCNN's last stage)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x0, y0, x1, y1, s = boxes.T
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(s)
    pick = []
    while order.size:
        i = order[-1]
        pick.append(i)
        rest = order[:-1]
        iw = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        overlap = iw * ih / np.minimum(area[i], area[rest])
        order = rest[overlap <= thresh]
    return np.asarray(pick, dtype=np.int64)


# ----------------------------------------------------------------------------- face crops
DETECT_MAX_SIDE = 1024  # detection runs on a copy at most this large; boxes are scaled back
MIN_FACE = 32  # smallest face searched for, in pixels of that copy (the pyramid's first scale)
FACE_MARGIN = 1.6  # crop side = margin x the detected box's longer side, like the training crops
FACE_CROP_SIZE = 224  # crops are resized to this, as the DFDC training crops were
MIN_SCORE = 0.9
MAX_FACES = 16

_detector: Optional[MTCNN] = None


def get_detector() -> MTCNN:
    global _detector
    if _detector is None:
        _detector = MTCNN.load(min_face=MIN_FACE)
    return _detector


def find_faces(img: Image.Image, detector: Optional[MTCNN] = None) -> list[tuple[list[int], float]]:
    """Faces in a PIL RGB image: ``[([x0, y0, x1, y1], score), ...]`` in original pixels,
    largest first, at most :data:`MAX_FACES`."""
    det = detector or get_detector()
    w, h = img.size
    scale = min(1.0, DETECT_MAX_SIDE / max(w, h))
    small = img if scale == 1.0 else img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                Image.Resampling.BILINEAR, reducing_gap=2.0)
    boxes = det.detect(np.asarray(small))
    out = []
    for x0, y0, x1, y1, s in boxes:
        if s < MIN_SCORE:
            continue
        box = [int(round(v / scale)) for v in (x0, y0, x1, y1)]
        box = [max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])]
        if box[2] - box[0] >= 8 and box[3] - box[1] >= 8:
            out.append((box, float(s)))
    out.sort(key=lambda b: -(b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))
    return out[:MAX_FACES]


def face_crop(img: Image.Image, box: list[int]) -> Image.Image:
    """A square crop around the face with a margin, shifted to stay inside the image and resized
    to :data:`FACE_CROP_SIZE`."""
    w, h = img.size
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = min(max(box[2] - box[0], box[3] - box[1]) * FACE_MARGIN, w, h)
    x0 = int(round(min(max(cx - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2, 0), h - side)))
    s = int(round(side))
    crop = img.crop((x0, y0, x0 + s, y0 + s))
    return crop.resize((FACE_CROP_SIZE, FACE_CROP_SIZE), Image.Resampling.BICUBIC)
