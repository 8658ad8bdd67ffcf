"""The micro-batcher: answers in order, groups concurrent requests, isolates failures."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.batching import MicroBatcher


def tagged(tag: float) -> np.ndarray:
    """An input whose every pixel is ``tag``, so its answer can be traced back."""
    return np.full((28, 28, 1), tag, dtype=np.float32)


class Recorder:
    """A stand-in network: answers each input with ten copies of its first pixel
    and records the size of every batch it was given."""

    def __init__(self, fail_when=lambda batch: False):
        self.sizes: list[int] = []
        self.fail_when = fail_when

    def __call__(self, items: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(items)
        self.sizes.append(len(batch))
        if self.fail_when(batch):
            raise RuntimeError("the network failed")
        return np.repeat(batch[:, 0, 0, :], 10, axis=1)


def run_with(batcher: MicroBatcher, scenario):
    """Run ``scenario()`` on a fresh event loop with the batcher started."""

    async def main():
        await batcher.start()
        try:
            return await scenario()
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_each_request_gets_its_own_answer_in_order() -> None:
    network = Recorder()
    batcher = MicroBatcher(network, max_size=8)
    tags = [i / 100 for i in range(50)]

    answers = run_with(batcher, lambda: asyncio.gather(*(batcher.predict(tagged(t)) for t in tags)))

    for tag, answer in zip(tags, answers, strict=True):
        np.testing.assert_array_equal(answer, np.full(10, tag, dtype=np.float32))
    assert sum(network.sizes) == len(tags)


def test_concurrent_requests_share_batches_up_to_max_size() -> None:
    network = Recorder()
    batcher = MicroBatcher(network, max_size=8)

    run_with(batcher, lambda: asyncio.gather(*(batcher.predict(tagged(0.5)) for _ in range(40))))

    assert max(network.sizes) == 8
    assert len(network.sizes) == 5  # all 40 were queued before the first batch ran


def test_a_lone_request_never_waits_with_max_wait_zero() -> None:
    network = Recorder()
    batcher = MicroBatcher(network, max_size=32, max_wait=0.0)

    async def one_at_a_time():
        for i in range(3):
            await batcher.predict(tagged(i / 10))

    run_with(batcher, one_at_a_time)
    assert network.sizes == [1, 1, 1]


def test_max_wait_gathers_requests_that_arrive_a_little_later() -> None:
    network = Recorder()
    batcher = MicroBatcher(network, max_size=32, max_wait=0.2)

    async def staggered():
        async def later(i):
            await asyncio.sleep(0.01 * i)
            return await batcher.predict(tagged(i / 10))

        return await asyncio.gather(*(later(i) for i in range(4)))

    answers = run_with(batcher, staggered)
    assert network.sizes == [4]
    assert [float(a[0]) for a in answers] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_failing_batch_fails_only_its_own_requests() -> None:
    network = Recorder(fail_when=lambda batch: bool((batch == 0.9).any()))
    batcher = MicroBatcher(network, max_size=2)

    async def scenario():
        # Batches of two: (0.1, 0.9) fails, (0.2, 0.3) is read.
        outcomes = await asyncio.gather(
            *(batcher.predict(tagged(t)) for t in (0.1, 0.9, 0.2, 0.3)),
            return_exceptions=True,
        )
        after = await batcher.predict(tagged(0.4))  # the batcher itself lives on
        return outcomes, after

    outcomes, after = run_with(batcher, scenario)
    assert [type(o) for o in outcomes[:2]] == [RuntimeError, RuntimeError]
    assert float(outcomes[2][0]) == pytest.approx(0.2)
    assert float(outcomes[3][0]) == pytest.approx(0.3)
    assert float(after[0]) == pytest.approx(0.4)


def test_a_cancelled_request_is_skipped_and_the_others_answered() -> None:
    network = Recorder()
    batcher = MicroBatcher(network, max_size=8)

    async def scenario():
        gone = asyncio.create_task(batcher.predict(tagged(0.7)))
        kept = asyncio.create_task(batcher.predict(tagged(0.3)))
        await asyncio.sleep(0)  # both queued
        gone.cancel()
        return await kept

    kept = run_with(batcher, scenario)
    assert float(kept[0]) == pytest.approx(0.3)
    assert network.sizes == [1]


def test_predict_before_start_is_an_error() -> None:
    batcher = MicroBatcher(Recorder())
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(batcher.predict(tagged(0.1)))
