"""Dynamic batching of one signature's requests (TF Serving's ``--enable_batching``).

:class:`Batcher` merges concurrent requests into batches of at most
``max_batch_size`` examples and runs them on ``num_batch_threads`` threads.
Contracts: every caller of :meth:`Batcher.submit` gets exactly its own rows
back, or a :class:`ServingError`; a client error in a merged batch is charged
to the request that caused it only; nothing waits forever (a stopped batcher
runs requests directly).
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable

import numpy as np

from keras_ssl.server.errors import ServingError
from keras_ssl.server.model_config import BatchingConfig


class _Task:
    """One queued request: its inputs and row count, and where its result or error goes."""
    __slots__ = ("inputs", "n", "done", "result", "error", "t0")

    def __init__(self, inputs: dict, n: int):
        self.inputs, self.n = inputs, n
        self.done = threading.Event()
        self.result = None
        self.error = None
        self.t0 = time.monotonic()


class Batcher:
    """Merges concurrent requests of one signature into batches.

    A batch closes when it holds ``max_batch_size`` examples or when
    ``batch_timeout_micros`` passed since its first request arrived;
    ``num_batch_threads`` batches run at once. A request larger than
    ``max_batch_size`` runs alone. More than ``max_enqueued_batches`` full
    batches waiting -> RESOURCE_EXHAUSTED (HTTP 429). When a merged batch
    fails with a client error (e.g. one corrupt image), its requests are
    re-run one by one so only the faulty request gets the error.
    """

    def __init__(self, run: Callable[[dict], dict], cfg: BatchingConfig, name: str = ""):
        self.run = run
        self.cfg = cfg
        self.queue: collections.deque[_Task] = collections.deque()
        self.queued_rows = 0
        self.cond = threading.Condition()
        self.stopped = False
        self.batches_run = 0
        self.max_batch_seen = 0
        self.threads = [threading.Thread(target=self._loop, name=f"batch-{name}-{i}", daemon=True)
                        for i in range(cfg.num_batch_threads)]
        for t in self.threads:
            t.start()

    def submit(self, inputs: dict, n: int) -> dict:
        """Run ``inputs`` (``n`` rows) in a batch; blocks until its outputs are back."""
        if n > self.cfg.max_batch_size:
            return self.run(inputs)
        task = _Task(inputs, n)
        with self.cond:
            if self.stopped:
                task = None
            else:
                if self.queued_rows + n > self.cfg.max_enqueued_batches * self.cfg.max_batch_size:
                    raise ServingError("RESOURCE_EXHAUSTED",
                                       "batching queue is full; retry later")
                self.queue.append(task)
                self.queued_rows += n
                self.cond.notify()
        if task is None:
            return self.run(inputs)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def stop(self):
        """Stop taking requests; queued ones still run, later ones run directly."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def _take_batch(self) -> list[_Task]:
        with self.cond:
            while not self.queue:
                if self.stopped:
                    return []
                self.cond.wait()
            deadline = self.queue[0].t0 + self.cfg.batch_timeout_micros / 1e6
            while self.queued_rows < self.cfg.max_batch_size and not self.stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.queue:
                    break
                self.cond.wait(remaining)
            batch, rows = [], 0
            while self.queue and rows + self.queue[0].n <= self.cfg.max_batch_size:
                t = self.queue.popleft()
                rows += t.n
                batch.append(t)
            self.queued_rows -= rows
            if self.queue:
                self.cond.notify()  # let another batch thread start on the rest
            return batch

    def _loop(self):
        while True:
            batch = self._take_batch()
            if not batch:
                if self.stopped:
                    return
                continue
            self._run_batch(batch)

    def _pad_to(self, n: int) -> int:
        """The smallest allowed batch size holding ``n`` rows (``n`` itself if none)."""
        for size in self.cfg.allowed_batch_sizes:
            if size >= n:
                return size
        return n

    def _run_batch(self, batch: list[_Task]):
        """Run ``batch`` and hand each task its result or error; always wakes every waiter."""
        try:
            if len(batch) == 1 and not self.cfg.allowed_batch_sizes:
                batch[0].result = self.run(batch[0].inputs)
            else:
                self._run_merged(batch)
        except ServingError as e:
            if len(batch) > 1 and e.code == "INVALID_ARGUMENT":
                self._run_one_by_one(batch)  # isolate the faulty request
            else:
                for t in batch:
                    t.error = e
        except Exception as e:  # noqa: BLE001 - never leave a waiter hanging
            for t in batch:
                t.error = ServingError("INTERNAL", f"{type(e).__name__}: {e}")
        finally:
            for t in batch:
                t.done.set()

    def _run_merged(self, batch: list[_Task]):
        """Concatenate the tasks' inputs (padded to an allowed size), run once, split the outputs."""
        rows = sum(t.n for t in batch)
        padded = self._pad_to(rows)
        merged = {}
        for k in batch[0].inputs:
            parts = [t.inputs[k] for t in batch]
            if padded > rows:  # repeat the last example to an allowed size
                parts.append(np.repeat(parts[-1][-1:], padded - rows, axis=0))
            merged[k] = np.concatenate(parts, axis=0)
        out = self.run(merged)
        self.batches_run += 1
        self.max_batch_seen = max(self.max_batch_seen, rows)
        start = 0
        for t in batch:
            t.result = {k: v[start:start + t.n] for k, v in out.items()}
            start += t.n

    def _run_one_by_one(self, batch: list[_Task]):
        for t in batch:
            try:
                t.result = self.run(t.inputs)
            except Exception as e:  # noqa: BLE001 - each error goes to its own request
                t.error = e if isinstance(e, ServingError) else ServingError("INTERNAL", str(e))
