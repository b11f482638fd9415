"""Running the model on the CPU so that a score does not depend on how it was run.

A CPU kernel's arithmetic depends on how many intra-op threads share it (the shipped model's
logits differ by up to 4e-6 between one and two threads) and on the batch size. If the thread
count followed the load of the moment, or ``-j``/``-b``, the same image would get a slightly
different ``p_fake`` from run to run. So:

* the model always runs on whole sub-batches of :data:`SUB_BATCH` images (a short one padded
  with copies of its first image);
* each sub-batch runs with the same number of intra-op threads, :func:`threads_per_sub_batch`,
  fixed by the machine's core count alone;
* the cores are shared by running several sub-batches at once, each in its own thread of a
  small pool.

On two cores, end to end, this scans at least as fast as the earlier policy of lowering the
model's thread count while decoding threads were busy (which made scores depend on timing): a
single-threaded kernel never waits at a barrier for a thread the scheduler gave to a decoder
(docs/performance.md, "Decoding threads and the model's threads").
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from fakedet.inference.pipeline import waiting

#: images per model call on the CPU (see the module's docstring)
SUB_BATCH = 8


def threads_per_sub_batch(cores: int) -> int:
    """Intra-op threads per sub-batch on a machine whose torch uses ``cores`` threads: one up to
    seven cores, so that a default batch of 32 (four sub-batches) keeps four cores busy, then a
    quarter of them."""
    return max(1, int(cores) // 4)


def padded(views, patches, multiple: int = SUB_BATCH):
    """``views`` and ``patches`` with copies of their first image appended up to a multiple of
    ``multiple`` images; as they are when already one."""
    import torch

    extra = -len(views) % multiple
    if not extra:
        return views, patches
    return (torch.cat([views, views[:1].expand(extra, *views.shape[1:])]),
            torch.cat([patches, patches[:1].expand(extra, *patches.shape[1:])]))


def _set_threads(n: int) -> None:
    import torch

    # torch sets a thread's count from the process-wide one on the thread's first use, which
    # would undo a count set before it: use it first
    torch.get_num_threads()
    torch.set_num_threads(n)


class CpuRunner:
    """Runs ``model`` on sub-batches in a pool of ``cores // threads_per_sub_batch`` threads,
    each with :func:`threads_per_sub_batch` intra-op threads.

    torch's intra-op thread count is per thread, and a thread started later begins with the
    count last set anywhere; so the pool's threads are all started (and set) at once, and the
    creating thread's own count is then set again, which leaves every other thread as it was.
    """

    def __init__(self, model, cores: int):
        self.model = model
        self.cores = max(1, int(cores))
        self.per = threads_per_sub_batch(self.cores)
        self.slots = max(1, self.cores // self.per)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _start(self) -> ThreadPoolExecutor:
        import torch

        if self._pid != os.getpid():
            # a forked child has none of the parent's threads (work given to the parent's pool
            # would wait forever) and may have its lock held: start afresh
            self._pool, self._lock, self._pid = None, threading.Lock(), os.getpid()
        with self._lock:
            if self._pool is None:
                own = torch.get_num_threads()
                started = threading.Barrier(self.slots)
                pool = ThreadPoolExecutor(self.slots, thread_name_prefix="fakedet-model",
                                          initializer=_set_threads, initargs=(self.per,))
                # one task per thread, each waiting for the others: every thread is started now
                with waiting():
                    for f in [pool.submit(started.wait) for _ in range(self.slots)]:
                        f.result()
                torch.set_num_threads(own)
                self._pool = pool
        return self._pool

    def __call__(self, views, patches) -> list:
        """The model's outputs for ``views`` and ``patches``, one tensor per sub-batch in order
        (padding removed)."""
        import torch

        pool = self._start()
        subs = list(zip(views.split(SUB_BATCH), patches.split(SUB_BATCH)))

        def run(vp):
            v, p = vp
            with torch.inference_mode():
                return self.model(*padded(v, p))[:len(v)]

        with waiting():
            return list(pool.map(run, subs))

    def run(self, model, x) -> list:
        """Another ``model`` of one input tensor run the same way: sub-batches of
        :data:`SUB_BATCH` (a short one padded with copies of its first row) in the same pool,
        each with the same intra-op thread count; its outputs, one tensor per sub-batch."""
        import torch

        pool = self._start()

        def one(sub):
            extra = -len(sub) % SUB_BATCH
            full = torch.cat([sub, sub[:1].expand(extra, *sub.shape[1:])]) if extra else sub
            with torch.inference_mode():
                return model(full)[:len(sub)]

        with waiting():
            return list(pool.map(one, x.split(SUB_BATCH)))
