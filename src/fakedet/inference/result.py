"""Inference layer: the :class:`Result` record, one per input, that every scan and the API return."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

NO_FACE_NOTE = "no face found: whole-image score"


@dataclass
class Result:
    """One input's record. ``p_fake`` and ``label`` are None when ``error`` is set.

    In face mode ``faces`` lists ``{"box": [x0, y0, x1, y1], "p_fake": p, "confidence": c}`` per
    detected face (``c``: the face finder's, 0.9 to 1),
    ``p_whole`` is the whole-image score, ``p_fake`` the maximum of the faces' scores and (unless
    the face expert's gate leaves it out: ``Detector.load``) the whole image's, and ``note``
    says when no face was found.

    ``cropped`` is the box ``[left, top, right, bottom]`` of the picture scored instead of the
    whole image, where plain margins took :data:`fakedet.data.decode.FRAME_SHARE` of it or more
    (a phone's screenshot of the app that showed it), or plain bands around the picture took
    :data:`fakedet.data.decode.CUT_SHARE` of it or more (a border, a letterbox, a meme's caption
    bands), or a story's blurred or gradient backdrop took ``FRAME_SHARE`` or more
    (:data:`fakedet.data.decode.SMOOTH_MARGINS`), and null where the whole image was scored:
    every record has it.

    ``animated`` is true where the image is an animation (a GIF, an animated WebP or PNG) of
    which only the first frame was scored, or a TIFF of several pages, of which only the first
    was, and ``framed`` (:attr:`framed`) where wide margins around the picture were scored with
    it (to be cropped and scored again): every record has both.

    ``evidence`` lists what the image's provenance metadata or watermark says (None when it was
    not read); ``label_by`` says what decided the label: ``"model"``, or ``"evidence"`` when
    evidence that the image was generated made it ``fake`` (``p_fake`` stays the model's).
    """

    path: str
    p_fake: Optional[float]
    label: Optional[str]
    error: Optional[str] = None
    faces: Optional[list] = field(default=None, repr=False)
    p_whole: Optional[float] = field(default=None, repr=False)
    note: Optional[str] = field(default=None, repr=False)
    # set on every record of a face-mode scan, so that records which failed carry the face-mode
    # keys too (as null) and each line of jsonl output has the same keys
    face_mode: bool = field(default=False, repr=False, compare=False)
    evidence: Optional[list] = field(default=None, repr=False)
    # in repr too: a `fake` label with a low p_fake says why (a persona's script printed the
    # repr and saw 'p_fake=0.0003, label=fake' with nothing else)
    label_by: Optional[str] = field(default=None)
    #: the model's own verdict, whatever the evidence says (what evaluations of the model count)
    model_label: Optional[str] = field(default=None, repr=False, compare=False)
    #: for reports, when asked for (``Detector.thumbnail``): see ``Decoded.thumbnail``; never in to_dict()
    thumbnail: Optional[dict] = field(default=None, repr=False, compare=False)
    #: the share of the image that flat margins take (a screenshot's app around the picture, a
    #: border): from ``fakedet.data.decode.FRAME_SHARE`` on, and from ``CUT_SHARE`` on where they
    #: are bands around the picture, the picture inside is scored (``cropped``) unless the scan
    #: was told not to (a frame changes what the model sees); where there are none, that of a
    #: story's smooth backdrop (a blurred copy of the picture, a gradient), whose picture is cut
    #: out likewise (``decode.SMOOTH_MARGINS``), or, where none is cut out, of one found only at
    #: a looser tolerance (``decode.STORY_NOTE_TOLS``: named, scored whole); None where not measured.
    #: Not in to_dict().
    frame: Optional[float] = field(default=None, repr=False, compare=False)
    #: decoded from an animation, of which only the first frame was scored, or the first page of a TIFF
    animated: bool = field(default=False, repr=False, compare=False)
    #: the box ``[left, top, right, bottom]`` of the picture inside plain margins (or on a
    #: story's smooth backdrop) that was scored instead of the whole image (``Detector.crop``);
    #: None: the whole image was scored
    cropped: Optional[list] = field(default=None, repr=False, compare=False)

    @property
    def framed(self) -> bool:
        """Whether the picture seems to sit inside a larger frame (see ``frame``) and was scored
        whole all the same (``--no-crop``, a picture inside too small to score, or a story's
        picture found only at a looser tolerance, :data:`fakedet.data.decode.STORY_NOTE_TOLS`)."""
        from fakedet.data.decode import scored_framed

        return scored_framed(self.frame, self.cropped)

    def __post_init__(self) -> None:
        if self.model_label is None:
            self.model_label = self.label

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        d = {"path": self.path, "p_fake": self.p_fake, "label": self.label, "error": self.error,
             "cropped": self.cropped, "framed": self.framed, "animated": self.animated}
        if self.faces is not None or self.face_mode:
            d["faces"] = self.faces
            d["p_whole"] = self.p_whole
            d["note"] = self.note
        if self.evidence is not None:
            d["evidence"] = self.evidence
            d["label_by"] = self.label_by
            d["model_label"] = self.model_label  # what the model said, which evidence can override
        return d


VERDICTS = ("real", "uncertain", "fake")


def calibrated(logit: float, temperature: float) -> float:
    """The calibrated probability ``sigmoid(logit / temperature)``, in double precision and one
    value at a time: torch's and numpy's vectorised exponentials can round differently from
    their scalar paths (by one unit in the last place of a float32), so a probability computed
    over a tensor depended on how many scores shared it, and records on ``-b``/``-j``."""
    z = float(logit) / float(temperature)
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def verdict_of(scores: list, p_fake: float, fake_at: float, real_below: Optional[float], framed: bool) -> str:
    """The model's verdict on an image from its scores (``scores[0]`` the whole image's, then its
    faces') and ``p_fake`` (:meth:`fakedet.Detector.image_score`), as :func:`label_for` gives it,
    except that with three verdicts a ``fake`` that no face's score reaches on its own, on a
    picture scored with its wide margins (``framed``), is ``uncertain``: such margins move the
    score both ways, and made real photos ``fake``
    (docs/decisions/2026-12-07-no-fake-verdict-from-a-framed-score.md)."""
    label = label_for(p_fake, fake_at, real_below, max(scores))
    three_way = real_below is not None and real_below < fake_at
    if label == "fake" and framed and three_way and not any(x >= fake_at for x in scores[1:]):
        return "uncertain"
    return label


def label_for(p_fake: float, threshold: float, real_below: Optional[float] = None,
              p_any: Optional[float] = None) -> str:
    """The label of a score: "fake" when ``p_fake >= threshold`` (a score equal to the threshold
    is fake); "real" when ``p_fake < real_below`` (default: the threshold, the two-way rule);
    "uncertain" in between. ``p_any`` (face mode with the whole image gated): the highest of all
    the image's scores, whole image included; with three verdicts, "real" needs it below
    ``real_below`` too, "no evidence anywhere"
    (docs/decisions/2026-12-05-the-real-verdict-under-the-gate.md)."""
    if p_fake >= threshold:
        return "fake"
    if real_below is None or p_fake < real_below:
        if p_any is not None and real_below is not None and real_below < threshold and not p_any < real_below:
            return "uncertain"
        return "real"
    return "uncertain"
