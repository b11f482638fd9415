"""Inference layer: starting a scan, the model loading while the first batches already decode.

:func:`load_and_score` is what ``fakedet scan`` runs: on the CPU ``import torch`` and the model
load are most of a short scan's start-up, so the model loads in a background thread while the
decode pipeline fills; elsewhere it simply loads the :class:`Detector` and scores. Either way the
caller gets a :class:`ResultStream` of Result batches, in input order.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Iterable, Iterator, Optional

from fakedet.data.sources import Item
from fakedet.inference.detector import Detector
from fakedet.inference.device import default_workers, gpu_driver_present
from fakedet.inference.inputs import as_items
from fakedet.inference.pipeline import DecodePipeline, Task, checked, chunks, ready, waiting
from fakedet.inference.result import Result
from fakedet.model import checkpoint as ckpt


class ResultStream:
    """The Result batches of one scan, in input order, and the :attr:`detector` scoring them.

    Iterate over it once. :meth:`close` stops decoding that started ahead when the stream is
    given up before (or while) it is read; reading it to the end closes it too.
    """

    def __init__(self, detector: Detector, batches: Iterator[list[Result]],
                 pipeline: Optional[DecodePipeline] = None):
        self.detector = detector
        self._batches = batches
        self._pipeline = pipeline

    def __iter__(self) -> Iterator[list[Result]]:
        return iter(self._batches)

    def close(self) -> None:
        """Abandons the stream: batches not begun are cancelled and one being decoded is not
        waited for (see :meth:`DecodePipeline.run`)."""
        if self._pipeline is not None:
            self._pipeline.close(wait=False)
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()


class _ShortSwitch:
    """The interpreter's switch interval shortened while any model loads: set by the first of
    the loads under way (several threads may call :func:`load_and_score`), restored by the last,
    so that one load's end does not restore a value another had set."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count = 0
        self._saved = 0.0

    def enter(self) -> None:
        with self._lock:
            if self._count == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(1e-4)
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0:
                sys.setswitchinterval(self._saved)


_short_switch = _ShortSwitch()


class _Loading:
    """``fn(*args, **kw)`` running in a daemon thread, with a :meth:`result` that Ctrl-C and
    SIGTERM interrupt at once.

    Python runs signal handlers in the main thread between bytecodes, and the kernel may deliver
    the signal to any thread: a main thread blocked in a plain wait (``Future.result()``) would
    hold an interruption back until ``import torch`` and the model load had finished, 2-3 s
    later. Waiting in short slices lets the handler run; and the thread, being a daemon, does not
    hold the exit of an interrupted scan back either.
    """

    running: set = set()  # the loads not finished yet (see loading())

    def __init__(self, fn, *args, **kw):
        self._done = threading.Event()
        self._value = self._error = None
        _Loading.running.add(self)
        threading.Thread(target=self._run, args=(fn, args, kw), name="fakedet-load", daemon=True).start()

    def _run(self, fn, args, kw) -> None:
        try:
            self._value = fn(*args, **kw)
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc
        finally:
            self._done.set()
            _Loading.running.discard(self)

    def done(self) -> bool:
        return self._done.is_set()

    def result(self):
        with waiting():
            while not self._done.wait(0.05):
                pass
        if self._error is not None:
            raise self._error
        return self._value


def loading() -> bool:
    """Whether a model load that :func:`load_and_score` started is still running: after an
    interrupted start-up, a process must then end with ``os._exit`` once its output is flushed,
    because libtorch's exit-time destructors abort the process (SIGABRT) under a thread still
    inside ``import torch``."""
    return bool(_Loading.running)


def load_detector(weights: Optional[str | os.PathLike] = None, **kw) -> Detector:
    """``Detector.load(weights, **kw)`` for a command: the load runs in a background thread while
    the calling thread waits in slices that Ctrl-C and SIGTERM interrupt at once.

    The CLI's handlers raise the interruption in the main thread. Raised there during ``import
    torch`` it can land in Python code that libtorch's C++ is running (``torch._C._c10d_init``
    calls back into Python), where it cannot be handled: the process aborts (SIGABRT, no
    output). In a background thread the import never sees it; an interrupted command then ends
    as :func:`loading` describes.
    """
    return _Loading(Detector.load, weights, **kw).result()


def load_and_score(items: Iterable[Item], weights: Optional[str | os.PathLike] = None, *,
                   device: str = "auto", threshold: Optional[float] = None, batch_size: int = 32,
                   workers: Optional[int] = None, faces: bool = False,
                   provenance: bool = True, thumbnail: int = 0, expert: Any = "auto",
                   crop: bool = True) -> ResultStream:
    """Loads a :class:`Detector` (arguments as :meth:`Detector.load`) and starts scoring
    ``items`` (Items or anything :meth:`Detector.predict` takes); ``thumbnail`` sets
    :attr:`Detector.thumbnail`.

    On the CPU (``device="cpu"``, or ``"auto"`` on a machine without a GPU driver) and without
    face mode, up to :data:`~fakedet.inference.pipeline.STARTUP_DEPTH` batches decode while the
    model loads in a background thread; the records are the same as ``Detector.load(...)
    .iter_batches(items)`` gives.

    Raises:
        CheckpointError, DeviceError: as :meth:`Detector.load`; nothing is left running.
        KeyboardInterrupt: likewise, after stopping what had started.
    """
    kw = dict(threshold=threshold, batch_size=batch_size, workers=workers, faces=faces,
              provenance=provenance, crop=crop)
    if faces or device not in ("auto", "cpu") or (device == "auto" and gpu_driver_present()):
        # On a machine with a GPU driver "auto" may mean CUDA, which only torch can tell:
        # there the model loads first, as with device="cuda".
        det = load_detector(weights, device=device, expert=expert, **kw)
        det.thumbnail = thumbnail
        return ResultStream(det, det.iter_batches(items))
    meta = ckpt.read_meta(weights if weights is not None else ckpt.default_weights_path())
    pre = meta.model_config().preprocess  # a bad checkpoint fails before anything starts
    nworkers = default_workers() if workers is None else max(0, int(workers))
    bs = max(1, int(batch_size))
    future = _Loading(Detector.load, weights, device="cpu", **kw)
    if nworkers == 0:  # no decoding threads: nothing to overlap
        det = future.result()
        det.thumbnail = thumbnail
        return ResultStream(det, det.iter_batches(items))
    # Importing torch holds the GIL most of the time; the decoding threads need it briefly between
    # their C calls. A shorter switch interval while the model loads lets them have it promptly.
    _short_switch.enter()
    pipe = None
    try:
        batches = chunks(as_items(items), bs)
        # Inputs still to come (a slow list of paths) are waited for only while the model loads:
        # a load that fails must end the scan at once, not when the first path arrives.
        while not ready(batches) and not future.done():
            time.sleep(0.02)
        if not ready(batches):
            future.result()  # loaded first: its error, if any, now
        pipe = DecodePipeline(batches, Task(pre, provenance=provenance, thumbnail=thumbnail, crop=crop), bs, nworkers)
        pipe.prefill(future.done)
        det = future.result()
        det.thumbnail = thumbnail
    except BaseException:  # a failed load, or a Ctrl-C or SIGTERM while it loads
        if pipe is not None:
            pipe.close(wait=False)  # a batch being decoded is not waited for
        raise
    finally:
        _short_switch.leave()
    return ResultStream(det, checked(pipe.run(det.score_decoded), batches), pipe)
