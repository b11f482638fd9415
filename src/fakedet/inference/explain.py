"""Inference layer: where in an image the model's evidence lies (``fakedet explain``).

The heatmap is **occlusion sensitivity of the scan's own score**. The image is cut into a grid
of ``grid x grid`` cells (default 10 x 10); for each cell a copy of the image is made with that
cell hidden (filled with the image's mean colour, or with a blurred copy of itself), the copy
goes through the very preprocessing a scan uses (:func:`fakedet.data.decode.preprocess`: the
whole-image view, the texture patches at their fixed grid positions) and the very scoring
(:meth:`Detector.forward`, then ``sigmoid(logit / temperature)``), all copies batched. A cell's
heat is how much hiding it lowers the calibrated log-odds of "fake":

    heat[cell] = logit(p_fake(image)) - logit(p_fake(image with the cell hidden))

Why this is faithful: it measures the number a scan reports, through all three experts at once
(backbone and colour branch on the view, texture branch on the native-resolution patches, and
the head that fuses them), with no surrogate and no gradient approximation. A hot cell is one
whose content the score depends on; a negative cell is one whose content pulls the score
towards "real" (hiding it raises p_fake). Log-odds rather than p_fake: the ranking of the cells
is the same (p is monotone in its log-odds), but a score near 0 or 1 still shows its changes.

What it does not say: cells are scored one at a time, so evidence spread over many cells (the
whole image's colour statistics, a generator's texture everywhere) shows as many small drops
or none; a hidden cell is itself something the model sees (a flat or blurred square), so a
heat value is "this content versus a plain patch", not "this content versus a genuine one".
``experiments/heatmap_faithfulness.py`` checks on val fakes that hiding the hottest 10 % of the
image lowers p_fake more than hiding a random 10 % (``docs/explain.md``).

In face mode each face MTCNN finds (:func:`fakedet.model.faces.find_faces`) is scored as
``fakedet scan --faces`` scores it: on its crop by the network, fused with the face expert's
score on its square when the Detector holds the expert, and ``p_fake`` and the verdict are the
scan's (with the expert's gate on the whole image; without an expert the maximum over the whole
image and the faces). The heatmap explains the
whole-image score (``p_whole``); a face's score is shown on its box.

Cost: ``grid**2 + 1`` forward passes per image (the model's inputs do not grow with the image:
a 128 px view and 8 patches of 32 px), plus one preprocessing (a resize) per copy: about
1.5-2 s for a 1024 px image and 7 s for a 12-megapixel one at the default grid, on one CPU
core (``docs/explain.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from PIL import Image, ImageFilter

from fakedet.data import decode
from fakedet.inference.result import verdict_of

#: cells per side by default: 100 cells, so that the hottest 10 % of the image is its 10 hottest cells
DEFAULT_GRID = 10
#: how a hidden cell is filled: the image's mean colour, or the image blurred (low frequencies kept)
FILLS = ("mean", "blur")
#: occluded copies preprocessed and scored at a time (bounds memory for large images)
CHUNK = 32
#: and at most this many bytes of them: 32 copies of a 24-megapixel photo are 2.3 GB
CHUNK_BYTES = 256 * 2**20


@dataclass
class Face:
    """One face found in face mode: its box ``[x0, y0, x1, y1]`` in image pixels, the face
    detector's confidence, and its p_fake as a scan gives it (the network's on its crop, fused
    with the face expert's when the Detector holds one)."""

    box: list[int]
    confidence: float
    p_fake: float


@dataclass
class Explanation:
    """What :func:`explain_image` found for one image.

    Attributes:
        width, height: the decoded (upright) image's size; boxes and cells are in its pixels.
        heat: ``(grid, grid)`` float array, row-major from the top-left cell: the drop in the
            calibrated log-odds of "fake" when that cell is hidden (positive: evidence for
            fake; negative: hiding the cell raises p_fake).
        p_hidden: ``(grid, grid)`` p_fake of the image with that cell hidden.
        xs, ys: the cell edges in pixels (``grid + 1`` each): cell ``(r, c)`` spans
            ``xs[c]:xs[c+1]`` and ``ys[r]:ys[r+1]``.
        p_whole: the whole image's calibrated p_fake (what the heatmap explains).
        z_whole: its log-odds, ``logit / temperature``.
        faces: faces found in face mode (an empty list: none found), None when not looked for.
        p_fake: the image's score as a scan reports it (in face mode the faces' fused scores
            with the face expert, the whole image's where it counts, as ``scan --faces``; the
            maximum over the whole image and the faces without the expert).
        label: its verdict, by ``cutoffs``.
        cutoffs: ``(fake at or above, real below)``: the face-mode thresholds when a face was
            found, else the whole-image ones.
        fill: how hidden cells were filled.
        evidence: the provenance evidence read from the file, as a scan reads it (None when not
            read); ``label_by`` is ``"evidence"`` where it says the image was generated, which
            labels it ``fake`` as a scan does (the heatmap still explains the model's score).
    """

    width: int
    height: int
    heat: np.ndarray
    p_hidden: np.ndarray
    xs: list[int]
    ys: list[int]
    p_whole: float
    p_fake: float
    label: str
    cutoffs: tuple[float, float]
    faces: Optional[list[Face]] = None
    fill: str = "mean"
    grid: int = DEFAULT_GRID
    z_whole: float = math.nan
    evidence: Optional[list] = None
    label_by: str = "model"
    face_expert: bool = False  # the faces' scores are fused with the face expert's
    #: the box ``[left, top, right, bottom]``, in the decoded image's pixels, of the picture
    #: inside plain margins (or on a story's smooth backdrop) that was explained instead of the
    #: whole image, as a scan
    #: scores it (``Detector.crop``); ``width``/``height`` and every other box are then the
    #: picture's. None: the whole image.
    cropped: Optional[list] = None
    #: decoded from an animation, of which only the first frame was explained (as a scan scores it)
    animated: bool = False
    #: the share of the image that margins take (as :attr:`fakedet.Result.frame`; None: not measured)
    frame: Optional[float] = None
    #: the SHA-256 of the bytes decoded and explained (None for a PIL image or an array)
    sha256: Optional[str] = None
    #: where a face was found: the whole image's verdict by the whole-image thresholds, which a
    #: scan without faces gives (it may differ from ``label``, face mode's); None otherwise
    whole_label: Optional[str] = None
    #: the whole-image ``fake`` threshold, against which ``p_whole`` (what the heatmap explains)
    #: is read; nan where not known
    whole_fake_at: float = math.nan

    @property
    def framed(self) -> bool:
        """Whether the picture seems to sit inside wide margins and was explained whole all the
        same (as :attr:`fakedet.Result.framed`: under ``--no-crop``, say)."""
        return decode.scored_framed(self.frame, self.cropped)

    def hottest(self, share: float = 0.1) -> list[tuple[int, int]]:
        """The ``(row, col)`` cells of the hottest ``share`` of the grid, hottest first."""
        return hottest_cells(self.heat, share)


def cell_edges(size: int, n: int) -> list[int]:
    """``n + 1`` pixel edges cutting ``size`` pixels into ``n`` near-equal cells."""
    return [int(round(v)) for v in np.linspace(0, size, n + 1)]


def hottest_cells(heat: np.ndarray, share: float = 0.1) -> list[tuple[int, int]]:
    """The cells of the ``share`` of the grid with the largest heat, hottest first (ties: in
    reading order); at least one cell."""
    k = max(1, int(round(share * heat.size)))
    order = np.argsort(-heat.ravel(), kind="stable")[:k]
    return [divmod(int(i), heat.shape[1]) for i in order]


def random_cells(shape: tuple[int, int], share: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """As many cells as :func:`hottest_cells` picks for ``share``, drawn at random."""
    n = shape[0] * shape[1]
    k = max(1, int(round(share * n)))
    return [divmod(int(i), shape[1]) for i in rng.choice(n, size=k, replace=False)]


class Occluder:
    """Copies of one image with cells hidden, the hidden cells filled by ``fill``."""

    def __init__(self, img: Image.Image, grid: int, fill: str = "mean"):
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}, not {fill!r}")
        self.img = img
        self.arr = np.array(img, dtype=np.uint8)  # a private, writable copy
        h, w = self.arr.shape[:2]
        self.grid = int(grid)
        self.xs, self.ys = cell_edges(w, self.grid), cell_edges(h, self.grid)
        if fill == "mean":
            mean = self.arr.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
            self.filler = np.broadcast_to(mean, self.arr.shape)
        else:  # a blur as wide as a cell: removes the cell's texture and detail, keeps its colours
            radius = max(1.0, min(w, h) / self.grid / 2)
            self.filler = np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), dtype=np.uint8)

    def box(self, cell: tuple[int, int]) -> tuple[int, int, int, int]:
        r, c = cell
        return self.xs[c], self.ys[r], self.xs[c + 1], self.ys[r + 1]

    def hidden(self, cells: Iterable[tuple[int, int]]) -> Image.Image:
        """The image with ``cells`` hidden (a new image; this occluder is left unchanged)."""
        boxes = [self.box(c) for c in cells]
        saved = [self.arr[y0:y1, x0:x1].copy() for x0, y0, x1, y1 in boxes]
        try:
            for x0, y0, x1, y1 in boxes:
                self.arr[y0:y1, x0:x1] = self.filler[y0:y1, x0:x1]
            return Image.fromarray(self.arr, "RGB").copy()
        finally:
            for (x0, y0, x1, y1), s in zip(boxes, saved):
                self.arr[y0:y1, x0:x1] = s


def calibrated_logits(det, images: Sequence[Image.Image]) -> np.ndarray:
    """``logit / temperature`` for each PIL image (preprocessed as a scan does), in chunks of
    :data:`CHUNK` through :meth:`Detector.forward`; float64 array."""
    import torch

    cfg = det.config.preprocess
    out = []
    for i in range(0, len(images), CHUNK):
        pairs = [decode.preprocess(im, cfg) for im in images[i:i + CHUNK]]
        views = torch.from_numpy(np.stack([v for v, _ in pairs]))
        patches = torch.from_numpy(np.stack([p for _, p in pairs]))
        logits = det.forward(views, patches)
        out.append(np.asarray(logits.float().cpu().numpy(), dtype=np.float64).reshape(-1))
    return np.concatenate(out) / det.temperature if out else np.zeros(0)


def score_hidden(det, occluder: Occluder, cell_sets: Sequence[Iterable[tuple[int, int]]]) -> np.ndarray:
    """Calibrated logits of the image with each set of cells hidden (one entry per set).

    Occluded copies are made lazily, :data:`CHUNK` at a time, so memory stays bounded."""
    cell_sets = list(cell_sets)
    chunk = max(1, min(CHUNK, CHUNK_BYTES // max(1, occluder.arr.nbytes)))
    out = []
    for i in range(0, len(cell_sets), chunk):
        out.append(calibrated_logits(det, [occluder.hidden(cs) for cs in cell_sets[i:i + chunk]]))
    return np.concatenate(out) if out else np.zeros(0)


def sigmoid(z):
    z = np.asarray(z, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function without overflow


def explain_image(det, img: Image.Image, grid: int = DEFAULT_GRID, faces: Optional[bool] = None,
                  fill: str = "mean", framed: bool = False) -> Explanation:
    """The occlusion heatmap of ``det``'s whole-image score on the RGB PIL image ``img`` (see
    the module's docstring), and in face mode (``faces``; default: the detector's mode) each
    face's box and score. ``framed``: ``img`` is a picture with its wide margins, labelled as a
    scan labels one (:func:`fakedet.inference.result.verdict_of`).

    Raises:
        ImageError: the image is too small for the model (see :func:`decode.check_min_side`).
        ValueError: ``grid`` is below 1 or ``fill`` is not one of :data:`FILLS`.
    """
    if isinstance(grid, bool) or int(grid) < 1:
        raise ValueError(f"grid must be a positive integer, got {grid!r}")
    cfg = det.config.preprocess
    w, h = img.size
    decode.check_min_side(w, h, max(cfg.min_size, cfg.patch_size))
    # no more cells per side than pixels: every cell at least one pixel wide and high
    n = int(min(int(grid), w, h))
    occ = Occluder(img, n, fill)
    cells = [(r, c) for r in range(n) for c in range(n)]
    z = score_hidden(det, occ, [[]] + [[c] for c in cells])
    base, hidden = float(z[0]), z[1:].reshape(n, n)
    p_whole = float(sigmoid(base))
    if math.isnan(p_whole):
        raise decode.ImageError("model produced no score (NaN)")

    found = None
    if det.faces if faces is None else faces:
        from fakedet.model import faces as face_model

        found = []
        detected = face_model.find_faces(img)
        if detected:
            crops = [face_model.face_crop(img, box) for box, _ in detected]
            pz = calibrated_logits(det, crops)
            if det.expert is not None:  # each face's fused score, as a scan gives it
                pz = fused_logits(det, img, [box for box, _ in detected], pz)
            found = [Face([int(v) for v in box], float(conf), float(sigmoid(p)))
                     for (box, conf), p in zip(detected, pz)]
    scores = [p_whole] + [f.p_fake for f in found or []]
    if any(math.isnan(x) for x in scores):  # a face's score too, as a scan tells it
        raise decode.ImageError("model produced no score (NaN)")
    # as a scan: with a face, the expert's file may gate the whole image
    p_fake = det.image_score(scores)
    cutoffs = det.face_cutoffs if found else det.cutoffs
    return Explanation(w, h, (base - hidden).astype(np.float32), sigmoid(hidden).astype(np.float32),
                       occ.xs, occ.ys, p_whole, p_fake, verdict_of(scores, p_fake, *cutoffs, framed),
                       (float(cutoffs[0]), float(cutoffs[1])), found, fill, n, base,
                       face_expert=bool(found) and det.expert is not None,
                       whole_label=verdict_of([p_whole], p_whole, *det.cutoffs, framed) if found else None,
                       whole_fake_at=float(det.cutoffs[0]))


def fused_logits(det, img: Image.Image, boxes, z_network) -> np.ndarray:
    """Each face's fused score as ``logit / temperature``, from the network's (``z_network``,
    the same units) and the face expert's on its square of ``img``, as a scan fuses them."""
    from fakedet.model import expert as fx

    meta = det.expert[1]
    squares = np.stack([fx.expert_crop(img, box, meta.box_map, meta.size) for box in boxes])
    le = det.expert_logits(squares)
    t = det.temperature
    return np.array([float(fx.fuse(z * t, e, meta)) / t for z, e in zip(z_network, le)])


def explain(det, source: Any, grid: int = DEFAULT_GRID, faces: Optional[bool] = None,
            fill: str = "mean", provenance: Optional[bool] = None) -> tuple[Image.Image, Explanation]:
    """Decodes ``source`` (a path, bytes or PIL image) as a scan does and explains it:
    ``(the upright RGB image, its Explanation)``; where a scan would score the picture inside
    plain margins or on a story's smooth backdrop (``det.crop``), that picture, with ``Explanation.cropped`` set. With
    ``provenance`` (None: as ``det`` was loaded) the file's provenance evidence is read as a scan
    reads it, and evidence that the image was generated labels it ``fake``, so that the verdict
    drawn is the one a scan prints.

    Raises:
        ImageError: the input cannot be read or is too small or too large.
    """
    data = decode.source_bytes(source)
    img = decode.load(source, det.config.preprocess, data)
    whole = img
    share, box = decode.picture_to_score(img, det.config.preprocess)  # measured, as a scan does
    decode.check_picture_colours(img, box)
    if not getattr(det, "crop", False):
        box = None
    if box is not None:
        img = img.crop(box)
    ex = explain_image(det, img, grid, faces, fill, framed=decode.scored_framed(share, box))
    ex.cropped, ex.frame, ex.animated = box, share, bool(whole.info.get(decode.ANIMATED))
    if data is not None:  # which bytes exactly, read once: a file changed since is not this one
        import hashlib

        ex.sha256 = hashlib.sha256(data).hexdigest()
    if det.provenance if provenance is None else provenance:
        from fakedet.data.provenance import generated_evidence
        from fakedet.inference.pipeline import source_evidence, watermark_evidence

        ex.evidence = source_evidence(source, data) + watermark_evidence(data, whole)
        if generated_evidence(ex.evidence):
            ex.label, ex.label_by = "fake", "evidence"
            if ex.whole_label is not None:  # a scan without faces labels it so too
                ex.whole_label = "fake"
    return img, ex
