"""Ray layer (beside the CLI, at the top): scoring on a Ray cluster with Ray Data.

Two entry points:

* :func:`score` for people who already hold a Ray Dataset: ``fakedet.ray.score(ds)`` returns a
  Dataset of records (columns ``path``, ``p_fake``, ``label``, ``error``, ``evidence`` as a JSON
  string, ``label_by``, ``model_label``). ``ds`` has the columns ``ray.data.read_binary_files(...,
  include_paths=True)`` gives (``bytes`` and ``path``), or only ``path`` (a local path on every
  node, or a URI of any filesystem pyarrow supports: ``s3://``, ``gs://``, ``hdfs://``), read in
  the tasks.
* :func:`scan_items` for ``fakedet scan --engine ray``: the same inputs as the local engine (the
  driver walks folders with :func:`fakedet.data.sources.iter_items`, so the records and their
  order are the same; folder URIs are listed with pyarrow), giving Result batches in input order.

The stages: decoding (reading the bytes, provenance, preprocessing) runs in Ray tasks
(:func:`decode_batch`, ``map_batches``), near the data; the model runs in a pool of actors
(:class:`Scorer`, a callable class: ``map_batches(Scorer, concurrency=N)``) that load the
weights once. The arrays pass between the stages as tensor columns. Actors are restarted and
their batches retried when a worker process dies (``max_restarts``/``max_task_retries``), and
Ray Data's streaming executor keeps what is in flight bounded; the CLI also feeds the inputs in
chunks of :data:`CHUNK`, so the driver holds no more than a chunk's paths to score (with more
than one input, it also keeps each file or URI given, one key each, to score each once). Of a list of paths
that arrives slowly (``--files-from -`` from a pipe) a chunk also ends when the list goes quiet
for :data:`LIVE_QUIET` seconds, or :data:`LIVE_WAIT` seconds after its first path came, so that
each path is scored soon after it arrives; a list that breaks off mid-way is scored up to
there before its error is raised.

Ray is imported only inside the functions here: ``import fakedet.ray`` needs no Ray, and
nothing else in the package imports this module except ``fakedet scan --engine ray``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional

import numpy as np

from fakedet.data import decode
from fakedet.data.sources import (
    SNIFF_HEAD,
    Item,
    Reached,
    WalkFilter,
    is_image_head,
    is_image_name,
    may_be_image,
    not_found_error,
)
from fakedet.data.writers import json_text, utf8_text
from fakedet.inference.pipeline import Batches, Decoded, Task, prepare_batch
from fakedet.inference.result import Result
from fakedet.model import checkpoint as ckpt

INSTALL_HINT = "the ray engine needs Ray: pip install 'fakedet[ray]'"
#: inputs handed to one Ray Data run by :func:`scan_items` (the driver holds one chunk's paths)
CHUNK = 50_000
#: seconds without a new path that end a chunk of a list still arriving (each chunk is one Ray
#: Data run, whose scoring actors load the model: a chunk costs seconds, so it is not cut at the
#: local engine's 0.1 s)
LIVE_QUIET = 1.0
#: a chunk of a list still arriving is scored at most this many seconds after its first path came
LIVE_WAIT = 5.0
#: inputs per decoding task
DECODE_BATCH = 16
#: an environment variable for the fault-tolerance test: each Scorer appends its PID to a file there
PID_DIR_ENV = "FAKEDET_RAY_PID_DIR"


def available() -> bool:
    """Whether Ray (with Ray Data) and pyarrow can be imported."""
    try:
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- URIs
def is_uri(path: str) -> bool:
    """Whether ``path`` names a file through a filesystem scheme (``s3://b/k``, ``gs://``,
    ``hdfs://``, ``file://``) rather than as a local path."""
    head, sep, _ = path.partition("://")
    return bool(sep) and head.isascii() and head.replace("+", "").isalnum() and len(head) > 1


def filesystem(uri: str, s3_endpoint: Optional[str] = None):
    """(pyarrow filesystem, path within it) for ``uri``. For ``s3://`` an endpoint (a local or
    S3-compatible service) comes from ``s3_endpoint``, else from ``AWS_ENDPOINT_URL``."""
    from pyarrow import fs

    endpoint = s3_endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if uri.startswith("s3://") and endpoint:
        scheme, _, host = endpoint.partition("://")
        if not host:
            scheme, host = "http", endpoint
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return (fs.S3FileSystem(endpoint_override=host, scheme=scheme, region=region,
                                allow_bucket_creation=False), uri[len("s3://"):])
    return fs.FileSystem.from_uri(uri)


def read_uri(uri: str, s3_endpoint: Optional[str] = None, max_bytes: int = decode.MAX_FILE_BYTES) -> bytes:
    """One file's bytes through pyarrow, failures as :class:`~fakedet.data.decode.ImageError`
    with the local engine's messages."""
    from pyarrow import fs

    try:
        filesys, path = filesystem(uri, s3_endpoint)
        info = filesys.get_file_info(path)
        if info.type == fs.FileType.NotFound:
            raise FileNotFoundError
        if info.type == fs.FileType.Directory:
            raise decode.ImageError("is a directory")
        with filesys.open_input_file(path) as fh:
            video = decode.video_container(fh.read(512))
            if video:
                raise decode.ImageError(decode.video_error(video))
            if info.size is not None and info.size > max_bytes:
                raise decode.ImageError(f"file too large: {info.size} bytes exceeds the limit of {max_bytes}")
            fh.seek(0)
            data = fh.read(max_bytes + 1)
    except decode.ImageError:
        raise
    except FileNotFoundError:
        raise decode.ImageError(not_found_error(uri)) from None
    except PermissionError:
        raise decode.ImageError("permission denied") from None
    except (OSError, ValueError) as exc:
        raise decode.ImageError(f"cannot read file: {decode.exception_text(exc)}") from None
    if len(data) > max_bytes:
        raise decode.ImageError(f"file too large: more than {max_bytes} bytes")
    if not data:
        raise decode.ImageError("empty file")
    return data


def _image_by_content(filesys, path: str) -> bool:
    """Whether a remote file not named as an image is one by its first bytes (as the local
    walk's :func:`~fakedet.data.sources.image_by_content`, which opens no file named as what
    is never an image); one that cannot be read is not (the local walk takes an unreadable one
    whose name has no dot, for its record to say why: a URI's reasons to fail are many more,
    and most are not the file's). Read as stored (pyarrow would otherwise
    unpack a .gz or .bz2 first, where the tasks read the stored bytes)."""
    if not may_be_image(path.rsplit("/", 1)[-1]):
        return False
    try:
        with filesys.open_input_stream(path, compression=None) as fh:
            return is_image_head(fh.read(SNIFF_HEAD))
    except (OSError, ValueError):
        return False


def expand_uri(uri: str, s3_endpoint: Optional[str] = None, filt: Optional[WalkFilter] = None) -> Iterator[Item]:
    """A URI as items: a file as itself (its reading, and any error, left to the tasks); a
    folder (prefix) listed recursively, image files only, in sorted order, skipping hidden
    entries and ``filt``'s exclusions as a local folder walk does."""
    from pyarrow import fs

    filt = WalkFilter() if filt is None else filt
    try:
        filesys, path = filesystem(uri, s3_endpoint)
        info = filesys.get_file_info(path.rstrip("/") or path)
    except (OSError, ValueError) as exc:
        yield Item(uri, error=f"cannot read folder: {decode.exception_text(exc)}", folder=True)
        return
    if info.type != fs.FileType.Directory:
        yield Item(uri, source=uri)
        return
    filt.walked += 1
    base = path.rstrip("/")
    try:
        infos = filesys.get_file_info(fs.FileSelector(base, recursive=True))
    except (OSError, ValueError) as exc:
        yield Item(uri, error=f"cannot list folder: {decode.exception_text(exc)}", folder=True)
        return
    prefix = uri.rstrip("/")
    rels = []
    skipped_dirs: set[str] = set()  # a skipped folder counts once, whatever it holds (as the local walk)
    for i in sorted(infos, key=lambda i: i.path):
        if i.type not in (fs.FileType.File, fs.FileType.Directory):
            continue
        parts = i.path[len(base):].lstrip("/").split("/")
        # a folder is checked as the folders above a file are (an empty hidden one counts too)
        dirs = ["/".join(parts[:k + 1]) for k in range(len(parts) - (i.type == fs.FileType.File))]
        if any(d in skipped_dirs for d in dirs):
            continue
        skipped = next((d for d, name in zip(dirs, parts) if filt.skips(name, d, True)), None)
        if skipped is not None:
            skipped_dirs.add(skipped)
            continue
        if i.type == fs.FileType.Directory:
            continue
        name, rel = parts[-1], "/".join(parts)
        if not is_image_name(name):
            # a hidden one is not looked at at all; an excluded one counts as excluded; an image
            # by its first bytes is scored (as the local walk)
            if (filt.hidden or not name.startswith(".")) and not filt.skips(name, rel, False):
                if _image_by_content(filesys, i.path):
                    rels.append(parts)
                    continue
                filt.skipped_other += 1
            continue
        if filt.skips(name, rel, False):
            continue
        rels.append(parts)
    for parts in sorted(rels):  # depth first by name, as the local walk
        yield Item(prefix + "/" + "/".join(parts), source=prefix + "/" + "/".join(parts))


# ----------------------------------------------------------------------------- the stages
def _evidence_json(evidence: Optional[list]) -> Optional[str]:
    return None if evidence is None else json_text(evidence)  # lone surrogates as text Arrow can store


def _null(x) -> bool:
    # a column of nulls may reach a batch as NaNs (numpy float32 among them)
    return x is None or (isinstance(x, (float, np.floating)) and x != x)


def _column(batch: dict, name: str, n: int) -> list:
    col = batch.get(name)
    return [None] * n if col is None else [None if _null(x) else x for x in col]


# what a row of the CLI's inputs holds in its ``payload`` column (Arrow columns of one type, no nulls)
KIND_SOURCE, KIND_BYTES, KIND_ERROR = 0, 1, 2


def decode_batch(batch: dict, pre, provenance: bool = True, s3_endpoint: Optional[str] = None,
                 crop: bool = True) -> dict:
    """A Ray Data task: rows of inputs -> rows of model inputs (uint8 ``views``/``patches``
    tensors, zeros where ``error`` is set) with the provenance ``evidence`` and the box of the
    picture scored inside plain margins or on a story's smooth backdrop (``cropped``, with
    ``crop``) as JSON text.

    Input columns: ``path``; optionally ``bytes`` (the file's bytes, as read_binary_files gives;
    without it ``path`` is read: a local path or a URI); the CLI's rows have ``kind`` and
    ``payload`` instead (:data:`KIND_SOURCE`: the path or URI to read, fsencoded;
    :data:`KIND_BYTES`: the bytes; :data:`KIND_ERROR`: the walker's error record, UTF-8), and
    ``index``, which is passed through. Decoding is :func:`fakedet.inference.pipeline.prepare_batch`'s, so the error
    messages and the evidence are the local engine's."""
    paths = [p if isinstance(p, str) else os.fsdecode(p) for p in batch["path"]]
    n = len(paths)
    datas = _column(batch, "bytes", n)
    sources, errors = [None] * n, [None] * n
    if "kind" in batch:
        for i, (kind, payload) in enumerate(zip(batch["kind"], batch["payload"])):
            payload = bytes(payload)
            if kind == KIND_BYTES:
                datas[i] = payload
            elif kind == KIND_ERROR:
                errors[i] = payload.decode("utf-8", "surrogateescape")
            else:
                sources[i] = payload
    items: list[Item] = []
    pre_failed: dict[int, str] = {}
    for i, path in enumerate(paths):
        if errors[i] is not None:
            items.append(Item(path, error=str(errors[i])))
        elif datas[i] is not None:
            items.append(Item(path, source=bytes(datas[i])))
        else:
            src = sources[i] if sources[i] is not None else path
            src = src if isinstance(src, str) else os.fsdecode(bytes(src))
            if is_uri(src) and not src.startswith("file://"):
                try:
                    items.append(Item(path, source=read_uri(src, s3_endpoint)))
                except decode.ImageError as exc:
                    pre_failed[i] = str(exc)
                    items.append(Item(path, error=str(exc)))
            else:
                items.append(Item(path, source=src[len("file://"):] if src.startswith("file://") else src))
    decoded = prepare_batch(items, Task(pre, provenance=provenance, crop=crop))
    g, p, k = pre.global_size, pre.patch_size, pre.num_patches
    views = np.zeros((n, 1, 3, g, g), np.uint8)
    patches = np.zeros((n, 1, k, 3, p, p), np.uint8)
    for i, d in enumerate(decoded):
        if d.error is None:
            views[i], patches[i] = d.views, d.patches
    out = {
        "path": np.array([utf8_text(x) for x in paths], dtype=object),
        "error": np.array([utf8_text(d.error) for d in decoded], dtype=object),
        "evidence": np.array([_evidence_json(d.evidence) for d in decoded], dtype=object),
        "cropped": np.array([None if d.cropped is None else json.dumps(d.cropped) for d in decoded], dtype=object),
        "animated": np.array([bool(d.animated) for d in decoded], dtype=bool),
        "frame": np.array([np.nan if d.frame is None else float(d.frame) for d in decoded], dtype=np.float64),
        "views": views,
        "patches": patches,
    }
    if "index" in batch:
        out["index"] = np.asarray(batch["index"], dtype=np.int64)
    return out


def _records_table(results: list[Result], index=None):
    import pyarrow as pa

    cols = {
        "path": pa.array([utf8_text(r.path) for r in results], pa.string()),
        "p_fake": pa.array([r.p_fake for r in results], pa.float64()),
        "label": pa.array([r.label for r in results], pa.string()),
        "error": pa.array([utf8_text(r.error) for r in results], pa.string()),
        "evidence": pa.array([_evidence_json(r.evidence) for r in results], pa.string()),
        "label_by": pa.array([r.label_by for r in results], pa.string()),
        "model_label": pa.array([None if r.evidence is None else r.model_label for r in results], pa.string()),
        "cropped": pa.array([r.cropped for r in results], pa.list_(pa.int32())),  # as the CLI's parquet
        "framed": pa.array([bool(r.framed) for r in results], pa.bool_()),
        "animated": pa.array([bool(r.animated) for r in results], pa.bool_()),
    }
    if index is not None:
        cols = {"index": pa.array(np.asarray(index, dtype=np.int64), pa.int64()), **cols}
    return pa.table(cols)


class Scorer:
    """A Ray Data callable class: loads the :class:`~fakedet.inference.detector.Detector` once
    per actor, then scores batches of :func:`decode_batch`'s rows into records."""

    def __init__(self, weights: Optional[str] = None, device: str = "cpu", threshold: Optional[float] = None,
                 batch_size: int = 32):
        from fakedet.inference.detector import Detector

        self.det = Detector.load(weights, device=device, threshold=threshold, batch_size=batch_size, workers=0)
        self._pid_dir = os.environ.get(PID_DIR_ENV)

    def __call__(self, batch: dict):
        if self._pid_dir:  # the fault-tolerance test finds the actor's process here
            with open(os.path.join(self._pid_dir, "scorer.pids"), "a") as fh:
                fh.write(f"{os.getpid()}\n")
        paths = [str(p) for p in batch["path"]]
        n = len(paths)
        errors = [None if e is None else str(e) for e in _column(batch, "error", n)]
        evidence = [None if e is None else json.loads(e) for e in _column(batch, "evidence", n)]
        cropped = [None if c is None else json.loads(c) for c in _column(batch, "cropped", n)]
        animated = [bool(a) for a in _column(batch, "animated", n)]
        frame = _column(batch, "frame", n)  # NaN (not measured) reaches here as None
        decoded = []
        for i, path in enumerate(paths):
            if errors[i] is not None:
                decoded.append(Decoded.failed(path, errors[i], evidence[i]))
            else:
                decoded.append(Decoded(path, batch["views"][i], batch["patches"][i], evidence=evidence[i],
                                       cropped=cropped[i], animated=animated[i],
                                       frame=None if frame[i] is None else float(frame[i])))
        results = self.det.score_decoded(decoded)
        return _records_table(results, batch.get("index"))


@dataclass
class Plan:
    """How a run uses the cluster: scoring actors, their resources and device."""

    workers: int
    device: str  # "cpu" or "cuda"
    actor_cpus: float
    actor_gpus: float
    decode_cpus: float


def plan(workers: Optional[int] = None, device: str = "auto") -> Plan:
    """Resources for ``workers`` scoring actors on the connected cluster: one GPU each with
    ``cuda`` (``auto``: when the cluster has GPUs), else one CPU each while the cluster has CPUs
    to spare for the decoding tasks, and a share of the CPUs left after one decoding task
    otherwise (two actors on two CPUs: half a CPU each)."""
    import ray

    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 1)), float(res.get("GPU", 0))
    cuda = device.startswith("cuda") or (device == "auto" and gpus > 0)
    if cuda:
        n = workers or max(1, int(gpus))
        return Plan(n, "cuda", 1.0, 1.0, 1.0)
    n = workers or max(1, int(cpus) // 4)
    actor_cpus = 1.0 if cpus - n >= 1 else max(0.1, (cpus - 1) / n)
    return Plan(n, "cpu", actor_cpus, 0.0, 1.0 if cpus >= 2 else 0.5)


def _configure():
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # records stream out in input order
    ctx.enable_progress_bars = False
    for attr in ("print_on_execution_start", "enable_operator_progress_bars"):
        if hasattr(ctx, attr):
            setattr(ctx, attr, False)
    return ctx


def _pipeline(ds, pre, plan_: Plan, weights, threshold, batch_size, provenance, s3_endpoint, crop=True):
    import warnings

    import ray.data

    ds = ds.map_batches(decode_batch, batch_size=DECODE_BATCH, batch_format="numpy",
                        fn_kwargs={"pre": pre, "provenance": provenance, "s3_endpoint": s3_endpoint,
                                   "crop": crop},
                        num_cpus=plan_.decode_cpus)
    with warnings.catch_warnings():
        # Ray 2.60 deprecates the remote arguments given as keywords (and restarts an actor
        # pool's actors by default); earlier versions need them, so they are given either way.
        warnings.simplefilter("ignore")
        return ds.map_batches(Scorer, batch_size=batch_size, batch_format="numpy",
                              compute=ray.data.ActorPoolStrategy(size=plan_.workers),
                              fn_constructor_kwargs={"weights": None if weights is None else os.fspath(weights),
                                                     "device": plan_.device, "threshold": threshold,
                                                     "batch_size": batch_size},
                              num_cpus=plan_.actor_cpus, num_gpus=plan_.actor_gpus or None,
                              max_restarts=-1, max_task_retries=-1)


def _preprocess_config(weights):
    meta = ckpt.read_meta(weights if weights is not None else ckpt.default_weights_path())
    return meta, meta.model_config().preprocess


def score(ds, weights: Optional[str | os.PathLike] = None, *, device: str = "auto",
          threshold: Optional[float] = None, batch_size: int = 32, concurrency: Optional[int] = None,
          provenance: bool = True, s3_endpoint: Optional[str] = None, crop: bool = True):
    """Scores a Ray Dataset of images; returns a Dataset of records (lazy, as Ray Data is).

    ``ds`` has a ``path`` column and either a ``bytes`` column (``ray.data.read_binary_files(
    paths, include_paths=True)``) or none (each path, local on every node or a URI, is then
    read in the decoding tasks). The result has one row per input row, in order when the
    DataContext preserves order, with the columns ``path``, ``p_fake``, ``label``, ``error``,
    ``evidence`` (JSON text, null with ``provenance=False``), ``label_by`` and ``model_label``
    (the model's own verdict; null with ``provenance=False``) and ``cropped`` (a list of four
    integers, as the CLI's parquet has it: the box of the picture scored inside plain
    margins or on a story's smooth backdrop, :attr:`fakedet.Result.cropped`; null where the
    whole image was scored; ``crop=False`` scores every image whole), ``framed`` (true where
    wide margins were scored with the picture: :attr:`fakedet.Result.framed`) and ``animated``
    (true for an animation, of which only the first frame was scored, or a TIFF of several
    pages, of which only the first was). ``concurrency`` is the
    number of scoring actors; ``device`` ``cuda`` gives each a GPU. Arguments otherwise
    as :meth:`fakedet.Detector.load`.

    Example:
        >>> ds = ray.data.read_binary_files("s3://bucket/images/", include_paths=True)
        >>> fakedet.ray.score(ds, concurrency=4).write_parquet("s3://bucket/scores/")
    """
    from fakedet.inference.detector import check_flags

    check_flags(provenance=provenance, crop=crop)  # crop="false" from a setting is true to Python
    _, pre = _preprocess_config(weights)
    return _pipeline(ds, pre, plan(concurrency, device), weights, threshold, max(1, int(batch_size)),
                     provenance, s3_endpoint, crop)


# ----------------------------------------------------------------------------- the CLI's engine
@dataclass
class RunInfo:
    """What the CLI's summary needs to know of the scoring side (a Detector's attributes)."""

    threshold: float
    real_below: float
    three_way: bool
    device: str
    faces: bool = False


def init(address: Optional[str] = None, num_cpus: Optional[int] = None) -> bool:
    """Connects to Ray: to ``address``, else to the cluster ``RAY_ADDRESS`` names, else starts a
    local Ray (with ``num_cpus``). Returns whether this call started it (and so should shut it
    down); an initialised Ray is used as it is."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    kw: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    # ray.init puts its own SIGTERM handler (sys.exit(15)) in place of the caller's: a scan that
    # `timeout` or `docker stop` ended exited with status 15, without its summary or the end of
    # its parquet file. The caller's handlers are put back.
    kept = _signal_handlers()
    try:
        if address:
            ray.init(address=address, **kw)
        elif os.environ.get("RAY_ADDRESS"):
            ray.init(**kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    finally:
        _restore_signal_handlers(kept)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the records' stream is the progress
    return True


def _signal_handlers() -> dict:
    """SIGINT's, SIGTERM's and SIGHUP's handlers now, where they can be set again (the main
    thread): ``{signal: handler}``."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    return {sig: signal.getsignal(sig) for sig in (getattr(signal, n) for n in names if hasattr(signal, n))
            if signal.getsignal(sig) is not None}


def _restore_signal_handlers(kept: dict) -> None:
    import signal

    for sig, handler in kept.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


class RayScan:
    """The Result batches of a ``--engine ray`` scan, in input order (as
    :class:`fakedet.inference.stream.ResultStream`): iterate once; :meth:`close` stops it."""

    def __init__(self, items: Iterable[Item], weights=None, *, device: str = "auto",
                 threshold: Optional[float] = None, batch_size: int = 32, workers: Optional[int] = None,
                 provenance: bool = True, s3_endpoint: Optional[str] = None, filt: Optional[WalkFilter] = None,
                 shutdown: bool = False, chunk: int = CHUNK, crop: bool = True, several: bool = True):
        from fakedet.inference.detector import check_flags

        check_flags(provenance=provenance, crop=crop)
        self.meta, self.pre = _preprocess_config(weights)  # a bad checkpoint fails here
        self.items, self.weights, self.threshold = items, weights, threshold
        self.batch_size, self.provenance, self.s3_endpoint = max(1, int(batch_size)), provenance, s3_endpoint
        self.filt, self.shutdown, self.chunk = filt, shutdown, max(1, int(chunk))
        self.crop = crop
        # URIs given so far, as iter_items keeps local files (a URI reached through a folder URI
        # and again by name, or through two, is scored once); with one input, nothing is kept
        self.several, self._inputs, self._reached = several, itertools.count(), Reached()
        self.plan = plan(workers, device)
        if threshold is None:
            fake_at, real_below = self.meta.cutoffs(faces=False)
        else:
            fake_at = real_below = float(threshold)
        self.detector = RunInfo(fake_at, real_below, real_below < fake_at,
                                f"ray ({self.plan.workers} {self.plan.device} worker"
                                f"{'s' if self.plan.workers != 1 else ''})")
        self._batches = self._run()

    def __iter__(self) -> Iterator[list[Result]]:
        return self._batches

    def close(self) -> None:
        self._batches.close()

    def _expand(self, item: Item) -> Iterator[Item]:
        if item.error is None and isinstance(item.source, str) and item.source == item.path \
                and is_uri(item.path) and not os.path.exists(item.path):
            number = next(self._inputs)
            for one in expand_uri(item.path, self.s3_endpoint, self.filt):
                # an object store has no links: a URI is known by its text
                if self.several and one.error is None and \
                        self._reached.seen(one.path, walked=one.path != item.path, source=number):
                    if self.filt is not None:
                        self.filt.skipped_twice += 1
                    continue
                yield one
        else:
            yield item

    def _chunks(self) -> Iterator[list[Item]]:
        """The inputs (folder URIs listed) in chunks of at most ``chunk``, cut as
        :class:`~fakedet.inference.pipeline.Batches` cuts the local engine's batches, with
        :data:`LIVE_QUIET` and :data:`LIVE_WAIT` for a list still arriving. An error raised by the
        inputs (a list that cannot be read further) is raised after the chunks read before it."""
        batches = Batches(self.items, self.chunk, linger=LIVE_QUIET, wait=LIVE_WAIT)
        for top in batches:
            chunk: list[Item] = []
            for item in top:
                for one in self._expand(item):
                    chunk.append(one)
                    if len(chunk) >= self.chunk:
                        yield chunk
                        chunk = []
            if chunk:
                yield chunk
        batches.check()

    def _run(self) -> Iterator[list[Result]]:
        import ray
        import ray.data

        _configure()
        try:
            for chunk in self._chunks():
                yield from self._score_chunk(chunk, ray)
        finally:
            if self.shutdown:
                ray.shutdown()

    def _score_chunk(self, items: list[Item], ray) -> Iterator[list[Result]]:
        rows = []
        for i, it in enumerate(items):
            src = it.source
            if it.error is not None or src is None:
                kind, payload = KIND_ERROR, (it.error or "no input").encode("utf-8", "surrogateescape")
            elif isinstance(src, (bytes, bytearray, memoryview)):
                kind, payload = KIND_BYTES, bytes(src)
            else:
                kind, payload = KIND_SOURCE, os.fsencode(src)
            rows.append({"index": i, "path": utf8_text(it.path), "kind": kind, "payload": payload})
        nblocks = max(1, math.ceil(len(rows) / DECODE_BATCH))
        ds = ray.data.from_items(rows, override_num_blocks=nblocks)
        ds = _pipeline(ds, self.pre, self.plan, self.weights, self.threshold, self.batch_size,
                       self.provenance, self.s3_endpoint, self.crop)
        pending: dict[int, Result] = {}
        nxt = 0
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=1):
            d = table.to_pydict()
            for j, idx in enumerate(d["index"]):
                ev, box = d["evidence"][j], d["cropped"][j]
                pending[idx] = Result(items[idx].path, d["p_fake"][j], d["label"][j], d["error"][j],
                                      evidence=None if ev is None else json.loads(ev),
                                      label_by=d["label_by"][j], model_label=d["model_label"][j],
                                      cropped=None if box is None else list(box), animated=bool(d["animated"][j]),
                                      # the records carry whether the margins were wide, not their share
                                      frame=decode.FRAME_SHARE if d["framed"][j] else None)
            out = []
            while nxt in pending:  # in input order, whatever order the blocks came in
                out.append(pending.pop(nxt))
                nxt += 1
            if out:
                yield out
        if nxt != len(items) or pending:
            raise RuntimeError(f"the Ray run gave {nxt + len(pending)} records for {len(items)} inputs")


def scan_items(items: Iterable[Item], weights=None, *, address: Optional[str] = None,
               num_cpus: Optional[int] = None, **kw) -> RayScan:
    """``fakedet scan --engine ray``: connects (see :func:`init`) and starts scoring ``items``
    (from :func:`fakedet.data.sources.iter_items`; URIs among them are read through pyarrow,
    folder URIs listed). Keyword arguments as :class:`RayScan`."""
    started = init(address, num_cpus)
    try:
        return RayScan(items, weights, shutdown=started, **kw)
    except BaseException:
        if started:
            import ray

            ray.shutdown()
        raise
