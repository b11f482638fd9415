"""Inference layer: the decode pipeline, from a stream of items to batches of decoded model inputs.

Inputs stream through a bounded pipeline: decoding and preprocessing run in worker threads
(batch by batch, a few batches ahead) while the model scores each batch in the calling thread,
so memory stays flat however many images pass. A decoded input is a :class:`Decoded`; a batch
of them is a :data:`DecodedBatch`.

Threads rather than processes: Pillow, numpy and torch release the GIL in their heavy work, so
threads decode as fast as processes did (``benchmarks/benchmark.py``), without pickling arrays
between processes, without a pool start-up, and without asking a user's script for an
``if __name__ == "__main__":`` guard (worker processes re-import the main module).
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

import numpy as np

from fakedet.data import decode
from fakedet.data.preprocess import PreprocessConfig
from fakedet.data.sources import Item

# Batches in flight per decoding thread while the model scores.
PIPELINE_DEPTH = 2
# Batches that may be decoded ahead while the model is still loading (DecodePipeline.prefill).
STARTUP_DEPTH = 16


@dataclass
class Task:
    """What a decoding worker needs to know."""

    pre: PreprocessConfig
    faces: bool = False
    #: read provenance evidence (metadata, and the invisible watermark where that extra is installed)
    provenance: bool = True
    #: the longest side of a JPEG thumbnail to keep for each image (for reports); 0: none
    thumbnail: int = 0
    #: in face mode with the face expert: its box-to-square map and input size
    #: (:func:`fakedet.model.expert.expert_crop`); None: no expert crops
    expert_map: Optional[dict] = None
    expert_size: int = 0


@dataclass(frozen=True)
class Decoded:
    """One input ready for the model, or the reason it is not.

    ``views`` (``(N, 3, G, G)``) and ``patches`` (``(N, K, 3, P, P)``), uint8 numpy arrays or
    tensors already on the model's device, stack the whole image first and then one entry per
    detected face; ``boxes`` lists the faces' boxes in face mode and is None otherwise. When
    ``error`` is set, ``views``, ``patches`` and ``boxes`` are None. ``evidence`` lists the
    provenance evidence found (metadata, then the watermark); None when it was not looked for.
    """

    path: str
    views: Any = None
    patches: Any = None
    error: Optional[str] = None
    boxes: Optional[list] = None
    evidence: Optional[list] = None
    #: with Task.thumbnail: ``{"jpeg": bytes, "width": w, "height": h}``, the image's size as
    #: decoded (face boxes are in its coordinates) and a JPEG of it at most Task.thumbnail px
    thumbnail: Optional[dict] = None
    #: in face mode with the face expert: its input for each face, ``(F, S, S, 3)`` uint8
    expert_crops: Any = None

    @classmethod
    def failed(cls, path: str, error: str, evidence: Optional[list] = None) -> "Decoded":
        return cls(path, error=error, evidence=evidence)


def watermark_evidence(data: Optional[bytes], rgb) -> list[dict]:
    """The Stable Diffusion watermark in an input's decoded pixels ``rgb`` (a PIL image), with
    the ``watermark`` extra installed (:mod:`fakedet.data.watermark`); ``data`` are its file
    bytes (None for an image given as pixels). Read only where the mark can have survived (pixels,
    or a file stored losslessly) and at sizes Stable Diffusion makes: elsewhere it would cost
    time (30 ms for a 1024 px image on one core) and could not be found."""
    from fakedet.data import watermark

    if (watermark.worth_reading(*rgb.size) and (data is None or watermark.stored_losslessly(data))
            and watermark.available()):
        return watermark.read_watermark(np.asarray(rgb))
    return []


DecodedBatch = list[Decoded]  # one batch of decoded inputs, in input order


def thumbnail(img, size: int, quality: int = 80) -> dict:
    """A JPEG of the upright RGB PIL image ``img``, its longest side at most ``size`` px, with
    the image's own size (see :attr:`Decoded.thumbnail`)."""
    import io

    from PIL import ImageOps

    small = ImageOps.contain(img, (size, size)) if max(img.size) > size else img  # no full-size copy
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=quality)
    return {"jpeg": buf.getvalue(), "width": img.width, "height": img.height}

T = TypeVar("T")


def decode_pool(workers: int) -> ThreadPoolExecutor:
    """The pool of decoding threads that a :class:`DecodePipeline` uses."""
    return ThreadPoolExecutor(max(1, workers), thread_name_prefix="fakedet-decode")


def prepare_batch(batch: Sequence[Item], task: Task) -> DecodedBatch:
    """Decodes and preprocesses one batch: a :class:`Decoded` per item, in order.

    Never raises for a bad input: each failure becomes that item's own error string.
    """
    from fakedet.data import provenance  # here, not at start-up: its patterns take 15 ms to compile

    cfg = task.pre
    out = []
    for item in batch:
        if item.error is not None:
            out.append(Decoded.failed(item.path, item.error, [] if task.provenance else None))
            continue
        evidence = [] if task.provenance else None
        try:
            data = decode.source_bytes(item.source)
            if task.provenance and data is not None:
                evidence = provenance.read_evidence(data)  # before decoding: kept when decoding fails
            img = decode.load(item.source, cfg, data)
            if task.provenance:
                evidence += watermark_evidence(data, img)
            thumb = thumbnail(img, task.thumbnail) if task.thumbnail else None
            view, patches = decode.preprocess(img, cfg)
            views, patch_sets, boxes, expert_crops = [view], [patches], None, None
            if task.faces:
                from fakedet.model import faces

                boxes, crops = [], []
                for box, _ in faces.find_faces(img):
                    v, p = decode.preprocess(faces.face_crop(img, box), cfg)
                    views.append(v)
                    patch_sets.append(p)
                    boxes.append(box)
                    if task.expert_map is not None:
                        from fakedet.model.expert import expert_crop

                        crops.append(expert_crop(img, box, task.expert_map, task.expert_size))
                if task.expert_map is not None:
                    expert_crops = (np.stack(crops) if crops else
                                    np.zeros((0, task.expert_size, task.expert_size, 3), np.uint8))
            out.append(Decoded(item.path, np.stack(views), np.stack(patch_sets), None, boxes, evidence, thumb,
                               expert_crops))
        except decode.ImageError as exc:
            out.append(Decoded.failed(item.path, str(exc), evidence))
        except MemoryError:
            out.append(Decoded.failed(item.path, "out of memory while decoding", evidence))
        except Exception as exc:  # a decoder bug must not take the batch down
            out.append(Decoded.failed(item.path, f"cannot decode image: {decode.exception_text(exc)}",
                                      evidence))
    return out


class DecodePipeline:
    """Decoding threads fed batch by batch from a stream of batches, ahead of the model.

    Each thread decodes a whole batch; only a scan of a single batch is cut into one slice per
    thread, so that it too decodes in parallel. Cutting every batch was no clear gain on two
    cores (12 MP photos +10 %, 1024 px JPEGs -5 to -10 %). :meth:`run` keeps ``PIPELINE_DEPTH``
    batches per thread in flight while the model scores the oldest. :meth:`prefill` lets
    decoding start before the model exists (:func:`fakedet.inference.stream.load_and_score`
    loads the model in a background thread meanwhile: ``import torch`` is most of a short
    scan's start-up).
    """

    def __init__(self, batches: Iterator[list[Item]], task: Task, batch_size: int, workers: int):
        self.batches, self.task = batches, task
        self.workers = max(1, workers)
        self.step = max(1, math.ceil(batch_size / self.workers))
        self.pool = decode_pool(self.workers)
        self.pending: deque = deque()
        # A single-batch scan is known once a second batch is asked for and none comes.
        first = next(self.batches, None)
        second = next(self.batches, None) if first is not None else None
        self._ready = deque(b for b in (first, second) if b is not None)
        self._single = second is None
        self.exhausted = not self._ready

    def _submit_next(self) -> None:
        batch = self._ready.popleft()
        cut = self.step if self._single else len(batch)
        self.pending.append([self.pool.submit(prepare_batch, batch[i:i + cut], self.task)
                             for i in range(0, len(batch), cut)])
        if not self._ready:  # read the next batch only after this one is on its way
            nxt = next(self.batches, None)
            if nxt is None:
                self.exhausted = True
            else:
                self._ready.append(nxt)

    def prefill(self, until: Callable[[], bool], limit: int = STARTUP_DEPTH) -> None:
        """Submits batches until ``until()`` is true or ``limit`` batches are in flight."""
        while not self.exhausted and len(self.pending) < limit and not until():
            self._submit_next()

    def run(self, score: Callable[[DecodedBatch], T]) -> Iterator[T]:
        """Yields ``score(decoded batch)`` for every batch, in order; closes the pool at the end."""
        try:
            while True:
                while not self.exhausted and len(self.pending) < PIPELINE_DEPTH * self.workers:
                    self._submit_next()
                if not self.pending:
                    return
                yield score(_gather(self.pending.popleft()))
        finally:
            self.close()

    def close(self) -> None:
        for futs in self.pending:
            for fut in futs:
                fut.cancel()
        self.pending.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


def chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily: the batches."""
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _gather(futures) -> DecodedBatch:
    with waiting():
        return [r for fut in futures for r in fut.result()]


@contextmanager
def waiting() -> Iterator[None]:
    """Around a wait on another thread (a future's result, an event): Ctrl-C or SIGTERM landing
    while ``threading.Condition.wait`` re-acquires its lock can leave the lock unacquired, and
    the ``with`` around the wait then fails with ``RuntimeError: cannot release un-acquired
    lock``, the interruption as its context. It is that interruption, and callers must see it as
    one (records flushed, status 130 or 143); other errors pass unchanged."""
    try:
        yield
    except RuntimeError as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise exc.__context__ from None
        raise
