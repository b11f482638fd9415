"""The inference engine behind both the CLI and the Python API.

Inputs stream through a bounded pipeline: decoding and preprocessing run in worker threads
(batch by batch, a few batches ahead), the model scores each batch in the calling thread, and
results come out in input order as a generator. Memory stays flat however many images pass.

Threads rather than processes: Pillow, numpy and torch release the GIL in their heavy work, so
threads decode as fast as processes did (``scripts/benchmark.py``), without pickling arrays
between processes, without a pool start-up, and without asking a user's script for an
``if __name__ == "__main__":`` guard (worker processes re-import the main module).
"""

from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from fakedet.model import checkpoint as ckpt
from fakedet.data import decode as imageio
from fakedet.inference.alloc import tune_malloc
from fakedet.model.config import ModelConfig, PreprocessConfig
from fakedet.data.sources import Item


class DeviceError(Exception):
    """The requested device cannot be used."""


NO_FACE_NOTE = "no face found: whole-image score"


@dataclass
class Result:
    """One input's record. ``p_fake`` and ``label`` are None when ``error`` is set.

    In face mode ``faces`` lists ``{"box": [x0, y0, x1, y1], "p_fake": p}`` per detected face,
    ``p_whole`` is the whole-image score, ``p_fake`` the maximum of all of them, and ``note``
    says when no face was found.
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

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        d = {"path": self.path, "p_fake": self.p_fake, "label": self.label, "error": self.error}
        if self.faces is not None or self.face_mode:
            d["faces"] = self.faces
            d["p_whole"] = self.p_whole
            d["note"] = self.note
        return d


@dataclass
class Task:
    """What a decoding worker needs to know."""

    pre: PreprocessConfig
    faces: bool = False


# ----------------------------------------------------------------------------- workers
# Images per forward call on the CPU (see Detector.forward); measured by scripts/benchmark.py.
CPU_SUB_BATCH = 8
# Batches in flight per decoding thread while the model scores.
PIPELINE_DEPTH = 2
# Batches that may be decoded ahead while the model is still loading (DecodePipeline.prefill).
STARTUP_DEPTH = 16


def decode_pool(workers: int) -> ThreadPoolExecutor:
    """The pool of decoding threads that :meth:`Detector.iter_batches` uses."""
    return ThreadPoolExecutor(max(1, workers), thread_name_prefix="fakedet-decode")


def prepare_batch(batch: Sequence[Item], task: Task) -> list[tuple]:
    """Decodes and preprocesses one batch: ``(path, views, patches, error, boxes)`` per item.

    ``views``/``patches`` stack the whole image first and then one entry per detected face
    (face mode; ``boxes`` lists the faces' boxes, else it is None). Never raises for a bad
    input: each failure becomes that item's own error string.
    """
    cfg = task.pre
    out = []
    for item in batch:
        if item.error is not None:
            out.append((item.path, None, None, item.error, None))
            continue
        try:
            img = imageio.load(item.source, cfg)
            view, patches = imageio.preprocess(img, cfg)
            views, patch_sets, boxes = [view], [patches], None
            if task.faces:
                from fakedet.model import faces as faces

                boxes = []
                for box, _ in faces.find_faces(img):
                    v, p = imageio.preprocess(faces.face_crop(img, box), cfg)
                    views.append(v)
                    patch_sets.append(p)
                    boxes.append(box)
            out.append((item.path, np.stack(views), np.stack(patch_sets), None, boxes))
        except imageio.ImageError as exc:
            out.append((item.path, None, None, str(exc), None))
        except MemoryError:
            out.append((item.path, None, None, "out of memory while decoding", None))
        except Exception as exc:  # a decoder bug must not take the batch down
            out.append((item.path, None, None, f"cannot decode image: {_why(exc)}", None))
    return out


class DecodePipeline:
    """Decoding threads fed batch by batch from a stream of batches, ahead of the model.

    Each thread decodes a whole batch; only a scan of a single batch is cut into one slice per
    thread, so that it too decodes in parallel. Cutting every batch was no clear gain on two
    cores (12 MP photos +10 %, 1024 px JPEGs -5 to -10 %, measured with the model yielding
    threads to busy decoders as :meth:`Detector.forward` does). :meth:`run` keeps ``PIPELINE_DEPTH``
    batches per thread in flight while the model scores the oldest. :meth:`prefill` lets
    decoding start before the model exists (the CLI loads the model in a background thread
    meanwhile: ``import torch`` is most of a short scan's start-up).
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

    def prefill(self, until, limit: int = STARTUP_DEPTH) -> None:
        """Submits batches until ``until()`` is true or ``limit`` batches are in flight."""
        while not self.exhausted and len(self.pending) < limit and not until():
            self._submit_next()

    def run(self, score) -> Iterator[list[Result]]:
        """Yields ``score(prepared batch, busy)`` for every batch, in order (``busy`` is
        :meth:`busy`); closes the pool at the end."""
        try:
            while True:
                while not self.exhausted and len(self.pending) < PIPELINE_DEPTH * self.workers:
                    self._submit_next()
                if not self.pending:
                    return
                yield score(_gather(self.pending.popleft()), self.busy)
        finally:
            self.close()

    def busy(self) -> int:
        """How many decoding threads are at work now (slices submitted and not yet finished)."""
        return min(self.workers, sum(1 for futs in self.pending for f in futs if not f.done()))

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


def _why(exc: Exception) -> str:
    """An exception for an error message; some have no text of their own."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _as_item(x: Any, index: int) -> Item:
    """API inputs (paths, bytes, PIL images, HxWx3 uint8 arrays) -> Items."""
    if isinstance(x, Item):
        return x
    if isinstance(x, (str, os.PathLike)):
        return Item(os.fspath(x), source=os.fspath(x))
    if isinstance(x, (bytes, bytearray, memoryview)):
        return Item(f"<bytes:{index}>", source=bytes(x))
    if isinstance(x, np.ndarray):
        from PIL import Image

        try:
            img = Image.fromarray(x)
        except (TypeError, ValueError) as exc:
            return Item(f"<array:{index}>", error=f"unsupported array {x.dtype}{list(x.shape)}: expected "
                        f"HxW or HxWx3/HxWx4 uint8 ({exc})")
        # Pillow wraps some arrays (grayscale, RGBA) without copying them, and inputs are taken
        # ahead of decoding: a caller that refills one buffer would have every input scored
        # as its last contents.
        return Item(f"<array:{index}>", source=img.copy() if img.readonly else img)
    if hasattr(x, "mode") and hasattr(x, "size"):  # PIL image
        name = getattr(x, "filename", "") or f"<image:{index}>"
        try:
            # Decode a lazily opened image here, once: the decoding threads would otherwise load
            # it concurrently when the same object is passed twice, sharing one file handle.
            x.load()
        except Exception as exc:
            if "truncated" in str(exc).lower():
                msg = "truncated image data"
            elif isinstance(exc, AssertionError) and not str(exc):  # Pillow's, for a closed file
                msg = "cannot decode image: AssertionError (was the image's file closed before it was loaded?)"
            else:
                msg = f"cannot decode image: {_why(exc)}"
            return Item(name, error=msg)
        return Item(name, source=x)
    return Item(f"<input:{index}>", error=f"unsupported input type {type(x).__name__}")


def gpu_driver_present() -> bool:
    """Whether this machine shows a GPU driver (NVIDIA, ROCm or WSL's), checked without torch.
    Where none is, ``device="auto"`` is certain to mean the CPU before torch is imported."""
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"))


def default_workers() -> int:
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


class Detector:
    """A loaded model plus the batched pipeline that feeds it.

    Example:
        >>> det = Detector.load()
        >>> [r.p_fake for r in det.predict(["a.jpg", pil_image])]
    """

    def __init__(self, model, meta: ckpt.CheckpointMeta, device, weights_path: Optional[Path] = None,
                 threshold: Optional[float] = None, batch_size: int = 32,
                 workers: Optional[int] = None, faces: bool = False, decode: str = "auto"):
        if decode not in ("auto", "pil", "torch"):
            raise ValueError(f"decode must be auto, pil or torch, not {decode!r}")
        self.model = model
        self.faces = bool(faces)
        self.decode = decode
        self.meta = meta
        self.device = device
        self.weights_path = weights_path
        self.config = ModelConfig.from_dict(meta.model)
        if threshold is None:
            threshold = meta.face_threshold if faces and meta.face_threshold is not None else meta.threshold
        self.threshold = float(threshold)
        if not 0.0 <= self.threshold <= 1.0:  # also refuses NaN
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        self.temperature = float(meta.temperature)
        self.batch_size = max(1, int(batch_size))
        self.workers = default_workers() if workers is None else max(0, int(workers))
        import torch  # loaded with the model already

        # the most intra-op threads a CPU forward takes (see forward)
        self._cpu_threads = torch.get_num_threads()

    @classmethod
    def load(cls, weights: Optional[str | os.PathLike] = None, device: str = "auto",
             threshold: Optional[float] = None, batch_size: int = 32,
             workers: Optional[int] = None, faces: bool = False,
             decode: str = "auto") -> "Detector":
        """Loads a checkpoint (the shipped default when ``weights`` is None) onto ``device``.

        With ``faces=True`` every image is searched for faces (MTCNN); each face is scored on a
        crop and the image's ``p_fake`` is the maximum over the faces and the whole image; the
        default threshold is then the checkpoint's face-mode one when it has one.
        ``decode`` picks the decoder: ``pil`` (worker threads), ``torch`` (batched torchvision
        decoding and preprocessing on the model's device) or ``auto`` (torch on CUDA, else pil).

        Raises:
            CheckpointError: the weights are missing, unreadable or do not match their config.
            DeviceError: the device is unavailable.
        """
        dev = resolve_device(device)
        if dev.type == "cpu":
            tune_malloc()
        path = Path(weights) if weights is not None else ckpt.default_weights_path()
        model, meta = ckpt.load(path, device="cpu")
        model = model.to(dev).fuse_for_inference()
        if faces:
            from fakedet.model.faces import default_mtcnn_path, get_detector

            if not default_mtcnn_path().is_file():
                raise ckpt.CheckpointError(f"face detector weights not found: {default_mtcnn_path()}")
            try:  # loaded here, once, so that unusable weights fail the load, not every image
                get_detector()
            except Exception as exc:
                raise ckpt.CheckpointError(
                    f"face detector weights {default_mtcnn_path()} cannot be used: {exc}") from None
        return cls(model, meta, dev, path, threshold, batch_size, workers, faces, decode)

    # ------------------------------------------------------------------ public API
    def predict(self, inputs: Iterable[Any], batch_size: Optional[int] = None,
                workers: Optional[int] = None) -> list[Result]:
        """Scores every input; one :class:`Result` per input, in order."""
        return list(self.predict_iter(inputs, batch_size=batch_size, workers=workers))

    def predict_iter(self, inputs: Iterable[Any], batch_size: Optional[int] = None,
                     workers: Optional[int] = None) -> Iterator[Result]:
        """Like :meth:`predict` but lazy: results stream out as batches finish."""
        if isinstance(inputs, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)) or (
                hasattr(inputs, "mode") and hasattr(inputs, "size")) or not isinstance(inputs, Iterable):
            inputs = [inputs]  # one input (an image, or None: its own error record), not a sequence
        items = (_as_item(x, i) for i, x in enumerate(inputs))
        for batch in self.iter_batches(items, batch_size, workers):
            yield from batch

    def iter_batches(self, items: Iterable[Item], batch_size: Optional[int] = None,
                     workers: Optional[int] = None) -> Iterator[list[Result]]:
        """Scores a stream of :class:`Item` (or of anything :meth:`predict` takes) and yields
        each batch's results, in input order."""
        items = (x if isinstance(x, Item) else _as_item(x, i) for i, x in enumerate(items))
        bs = max(1, int(batch_size or self.batch_size))
        nworkers = self.workers if workers is None else max(0, int(workers))
        task = Task(self.config.preprocess, self.faces)
        batches = chunks(items, bs)
        first = next(batches, None)
        if first is None:
            return
        second = next(batches, None)
        use_torch = not self.faces and (self.decode == "torch" or
                                        (self.decode == "auto" and self.device.type == "cuda"))
        if use_torch:
            yield from self._iter_tensor_batches(_prepend(first, second, batches) if second else [first],
                                                 task, max(4, nworkers))
            return
        if nworkers == 0 or (second is None and len(first) == 1):
            # No workers, or one input: decode in the calling thread.
            for batch in ([first] if second is None else _prepend(first, second, batches)):
                yield self._score(prepare_batch(batch, task))
            return
        pipe = DecodePipeline(_prepend(first, second, batches) if second else iter([first]), task,
                              bs, nworkers)
        yield from pipe.run(self._score)

    def _iter_tensor_batches(self, batches, task, threads):
        from fakedet.inference.gpudecode import TensorDecoder

        dec = TensorDecoder(task, self.device, threads=threads)
        pending: deque = deque()
        try:
            for batch in batches:
                pending.append(dec.read(batch))  # file reads run ahead in threads
                if len(pending) >= 3:
                    yield self._score(dec.prepare(pending.popleft()))
            while pending:
                yield self._score(dec.prepare(pending.popleft()))
        finally:
            for reads in pending:
                for _, fut in reads:
                    fut.cancel()
            dec.close()

    # ------------------------------------------------------------------ scoring
    def _score(self, prepared: list[tuple], busy: Optional[Callable[[], int]] = None) -> list[Result]:
        import torch

        ok = [i for i, r in enumerate(prepared) if r[3] is None]
        probs: dict[int, list[float]] = {}
        if ok:
            views = _cat([prepared[i][1] for i in ok], self.device)
            patches = _cat([prepared[i][2] for i in ok], self.device)
            logits = self.forward(views, patches, busy)
            p = torch.sigmoid(logits / self.temperature).tolist()
            start = 0
            for i in ok:
                n = len(prepared[i][1])
                probs[i] = p[start : start + n]
                start += n
        out = []
        for i, (path, _, _, err, boxes) in enumerate(prepared):
            if err is not None:
                out.append(Result(path, None, None, err, face_mode=self.faces))
                continue
            scores = probs[i]
            if any(math.isnan(x) for x in scores):
                out.append(Result(path, None, None, "model produced no score (NaN)", face_mode=self.faces))
                continue
            pf = max(scores)
            r = Result(path, pf, "fake" if pf >= self.threshold else "real", face_mode=self.faces)
            if boxes is not None:
                r.faces = [{"box": list(b), "p_fake": float(x)} for b, x in zip(boxes, scores[1:])]
                r.p_whole = scores[0]
                r.note = None if boxes else NO_FACE_NOTE
            out.append(r)
        return out

    def forward(self, views, patches, busy: Optional[Callable[[], int]] = None):
        """Raw logits for uint8 tensors ``(B,3,G,G)`` and ``(B,K,3,P,P)`` (on any device).

        On the CPU, ``busy`` (the decoding pipeline's :meth:`DecodePipeline.busy`) says how many
        cores the decoding threads are using; each sub-batch then runs on the others, at least
        one. Without that, the model's intra-op threads and the decoding threads oversubscribe
        the cores: every parallel operator of the model waits at its barrier for a thread that
        the scheduler has given a decoder's time slice, and spins meanwhile. (On two cores this
        cost 1024 px scans about 15 % of their throughput and 12-megapixel scans about 25 %;
        ``scripts/benchmark.py``.) The model uses at most the intra-op thread count torch had
        in the thread that created the Detector. Only the number of threads changes, not the
        result.
        """
        import torch

        dev = self.device
        with torch.inference_mode():
            if dev.type == "cuda":
                if views.device != dev:
                    views = views.pin_memory().to(dev, non_blocking=True)
                    patches = patches.pin_memory().to(dev, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = self.model(views, patches)
            else:
                # Sub-batches keep each activation below glibc's largest mmap threshold (32 MiB),
                # so the allocator reuses its buffers instead of mapping fresh pages per batch.
                logits = torch.cat(self._cpu_forward(views, patches, busy))
            return logits.float().cpu()

    def _cpu_forward(self, views, patches, busy):
        import torch

        # torch's count is per thread (OpenMP's), and threads started later begin with the last
        # count set anywhere: so the calling thread's own count is put back afterwards, and the
        # most the model takes is the count at load time, not this thread's (a thread started
        # while another one's count was lowered begins with the lowered count).
        own, full = torch.get_num_threads(), self._cpu_threads
        out = []
        try:
            for v, p in zip(views.split(CPU_SUB_BATCH), patches.split(CPU_SUB_BATCH)):
                if busy is not None:
                    n = max(1, full - busy())
                    if n != torch.get_num_threads():
                        torch.set_num_threads(n)
                out.append(self.model(v, p))
        finally:
            if torch.get_num_threads() != own:
                torch.set_num_threads(own)
        return out

    # ------------------------------------------------------------------ info
    def info(self) -> dict[str, Any]:
        pre = self.config.preprocess
        training = dict(self.meta.training)
        training.pop("config", None)
        return {
            "name": self.config.name,
            "backbone": self.config.backbone,
            "branches": [n for n, on in (("backbone", self.config.use_backbone),
                                         ("colour", self.config.use_colour),
                                         ("texture", self.config.use_texture)) if on],
            "input": {
                "global_view": f"whole image resized to {pre.global_size}x{pre.global_size} ({pre.interpolation})",
                "texture_patches": f"{pre.num_patches} native-resolution {pre.patch_size}x{pre.patch_size} crops on a fixed grid",
                "min_size": pre.min_size,
                "max_pixels": pre.max_pixels,
            },
            "parameters": getattr(self.model, "trained_parameters", None)
            or sum(p.numel() for p in self.model.parameters()),
            "threshold": self.threshold,
            "face_threshold": self.meta.face_threshold,
            "temperature": self.temperature,
            "training": training,
            "evaluation": self.meta.evaluation,
            "weights": str(self.weights_path) if self.weights_path else None,
            "sha256": ckpt.sha256(self.weights_path) if self.weights_path else None,
            "device": str(self.device),
        }


def _cat(parts, device):
    """Concatenates numpy arrays (PIL path) and/or device tensors (torch path) into one tensor."""
    import torch

    if all(isinstance(p, np.ndarray) for p in parts):
        return torch.from_numpy(np.concatenate(parts))
    return torch.cat([torch.from_numpy(p).to(device) if isinstance(p, np.ndarray) else p for p in parts])


def _gather(futures) -> list[tuple]:
    return [r for fut in futures for r in fut.result()]


def _prepend(first, second, rest):
    yield first
    yield second
    yield from rest
