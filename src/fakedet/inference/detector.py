"""Inference layer: the :class:`Detector`, a loaded model that scores streams of inputs.

It loads a checkpoint onto a device (:mod:`fakedet.inference.device`), feeds it batches from
the decode pipeline (:mod:`fakedet.inference.pipeline`, or :mod:`fakedet.inference.gpudecode`
for JPEGs on CUDA) and turns its logits into :class:`~fakedet.inference.result.Result` records,
in input order. :func:`fakedet.inference.stream.load_and_score` also decodes while it loads.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np

from fakedet.data.decode import scored_framed
from fakedet.data.provenance import generated_evidence
from fakedet.data.sources import Item
from fakedet.inference.alloc import tune_malloc
from fakedet.inference.cpurun import SUB_BATCH, CpuRunner, padded
from fakedet.inference.device import DependencyError, default_workers, resolve_device
from fakedet.inference.inputs import as_items
from fakedet.inference.pipeline import DecodedBatch, DecodePipeline, Task, chunks, prepare_batch, ready
from fakedet.inference.result import NO_FACE_NOTE, Result, calibrated, verdict_of
from fakedet.model import checkpoint as ckpt

# Images per model call (fakedet.inference.cpurun; the CUDA batch is padded to a multiple of it).
CPU_SUB_BATCH = SUB_BATCH


def check_counts(batch_size: Optional[int], workers: Optional[int]) -> None:
    """A ValueError unless ``batch_size`` (None: the default) is a whole number of at least 1
    and ``workers`` (None: the default) one of at least 0, as the command line requires."""
    def whole(v) -> bool:
        return not isinstance(v, bool) and isinstance(v, numbers.Integral)
    if batch_size is not None and not (whole(batch_size) and batch_size >= 1):
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    if workers is not None and not (whole(workers) and workers >= 0):
        raise ValueError(f"workers must be a whole number of at least 0 (0: decode in the calling thread), "
                         f"got {workers!r}")


def check_flags(**flags) -> None:
    """A ValueError unless each flag is True or False: text such as "false" or "no" (a setting
    read from the environment) is true to Python, and would turn face mode, the provenance
    reader or the crop on where it was meant to turn them off."""
    import numpy as np

    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")


def check_threshold(threshold) -> None:
    """A ValueError unless ``threshold`` (None: the checkpoint's verdicts) is a number in [0, 1]
    (text such as "0.5" is not: the command line converts it, the API does not)."""
    if threshold is None:
        return
    import numpy as np

    try:  # a number, a 0-d array or a tensor of one; not text, not True
        t = (None if isinstance(threshold, (str, bytes, bytearray, memoryview, bool, np.bool_))
             else float(threshold))
    except (TypeError, ValueError):
        t = None
    if t is None or not 0.0 <= t <= 1.0:  # NaN too
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")


class Detector:
    """A loaded model plus the batched pipeline that feeds it.

    Example:
        >>> det = Detector.load()
        >>> [r.p_fake for r in det.predict(["a.jpg", pil_image])]
    """

    def __init__(self, model, meta: ckpt.CheckpointMeta, device, weights_path: Optional[Path] = None,
                 threshold: Optional[float] = None, batch_size: int = 32,
                 workers: Optional[int] = None, faces: bool = False, decode: str = "auto",
                 provenance: bool = True, expert=None, crop: bool = True):
        if decode not in ("auto", "pil", "torch"):
            raise ValueError(f"decode must be auto, pil or torch, not {decode!r}")
        self.model = model
        self.faces = bool(faces)
        self.decode = decode
        self.provenance = bool(provenance)
        #: keep a JPEG thumbnail of each image, its longest side at most this many px, in
        #: Result.thumbnail (for reports; decoding then runs on the CPU); 0: none
        self.thumbnail = 0
        #: score the picture inside plain margins (a phone's screenshot of an app, a border, a letterbox,
        #: a story's smooth backdrop)
        #: instead of the whole image (``fakedet.data.decode.picture_box``); Result.cropped says
        #: where it was done
        self.crop = bool(crop)
        self.meta = meta
        self.device = device
        self.weights_path = weights_path
        self.config = meta.model_config()
        #: in face mode, ``(FaceExpert, ExpertMeta[, path])``: each face's score is the fused one
        #: (:mod:`fakedet.model.expert`); None: the network's own face score
        self.expert = expert if self.faces else None
        #: the expert file's gate on the whole image (None: the whole image always counts)
        self._whole_gate = getattr(self.expert[1], "whole_gate", None) if self.expert is not None else None
        if threshold is None:
            # the checkpoint's verdicts: (fake at or above, real below); an image in which face
            # mode found a face gets the face-mode ones (the fused score's, with the expert),
            # any other image the whole-image ones
            self.cutoffs = meta.cutoffs(faces=False)
            self.face_cutoffs = meta.cutoffs(faces=True)
            fv = self.expert[1].face_verdicts if self.expert is not None else None
            if fv is not None:
                self.face_cutoffs = (float(fv["fake"]), float(fv["real"]))
            elif self.expert is not None:  # only an expert given by path gets here ("auto" skips these)
                name = f"face expert {self.expert[2]}" if len(self.expert) > 2 else "the face expert"
                warnings.warn(f"{name} has no verdict thresholds of its own (not calibrated): images with a "
                              "face are labelled by the network's face-mode thresholds, which were not chosen "
                              "for fused scores; pass threshold= for the two-way rule", UserWarning, stacklevel=3)
        else:
            check_threshold(threshold)
            self.cutoffs = self.face_cutoffs = (float(threshold), float(threshold))  # two-way
            if self._whole_gate is not None:
                # the whole image counts once it is fake by the threshold in use, so that -t P
                # --faces calls fake whatever -t P calls fake (and every verdict is the maximum's)
                self._whole_gate = min(self._whole_gate, float(threshold))
        #: the "fake" threshold of the mode's usual case (a face found in face mode)
        self.threshold, self.real_below = self.face_cutoffs if faces else self.cutoffs
        #: whether a score can be labelled "uncertain"
        self.three_way = any(real < fake for fake, real in (self.cutoffs, self.face_cutoffs))
        self.temperature = float(meta.temperature)
        check_counts(batch_size, workers)
        self.batch_size = int(batch_size)
        self.workers = default_workers() if workers is None else int(workers)
        import torch  # loaded with the model already

        # the CPU forward's threads: as many cores as torch had in the creating thread
        self._cpu = CpuRunner(model, torch.get_num_threads())

    @classmethod
    def load(cls, weights: Optional[str | os.PathLike] = None, device: str = "auto",
             threshold: Optional[float] = None, batch_size: int = 32,
             workers: Optional[int] = None, faces: bool = False,
             decode: str = "auto", provenance: bool = True, expert: Any = "auto",
             crop: bool = True) -> "Detector":
        """Loads a checkpoint (the shipped default when ``weights`` is None) onto ``device``.

        With ``faces=True`` every image is searched for faces (MTCNN); each face is scored on a
        crop and the image's ``p_fake`` is the maximum over the faces and the whole image (with
        a face expert whose file gates the whole image, as the shipped one does, the whole image
        counts only when its score reaches its own fake threshold, or ``threshold`` when that is
        lower); the default threshold is then the checkpoint's face-mode one when it has one.
        ``expert`` (face mode only): ``"auto"`` fuses each face's score with the shipped face
        expert (``weights/face-expert.safetensors``) when it was made for these weights; a path
        loads that expert (an error when it was made for other weights); None (or False) scores
        faces by the network alone (the face-mode thresholds are then the checkpoint's).
        ``decode`` picks the decoder: ``pil`` (worker threads; the path the verdict thresholds
        were chosen on), ``torch`` (batched torchvision decoding and preprocessing on the model's
        device, faster on a GPU, but another JPEG decoder and resizer: scores differ from pil's by
        up to about 0.05, so a verdict near a threshold can differ; a checkpoint that resizes with
        Lanczos or box, which torch does not match, is decoded by pil) or ``auto`` (pil).
        ``provenance`` reads each image's provenance metadata (C2PA, XMP/EXIF, generation
        parameters) and, with the ``watermark`` extra, the Stable Diffusion watermark: a result
        lists it as ``evidence``, and evidence that the image was generated labels it ``fake``.
        ``crop``: an image whose plain margins take ``fakedet.data.decode.FRAME_SHARE`` of it or
        more (a phone's screenshot of the app that showed a picture), or that has narrower bands
        around the picture from ``fakedet.data.decode.CUT_SHARE`` on (a border, a letterbox, a
        meme's caption bands), is scored on the picture inside them, as :attr:`Result.cropped`
        says (such margins took fakes' scores down to real photos'); False scores every image whole. ``decode="torch"``
        scores every image whole.

        Raises:
            CheckpointError: the weights are missing, unreadable or do not match their config.
            DeviceError: the device is unavailable.
            DependencyError: ``faces=True`` or ``decode="torch"`` and torchvision cannot be imported.
        """
        check_counts(batch_size, workers)  # before the model loads
        check_flags(faces=faces, provenance=provenance, crop=crop)
        check_threshold(threshold)
        dev = resolve_device(device)
        if dev.type == "cpu":
            tune_malloc()
        if weights is not None and not os.fspath(weights):
            raise ckpt.CheckpointError("weights path is empty")  # Path("") would be "." (a folder)
        path = Path(weights) if weights is not None else ckpt.default_weights_path()
        model, meta = ckpt.load(path, device="cpu")
        model = model.to(dev).fuse_for_inference()
        if faces:
            try:
                from fakedet.model.faces import default_mtcnn_path, get_detector
            except Exception as exc:  # torchvision's own import failing, not fakedet's code
                raise DependencyError(
                    f"face mode needs torchvision, which cannot be imported here: {exc} (torch and "
                    "torchvision must be a matching pair: install them together, as the README "
                    "says; whole-image scoring, without face mode, does not need it)") from None

            if not default_mtcnn_path().is_file():
                from fakedet.data.sources import missing_message

                raise ckpt.CheckpointError(missing_message("face detector weights file", default_mtcnn_path()))
            try:  # loaded here, once, so that unusable weights fail the load, not every image
                get_detector()
            except Exception as exc:
                raise ckpt.CheckpointError(
                    f"face detector weights {default_mtcnn_path()} cannot be used: {exc}") from None
        if decode == "torch" and not faces:  # face mode decodes with pil
            try:  # here, once, so that a torchvision that cannot be imported fails the load
                from torchvision.io import decode_jpeg  # noqa: F401
            except Exception as exc:
                raise DependencyError(
                    f"decode='torch' needs torchvision, which cannot be imported here: {exc} (torch and "
                    "torchvision must be a matching pair: install them together, as the README says; "
                    "decode='pil', the default, works without it)") from None
        fused = _load_expert(expert, path) if faces else None
        if fused is not None and dev.type == "cuda":
            fused = (fused[0].to(dev), *fused[1:])
        return cls(model, meta, dev, path, threshold, batch_size, workers, faces, decode, provenance, fused, crop)

    # ------------------------------------------------------------------ public API
    def predict(self, inputs: Iterable[Any], batch_size: Optional[int] = None,
                workers: Optional[int] = None) -> list[Result]:
        """Scores every input; one :class:`Result` per input, in order."""
        return list(self.predict_iter(inputs, batch_size=batch_size, workers=workers))

    def predict_iter(self, inputs: Iterable[Any], batch_size: Optional[int] = None,
                     workers: Optional[int] = None) -> Iterator[Result]:
        """Like :meth:`predict` but lazy: results stream out as batches finish. Inputs are read
        ahead of the model (a batch or more), so from a slow source (a camera, a queue) results
        lag the inputs by up to a few batches; to score each input as it arrives, call
        :meth:`predict` on it. A bad ``batch_size`` or ``workers`` is refused at the call, not
        when the results are first asked for."""
        return (r for batch in self.iter_batches(inputs, batch_size, workers) for r in batch)

    def iter_batches(self, items: Iterable[Item], batch_size: Optional[int] = None,
                     workers: Optional[int] = None) -> Iterator[list[Result]]:
        """Scores a stream of :class:`Item` (or of anything :meth:`predict` takes) and yields
        each batch's results, in input order. An error raised by ``items`` itself is raised
        once the inputs before it have been scored and yielded; a bad ``batch_size`` or
        ``workers`` at the call."""
        check_counts(batch_size, workers)
        return self._batches(items, batch_size, workers)

    def _batches(self, items, batch_size, workers) -> Iterator[list[Result]]:
        items = as_items(items)
        bs = int(batch_size or self.batch_size)
        nworkers = self.workers if workers is None else int(workers)
        task = Task(self.config.preprocess, self.faces, self.provenance, self.thumbnail, crop=self.crop)
        if self.expert is not None:
            task.expert_map, task.expert_size = self.expert[1].box_map, self.expert[1].size
        batches = chunks(items, bs)
        first = next(batches, None)
        if first is None:
            batches.check()
            return
        # One input alone is decoded in the calling thread; of inputs still arriving (LiveItems)
        # a second batch is not waited for.
        known = ready(batches)
        second = next(batches, None) if known else None
        rest = _Prepended([first] if second is None else [first, second], batches)
        # "auto" is pil on every device: the scores the verdict thresholds were chosen on
        use_torch = not self.faces and not self.thumbnail and self.decode == "torch"
        if use_torch:  # only where torch resizes as the checkpoint's PIL filter does
            from fakedet.inference.gpudecode import MODES

            use_torch = self.config.preprocess.interpolation in MODES
        if use_torch:
            # every image whole: a JPEG is decoded on the device, where no margin is measured,
            # and the images it hands to pil must be scored the same way
            yield from self._iter_tensor_batches(rest, dataclasses.replace(task, crop=False), max(4, nworkers))
        elif nworkers == 0 or (known and second is None and len(first) == 1):
            # No workers, or one input: decode in the calling thread.
            for batch in rest:
                yield self.score_decoded(prepare_batch(batch, task))
        else:
            yield from DecodePipeline(rest, task, bs, nworkers).run(self.score_decoded)
        batches.check()  # an error of the inputs, raised after every record made before it

    def _iter_tensor_batches(self, batches, task, threads):
        from fakedet.inference.gpudecode import TensorDecoder

        dec = TensorDecoder(task, self.device, threads=threads)
        pending: deque = deque()
        try:
            for batch in batches:
                pending.append(dec.read(batch))  # file reads run ahead in threads
                # ... but inputs still arriving are not waited for while a batch can be scored
                while pending and (len(pending) >= 3 or not ready(batches)):
                    yield self.score_decoded(dec.prepare(pending.popleft()))
            while pending:
                yield self.score_decoded(dec.prepare(pending.popleft()))
        finally:
            for reads in pending:
                for _, fut in reads:
                    fut.cancel()
            dec.close()

    # ------------------------------------------------------------------ scoring
    def score_decoded(self, batch: DecodedBatch) -> list[Result]:
        """One :class:`Result` per decoded input of ``batch``, in order: the model's calibrated
        probability ``sigmoid(logit / temperature)``, its maximum over the whole image and the
        faces in face mode (:meth:`image_score`), labelled by the verdict thresholds (the
        face-mode ones when a face was found)."""
        ok = [i for i, d in enumerate(batch) if d.error is None]
        probs: dict[int, list[float]] = {}
        if ok:
            views = _cat([batch[i].views for i in ok], self.device)
            patches = _cat([batch[i].patches for i in ok], self.device)
            logits = self.forward(views, patches).tolist()
            parts = {}
            if self.expert is not None:
                logits, parts = self._fuse_faces(batch, ok, logits)
            p = [calibrated(x, self.temperature) for x in logits]
            start = 0
            for i in ok:
                n = len(batch[i].views)
                probs[i] = p[start : start + n]
                start += n
        out = []
        for i, d in enumerate(batch):
            if d.error is not None:
                out.append(Result(d.path, None, None, d.error, face_mode=self.faces, evidence=d.evidence))
                continue
            scores = probs[i]
            if any(math.isnan(x) for x in scores):
                out.append(Result(d.path, None, None, "model produced no score (NaN)", face_mode=self.faces,
                                  evidence=d.evidence))
                continue
            pf = self.image_score(scores)
            fake_at, real_below = self.face_cutoffs if d.boxes else self.cutoffs
            # `real` needs every score below its threshold, the whole image's included
            r = Result(d.path, pf, verdict_of(scores, pf, fake_at, real_below, scored_framed(d.frame, d.cropped)),
                       face_mode=self.faces,
                       evidence=d.evidence, thumbnail=d.thumbnail, frame=d.frame, animated=d.animated,
                       cropped=d.cropped)
            if d.evidence is not None:
                # evidence that the image was generated decides; p_fake stays the model's
                r.label_by = "evidence" if generated_evidence(d.evidence) else "model"
                if r.label_by == "evidence":
                    r.label = "fake"
            if d.boxes is not None:
                r.faces = [{"box": list(b), "p_fake": float(x)} for b, x in zip(d.boxes, scores[1:])]
                for face, confidence in zip(r.faces, d.confidences or []):
                    face["confidence"] = round(confidence, 4)  # the face finder's (MTCNN), 0.9 to 1
                for face, extra in zip(r.faces, parts.get(i, [])):
                    face.update(extra)
                r.p_whole = scores[0]
                r.note = None if d.boxes else NO_FACE_NOTE
            out.append(r)
        return out

    @property
    def whole_gate(self) -> "float | None":
        """In face mode with an expert file that gates the whole image: the whole image's score
        from which it counts in ``p_fake`` (see :meth:`image_score`); else None (no expert, or
        not face mode: the expert is kept only in face mode)."""
        return self._whole_gate

    def image_score(self, scores: list[float]) -> float:
        """An image's score from its ``[whole image, face, ...]`` probabilities, as a scan gives
        it: the maximum of all; with an expert file that gates the whole image and a face found,
        the faces' maximum, and the whole image's score too when it reaches the gate (its own
        fake threshold, or the two-way threshold when that is lower)."""
        if self._whole_gate is None or scores[0] >= self._whole_gate or len(scores) == 1:
            return max(scores)
        return max(scores[1:])

    def _fuse_faces(self, batch: DecodedBatch, ok: list[int], logits: list[float]):
        """Each face's network logit in ``logits`` (laid out as in :meth:`score_decoded`)
        replaced by the fused logit; also, per input index, each face's ``p_network`` and
        ``p_expert``."""
        from fakedet.model import expert as fx

        meta = self.expert[1]
        crops = [batch[i].expert_crops for i in ok]
        x = np.concatenate(crops) if crops else np.zeros((0, meta.size, meta.size, 3), np.uint8)
        le = iter(self.expert_logits(x).tolist())
        out, parts, start = list(logits), {}, 0
        for i in ok:
            n = len(batch[i].views)
            parts[i] = []
            for k in range(start + 1, start + n):  # the whole image first, then the faces
                e = next(le)
                out[k] = float(fx.fuse(logits[k], e, meta))
                parts[i].append({"p_network": calibrated(logits[k], self.temperature),
                                 "p_expert": calibrated(fx.standardised(e, meta), 1.0)})
            start += n
        return out, parts

    def expert_logits(self, crops: np.ndarray) -> np.ndarray:
        """The face expert's raw logits for its ``(N, S, S, 3)`` uint8 face squares."""
        from fakedet.model import expert as fx

        cuda = self.device if self.device.type == "cuda" else None
        return fx.expert_logits(self.expert[0], crops, self._cpu, device=cuda)

    def _model_device(self):
        """The device the model's weights are on, with its index (``cuda:0``, not ``cuda``)."""
        return next(self.model.parameters()).device

    def forward(self, views, patches):
        """Raw logits for uint8 tensors ``(B,3,G,G)`` and ``(B,K,3,P,P)`` (on any device).

        On the CPU (:mod:`fakedet.inference.cpurun`) the model runs on sub-batches of
        :data:`CPU_SUB_BATCH` images, a short one padded with copies of its first image, each
        with an intra-op thread count fixed by the machine's core count, several sub-batches at
        once in a small pool of threads. The kernels' arithmetic depends on the batch size and
        on the intra-op thread count (logits up to 4e-6 apart), and both are fixed, so neither
        ``-b``, nor ``-j``, nor the load of the moment changes a score (``benchmarks/faults.py``
        checks that records are identical across ``-j`` and ``-b``). On CUDA the batch is padded
        to a multiple of the same size.
        """
        import torch

        dev = self.device
        with torch.inference_mode():
            if dev.type == "cuda":
                if not views.is_cuda:  # torch.device("cuda") != cuda:0, so compare kinds first
                    views = views.pin_memory().to(dev, non_blocking=True)
                    patches = patches.pin_memory().to(dev, non_blocking=True)
                elif views.device != (on := self._model_device()):  # on another GPU than the model's
                    views, patches = views.to(on), patches.to(on)
                # float32, as on the CPU (no bfloat16 autocast, whose logits are ~1e-2 apart, against
                # thresholds 1e-4 in logit from val scores); cuDNN may still use TF32 convolutions
                n = len(views)
                logits = self.model(*padded(views, patches, CPU_SUB_BATCH))[:n]
            else:
                # Sub-batches also keep each activation below glibc's largest mmap threshold
                # (32 MiB), so the allocator reuses its buffers instead of mapping fresh pages.
                logits = torch.cat(self._cpu(views, patches))
            return logits.float().cpu()

    # ------------------------------------------------------------------ info
    def info(self) -> dict[str, Any]:
        """:func:`fakedet.model.checkpoint.describe` of the loaded weights, with this detector's
        thresholds (``threshold`` given to :meth:`load` replaces the verdicts) and device. Of JSON
        types, as ``fakedet info --json`` writes them: an undefined figure (an AUC of a set with
        one class) is None, not NaN, which JSON has not."""
        d = ckpt.describe(self.weights_path, self.meta)
        if d["parameters"] is None:  # a model given without its file
            d["parameters"] = getattr(self.model, "trained_parameters", None) or sum(
                p.numel() for p in self.model.parameters())
        d.update({
            "threshold": self.threshold,
            "cutoffs": {"whole_image": list(self.cutoffs), "face": list(self.face_cutoffs)},
            "temperature": self.temperature,
            "device": str(self.device),
        })
        if self.expert is not None:
            meta = self.expert[1]
            if self._whole_gate != meta.whole_gate:  # -t lowered the gate: say the one in use
                meta = dataclasses.replace(meta, whole_gate=self._whole_gate)
            d["face_expert"] = {"weights": str(self.expert[2]) if len(self.expert) > 2 else None,
                                **meta.describe(three_way=self.three_way)}
        from fakedet.data.writers import nan_to_none

        return nan_to_none(d)


def _load_expert(expert, network_path: Path):
    """``Detector.load``'s ``expert``: ``(FaceExpert, ExpertMeta, path)`` or None."""
    from fakedet.model import expert as fx

    if expert is None or expert is False:
        return None
    if expert is True:
        expert = "auto"
    auto = isinstance(expert, str) and expert == "auto"
    path = fx.default_expert_path() if auto else Path(expert)
    if auto and not path.is_file():
        return None
    try:
        meta = fx.read_meta(path)
        if meta.network_sha256 != ckpt.sha256(network_path):
            if auto:
                return None  # made for the shipped network; other weights score faces alone
            raise ckpt.CheckpointError(f"face expert {path} was made for other network weights "
                                       f"(sha256 {meta.network_sha256[:12]}…)")
        if auto and meta.face_verdicts is None:
            return None  # not calibrated yet: its fused scores have no thresholds
        model, meta = fx.load(path)
    except fx.ExpertError as exc:
        raise ckpt.CheckpointError(str(exc)) from None
    return model, meta, path


def _cat(parts, device):
    """Concatenates numpy arrays (PIL path) and/or device tensors (torch path) into one tensor."""
    import torch

    if all(isinstance(p, np.ndarray) for p in parts):
        return torch.from_numpy(np.concatenate(parts))
    return torch.cat([torch.from_numpy(p).to(device) if isinstance(p, np.ndarray) else p for p in parts])


class _Prepended:
    """The batches ``first`` (already read), then those of ``rest``, keeping ``rest``'s
    :func:`ready`."""

    def __init__(self, first: list, rest):
        self._first, self._rest = deque(first), rest

    def __iter__(self):
        return self

    def __next__(self):
        return self._first.popleft() if self._first else next(self._rest)

    def ready(self) -> bool:
        return bool(self._first) or ready(self._rest)
