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

import hashlib
import math
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

import numpy as np

from fakedet.data import decode
from fakedet.data.preprocess import PreprocessConfig
from fakedet.data.sources import Item

# Batches in flight per decoding thread while the model scores.
PIPELINE_DEPTH = 2
# Batches that may be decoded ahead while the model is still loading (DecodePipeline.prefill).
STARTUP_DEPTH = 16
# Seconds a batch of LiveItems waits for its next input before it is scored as it is ...
LINGER = 0.1
# ... and the longest it waits for more after its first input came (inputs that come steadily,
# each less than LINGER after the last, would otherwise wait for a whole batch).
BATCH_WAIT = 0.5


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
    #: score the picture inside plain margins (:func:`fakedet.data.decode.picture_box`, from
    #: ``CUT_SHARE`` on) or on a story's smooth backdrop instead of the whole image
    crop: bool = False
    #: set when the batches' results are no longer wanted: a worker stops after its current input
    stop: Optional[threading.Event] = None


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
    #: with Task.thumbnail: ``{"jpeg": bytes, "width": w, "height": h, "sha256": hex}``, the
    #: image's size as decoded (face boxes are in its coordinates), a JPEG of it at most
    #: Task.thumbnail px and the SHA-256 of its file's bytes (none for a PIL image)
    thumbnail: Optional[dict] = None
    #: in face mode with the face expert: its input for each face, ``(F, S, S, 3)`` uint8
    expert_crops: Any = None
    #: :func:`fakedet.data.decode.frame_share` of the image (None: not measured)
    frame: Optional[float] = None
    #: decoded from the first frame of an animation
    animated: bool = False
    #: in face mode, the face finder's confidence in each face of ``boxes``
    confidences: Optional[list] = None
    #: with Task.crop, the box ``[left, top, right, bottom]`` of the picture that was scored
    #: instead of the whole image; None: the whole image was scored
    cropped: Optional[list] = None

    @classmethod
    def failed(cls, path: str, error: str, evidence: Optional[list] = None) -> "Decoded":
        return cls(path, error=error, evidence=evidence)


def source_evidence(source, data: Optional[bytes]) -> list[dict]:
    """The provenance evidence of an input before it is decoded: read from its bytes, or, for a
    PIL image, from what it kept of its file's metadata (``info``, EXIF)."""
    from fakedet.data import provenance  # here, not at start-up: its patterns take 15 ms to compile

    if data is not None:
        return provenance.read_evidence(data)
    if hasattr(source, "info"):
        return provenance.read_image_evidence(source)
    return []


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

    if max(img.size) > size:  # no full-size copy; a side never rounds to 0 px (a 20000x32 strip)
        scale = size / max(img.size)
        small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                           reducing_gap=3.0)
    else:
        small = img
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=quality)
    return {"jpeg": buf.getvalue(), "width": img.width, "height": img.height}


def _thumbnail_or_none(img, size: int) -> Optional[dict]:
    """The report's picture of an image, or None where it cannot be made: a picture is no reason
    to lose an image's record (the report then shows none)."""
    try:
        return thumbnail(img, size)
    except Exception:  # noqa: BLE001 (a report without one picture beats a lost record)
        return None


T = TypeVar("T")


def decode_pool(workers: int) -> ThreadPoolExecutor:
    """The pool of decoding threads that a :class:`DecodePipeline` uses."""
    return ThreadPoolExecutor(max(1, workers), thread_name_prefix="fakedet-decode")


def prepare_batch(batch: Sequence[Item], task: Task) -> DecodedBatch:
    """Decodes and preprocesses one batch: a :class:`Decoded` per item, in order.

    Never raises for a bad input: each failure becomes that item's own error string.
    """
    cfg = task.pre
    out = []
    for item in batch:
        if task.stop is not None and task.stop.is_set():
            break  # given up (Ctrl-C, a closed reader, a consumer that stopped): nobody reads the rest
        if item.error is not None:
            out.append(Decoded.failed(item.path, item.error, [] if task.provenance else None))
            continue
        evidence = [] if task.provenance else None
        try:
            data = decode.source_bytes(item.source)
            if task.provenance:  # before decoding: kept when decoding fails
                evidence = source_evidence(item.source, data)
            img = decode.load(item.source, cfg, data)
            if task.provenance:
                evidence += watermark_evidence(data, img)
            thumb = _thumbnail_or_none(img, task.thumbnail) if task.thumbnail else None
            if task.thumbnail and data is not None:  # a report names the exact file it scored
                thumb = {**(thumb or {}), "sha256": hashlib.sha256(data).hexdigest()}
            frame, box = decode.picture_to_score(img, cfg)
            decode.check_picture_colours(img, box)  # the picture inside margins, scored cut out or not
            cropped = box if task.crop else None
            whole, img = img, img if cropped is None else img.crop(cropped)
            dx, dy = (0, 0) if cropped is None else cropped[:2]
            view, patches = decode.preprocess(img, cfg)
            views, patch_sets, boxes, expert_crops = [view], [patches], None, None
            if task.faces:
                from fakedet.model import faces

                boxes, crops, confidences = [], [], []
                for box, confidence in faces.find_faces(img):
                    confidences.append(float(confidence))
                    v, p = decode.preprocess(faces.face_crop(img, box), cfg)
                    views.append(v)
                    patch_sets.append(p)
                    boxes.append([c + (dx, dy)[j % 2] for j, c in enumerate(box)])  # in the whole image's pixels
                    if task.expert_map is not None:
                        from fakedet.model.expert import expert_crop

                        crops.append(expert_crop(img, box, task.expert_map, task.expert_size))
                if task.expert_map is not None:
                    expert_crops = (np.stack(crops) if crops else
                                    np.zeros((0, task.expert_size, task.expert_size, 3), np.uint8))
            out.append(Decoded(item.path, np.stack(views), np.stack(patch_sets), None, boxes, evidence, thumb,
                               expert_crops, frame,
                               bool(whole.info.get(decode.ANIMATED)), confidences if task.faces else None, cropped))
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
        self.batches = batches
        self.task = replace(task, stop=threading.Event())  # this pipeline's own
        self.workers = max(1, workers)
        self.pool = decode_pool(self.workers)
        self.pending: deque = deque()
        # A single-batch scan is known once a second batch is asked for and none comes; of
        # inputs still arriving (LiveItems) that is not known, and a second is not waited for.
        first = next(self.batches, None)
        known = first is not None and ready(self.batches)
        second = next(self.batches, None) if known else None
        self._ready = deque(b for b in (first, second) if b is not None)
        self._single = known and second is None
        self.exhausted = first is None or self._single

    def _more(self, block: bool) -> bool:
        """Whether a batch is ready to submit, reading the next one from the stream if need be;
        unless ``block``, only when that needs no wait for input (see :func:`ready`)."""
        if self._ready:
            return True
        if self.exhausted or (not block and not ready(self.batches)):
            return False
        nxt = next(self.batches, None)
        if nxt is None:
            self.exhausted = True
            return False
        self._ready.append(nxt)
        return True

    def _submit_next(self) -> None:
        batch = self._ready.popleft()
        # the one batch of a short scan is cut in as many slices as threads: its own length, not
        # the batch size it may fall short of, decides the slices' size
        cut = max(1, math.ceil(len(batch) / self.workers)) if self._single else len(batch)
        self.pending.append([self.pool.submit(prepare_batch, batch[i:i + cut], self.task)
                             for i in range(0, len(batch), cut)])

    def prefill(self, until: Callable[[], bool], limit: int = STARTUP_DEPTH) -> None:
        """Submits batches until ``until()`` is true or ``limit`` batches are in flight (or, with
        some in flight, the inputs have to be waited for)."""
        while len(self.pending) < limit and not until() and self._more(block=not self.pending):
            self._submit_next()

    def run(self, score: Callable[[DecodedBatch], T]) -> Iterator[T]:
        """Yields ``score(decoded batch)`` for every batch, in order; closes the pool at the end.

        Up to ``PIPELINE_DEPTH`` batches per thread decode ahead, but inputs are waited for only
        when nothing is in flight: of inputs that arrive slowly each batch is scored (and its
        records written) as soon as it is decoded. Ended by an exception (a Ctrl-C or SIGTERM
        among them) or abandoned by its consumer, it does not wait for the batches still being
        decoded: a thread part-way through a batch of faces or of large photos can take many
        seconds, longer than ``docker stop`` waits before SIGKILL."""
        wait = True
        try:
            while True:
                while len(self.pending) < PIPELINE_DEPTH * self.workers and self._more(block=not self.pending):
                    self._submit_next()
                if not self.pending:
                    return
                yield score(_gather(self.pending.popleft()))
        except BaseException:
            wait = False
            raise
        finally:
            self.close(wait)

    def close(self, wait: bool = True) -> None:
        """Cancels the batches not yet begun; with ``wait``, waits for those being decoded.
        Without it each thread stops after the input it is decoding, in the background, its
        batch unused: the CLI ends an interrupted process without it (``os._exit``), and at a
        normal exit the interpreter joins it, one input's decoding later at most."""
        if not wait:
            self.task.stop.set()
        for futs in self.pending:
            for fut in futs:
                fut.cancel()
        self.pending.clear()
        self.pool.shutdown(wait=wait, cancel_futures=True)


def chunks(items: Iterable[Item], size: int) -> "Batches":
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily: the batches.
    Of :class:`LiveItems` a batch also ends when the next input is :data:`LINGER` seconds late,
    or :data:`BATCH_WAIT` seconds after its first input came."""
    return Batches(items, size)


class Batches:
    """The iterator :func:`chunks` returns; :func:`ready` tells whether its next batch (or its
    end) can be had without waiting for inputs to arrive.

    An error raised by the inputs (a list of paths that cannot be read further) ends the
    batches there, after the batch begun before it; :meth:`check` raises it. A consumer calls
    that once every batch read has been scored, so that no record made is lost to the error.
    """

    def __init__(self, items: Iterable[Item], size: int, linger: float = LINGER, wait: float = BATCH_WAIT):
        self._items = iter(items)
        self._size, self._linger, self._wait = max(1, int(size)), linger, wait
        self._live = isinstance(items, LiveItems)
        self.error: Optional[Exception] = None

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> list[Item]:
        batch: list[Item] = []
        if self.error is None:
            try:
                for item in self._items:
                    batch.append(item)
                    if len(batch) >= self._size or (self._live and not self._more_soon(len(batch) == 1)):
                        return batch
            except Exception as exc:
                self.error = exc
        if batch:
            return batch
        raise StopIteration

    def _more_soon(self, first: bool) -> bool:
        """Whether a live batch's next input comes in time to join it."""
        now = time.monotonic()
        if first:
            self._deadline = now + self._wait
        return self._items.poll(min(self._linger, max(0.0, self._deadline - now)))

    def ready(self) -> bool:
        return not self._live or self.error is not None or self._items.poll(0)

    def check(self) -> None:
        """Raises the inputs' error, if one ended the batches."""
        if self.error is not None:
            raise self.error


def checked(results: Iterator[T], batches: "Batches") -> Iterator[T]:
    """``results`` (a scan's, of ``batches``), then the inputs' error if one ended them."""
    yield from results
    batches.check()


def reading() -> bool:
    """Whether a :class:`LiveItems` thread is still reading its inputs. A process that ends then
    must end with ``os._exit`` once its output is flushed: at the interpreter's shutdown a thread
    blocked reading stdin holds the buffer's lock, and Python aborts ("could not acquire lock for
    <_io.BufferedReader name='<stdin>'> at interpreter shutdown", SIGABRT)."""
    return bool(LiveItems.running)


def ready(batches: Iterator) -> bool:
    """Whether ``next(batches)`` can return without waiting for inputs to arrive: always, except
    for the :class:`Batches` of :class:`LiveItems` that have no input waiting."""
    check = getattr(batches, "ready", None)
    return True if check is None else check()


class LiveItems:
    """Items that may arrive slowly (paths read from a pipe: ``inotifywait ... | fakedet scan
    --files-from -``), read in a background thread so that a scan can tell whether the next one
    is waiting: :class:`Batches` of them end early and :class:`DecodePipeline` does not wait for
    more before it scores what it has, so each input's record comes out soon after it arrives
    instead of waiting for a whole batch (or for the end of the stream).

    The reading thread keeps at most ``depth`` items ahead, and is a daemon: a scan that stops
    early (an interruption, a closed pipe) does not wait for an input that may never come. An
    error raised while reading is raised again, in order, by :meth:`__next__`. A process that
    stops while the thread still waits on stdin must end with ``os._exit`` (see
    :func:`reading`).
    """

    _END = object()
    running: set = set()  # the readers not finished yet

    def __init__(self, items: Iterable[Any], depth: int = 1024):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._head = None  # an entry taken from the queue by poll(), not yet returned
        LiveItems.running.add(self)
        self._thread = threading.Thread(target=self._read, args=(iter(items),), name="fakedet-inputs",
                                        daemon=True)
        self._thread.start()

    def _read(self, items: Iterator[Any]) -> None:
        from fakedet.inference.inputs import as_item  # (that module imports this one)

        try:
            for i, item in enumerate(items):
                self._queue.put((as_item(item, i), None))
        except BaseException as exc:  # a SystemExit too: the consumer must not wait for an end never sent
            last = (None, exc)
        else:
            last = (LiveItems._END, None)
        LiveItems.running.discard(self)  # reading is over before the consumer can see its end
        self._queue.put(last)

    def poll(self, timeout: float) -> bool:
        """Whether :meth:`__next__` can return (an item, an error or the end) without waiting,
        after waiting up to ``timeout`` seconds for that."""
        if self._head is None:
            try:
                with waiting():  # a timed wait that a signal can interrupt (see waiting)
                    self._head = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
        return True

    def __iter__(self) -> "LiveItems":
        return self

    def __next__(self) -> Item:
        with waiting():  # in slices, so that Ctrl-C and SIGTERM are handled at once
            while not self.poll(0.05):
                pass
        item, error = self._head
        if item is LiveItems._END:
            raise StopIteration  # (the end stays at the head: the iterator stays exhausted)
        if error is not None:
            raise error  # (and stays at the head too)
        self._head = None
        return item


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
