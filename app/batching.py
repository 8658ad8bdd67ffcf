"""Micro-batching: run concurrent single-image requests through the network together.

As TF Serving, Triton and BentoML do: requests queue up; one consumer takes
what is queued (up to ``max_size``, waiting at most ``max_wait`` for more) and
runs it as one batch. With ``max_wait`` 0 nothing ever waits: a lone request
runs at once, and batches form from the requests whose preprocessing finished
while the consumer was not scheduled, which under load is most of them.

The batch runs on the event loop itself, not in a thread: a batch of 32 takes
about a millisecond, and the hop to a thread and back (and the GIL handoffs it
causes) cost more than a batch of one, on a worker that has one core to itself.
Results come back in order; a failing batch fails only its own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


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
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.cancel()

    async def predict(self, image: np.ndarray) -> np.ndarray:
        """One (28, 28, 1) input -> its (10,) probabilities."""
        if self._task is None:
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((image, future))
        return await future

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            live = [(image, future) for image, future in batch if not future.cancelled()]
            if not live:
                continue
            inputs = np.stack([image for image, _ in live])
            try:
                outputs = self._predict(inputs)
            except Exception as error:
                for _, future in live:
                    if not future.done():
                        future.set_exception(error)
                continue
            if self._on_batch is not None:
                self._on_batch(len(live))
            for (_, future), output in zip(live, outputs, strict=True):
                if not future.done():
                    future.set_result(output)
