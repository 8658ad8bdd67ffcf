"""Micro-batching: run concurrent single-image requests' work together.

As TF Serving, Triton and BentoML do: requests queue up; when the network is free
what is queued (up to ``max_size`` at a time) runs as one batch, after at most
``max_wait`` for more. With ``max_wait`` 0 nothing ever waits: a lone request
runs at the event loop's next turn, and batches form from the requests that
queued in the same turn, which under load is most of them. What a request queues
and what the batch does with it are the caller's (``app.predictor``: a network
input, or a small PNG's bytes that the batch reads itself).

The batch runs on the event loop itself, not in a thread: a batch of 32 takes
about a millisecond, and the hop to a thread and back (and the GIL handoffs it
causes) cost more than a batch of one, on a worker that has one core to itself.
It runs as a plain callback (``loop.call_soon``, or ``call_later`` with a wait),
not as a task reading a queue: the same turns of the loop for a fraction of the
bookkeeping (docs/performance.md). Results come back in order; a failing batch
fails only its own requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

Predict = Callable[[list[Any]], Sequence[Any]]  # the items -> one answer each, in order
Waiting = list[tuple[Any, "asyncio.Future[Any]"]]


class MicroBatcher:
    def __init__(
        self,
        predict: Predict,
        max_size: int = 32,
        max_wait: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
    ):
        self._predict = predict
        self.max_size = max_size
        self.max_wait = max_wait
        self._on_batch = on_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: Waiting = []
        self._due: asyncio.Handle | None = None  # the batch's run, once scheduled

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._loop = None
        if self._due is not None:
            self._due.cancel()
            self._due = None
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:
            future.cancel()

    async def predict(self, item: Any) -> Any:
        """One request's item (a network input, an upload) -> its answer: what
        ``predict`` gives for it among the batch's."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the batcher is not running")
        future = loop.create_future()
        waiting = self._waiting
        waiting.append((item, future))
        if self._due is None:
            self._due = (
                loop.call_soon(self._run)
                if self.max_wait <= 0
                else loop.call_later(self.max_wait, self._run)
            )
        elif len(waiting) == self.max_size and self.max_wait > 0:
            self._due.cancel()  # a full batch waits no longer
            self._due = loop.call_soon(self._run)
        return await future

    def _run(self) -> None:
        """Run what is waiting, ``max_size`` at a time."""
        self._due = None
        waiting, self._waiting = self._waiting, []
        live = [(item, future) for item, future in waiting if not future.done()]
        for start in range(0, len(live), self.max_size):
            self._run_batch(live[start : start + self.max_size])

    def _run_batch(self, batch: Waiting) -> None:
        try:
            outputs = self._predict([item for item, _ in batch])
        except Exception as error:
            for _, future in batch:
                future.set_exception(error)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch))
        for (_, future), output in zip(batch, outputs, strict=True):
            future.set_result(output)
