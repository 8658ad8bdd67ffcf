"""Upload bytes in, prediction out: preprocessing and inference scheduled well.

Small images (the common case: canvas drawings, MNIST-sized PNGs) cost tens of
microseconds to normalise, less than a hop to a thread, so they are done on the
event loop. Larger ones go to a thread pool so a 12 MP photo never stalls other
requests, at most LARGE_IMAGE_CONCURRENCY at a time so a flood of them cannot
exhaust memory. HEIC and AVIF images always take that path, whatever their size:
their video decoders cost milliseconds even for a small picture, and size their
frame from the codec stream, which can be larger than the container declares (up
to MAX_PIXELS: ``app.heif`` and libheif refuse larger frames). Small clean PNGs
(most of them) take ``app.fast_path``, with the same answer, read in the
micro-batch itself, together: under load the batch holds ~20 of them, and each
step's calls for all of them in a row cost less than each upload's in its own
request's turn (docs/performance.md). Single images reach the network through the
micro-batcher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image
from starlette.concurrency import run_in_threadpool

from app import (
    candidates,
    fast_path,
    heif,
    orientation,
    pairs,
    preprocessing,
    rejection,
    second_look,
    segmentation,
)
from app.batching import MicroBatcher
from app.config import Settings
from app.inference import DigitClassifier

T = TypeVar("T")
DigitReading = tuple[np.ndarray, float]  # (10,) calibrated probabilities, the digit score
# An upload read the other way round (``Normalized.other``) is answered so only when the
# network is this sure that way shows a digit, and surer than the first way: of 1,000
# binarised 16×16 digits 14 read more like one the other way round, 9 of them at 0.95 or
# more; of 6,000 letters, scribbles and textures (``model.world``, seeds 0 and 1) 36 did,
# none over 0.941 (docs/preprocessing.md).
OTHER_SIDE_SCORE = 0.95


@dataclass(frozen=True)
class Result:
    probabilities: np.ndarray  # (10,) float32, calibrated
    digit_score: float  # how much the image looks like one digit, 0..1
    network_input: np.ndarray  # (28, 28, 1) float32
    preprocess_seconds: float

    @property
    def digit(self) -> int:
        return int(np.argmax(self.probabilities))


@dataclass(frozen=True)
class Normalized:
    """One upload read as far as the network's input, and what a refusal looks at."""

    network_input: np.ndarray  # (28, 28, 1) float32
    marks: np.ndarray  # bool: the marks of the ink it was cut from (``rejection.marks_of``)
    decoded: Image.Image | None  # a HEIC's or AVIF's decoded image, else None
    seconds: float  # a wait for a large-image slot included
    # The upload read the other way round, where it leaves the paper's side in doubt
    # (``preprocessing.readings``): ``Predictor._read_normalized`` chooses between them.
    other: Normalized | None = None


@dataclass(frozen=True)
class Decoded:
    """An upload as ``preprocessing.decode`` made it (at most WORKING_SIZE)."""

    image: Image.Image
    photo: bool  # in a camera's format (``preprocessing.is_photo``)
    # The image again for a HEIC or AVIF, kept for the refusal path to look at rather
    # than run their decoders a second time (a second for a 12 MP HEIC); None for other
    # formats, opened again cheaply for their colours (a JPEG's at 1/8 scale).
    kept: Image.Image | None


@dataclass(frozen=True)
class Reading:
    digits: list[candidates.Digit]  # left to right
    marks: list[candidates.Mark]
    preprocess_seconds: float
    digit_score: float  # how much they look like handwritten digits (``looks_like_digits``)


def _normalized(read: tuple[np.ndarray, np.ndarray] | None, seconds: float) -> Normalized | None:
    """The fast path's reading of an upload (``fast_path.input_and_ink``) as a batch item."""
    if read is None:
        return None
    network_input, ink = read
    return Normalized(network_input, rejection.marks_of(ink), None, seconds)


class Predictor:
    def __init__(
        self,
        classifier: DigitClassifier,
        settings: Settings,
        on_batch: Callable[[int], None] | None = None,
        on_inference: Callable[[float], None] | None = None,
        on_second_look: Callable[[int], None] | None = None,
        pair_reader: pairs.PairReader | None = None,
    ):
        """``on_batch(size)`` after each micro-batch; ``on_inference(seconds)`` after
        each network call (micro-batches and /predict/batch calls), in its thread;
        ``on_second_look(count)`` when inputs the network is unsure of are read again.
        ``pair_reader`` reads /read's touching digits whole too (``app.pairs``)."""
        self.classifier = classifier
        self.pair_reader = pair_reader
        self.limits = preprocessing.Limits(max_pixels=settings.max_pixels)
        self.inline_max_pixels = settings.inline_max_pixels
        self.max_digits = settings.max_digits
        self._large_images = asyncio.Semaphore(settings.large_image_concurrency)
        self._on_inference = on_inference
        self._on_second_look = on_second_look
        self.batcher = MicroBatcher(
            self._read_batch,
            max_size=settings.batch_max_size,
            max_wait=settings.batch_max_wait_ms / 1000.0,
            on_batch=on_batch,
        )

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """The network's raw outputs for a batch, timed."""
        if self._on_inference is None:
            return self.classifier.outputs(batch)
        started = time.perf_counter()
        outputs = self.classifier.outputs(batch)
        self._on_inference(time.perf_counter() - started)
        return outputs

    def _looked(self, batch: np.ndarray) -> np.ndarray:
        """The outputs for a batch of single digits, a second look at those the network
        is unsure of included (``app.second_look``)."""
        first = self._infer(batch)
        temperature = self.classifier.temperature
        return second_look.outputs(batch, first, self._infer, temperature, self._on_second_look)

    def _fast(self, data: bytes) -> Normalized | None:
        """An upload read by the fast path; None where it needs the general path, or
        where the fast path failed: the general path then answers, errors included."""
        started = time.perf_counter()
        try:
            read = fast_path.input_and_ink(data, self.limits)
        except Exception:  # one upload's fault stays its own: the general path answers
            return None
        return _normalized(read, time.perf_counter() - started)

    def _fast_many(self, uploads: list[bytes]) -> list[Normalized | None]:
        """``_fast`` of each upload, read together (``fast_path.inputs_and_inks``),
        each taking an equal share of the time; read one by one when that fails, so
        that one upload's fault stays its own."""
        if not uploads:
            return []
        started = time.perf_counter()
        try:
            reads = fast_path.inputs_and_inks(uploads, self.limits)
        except Exception:  # one upload's fault: each alone, so that it stays its own
            return [self._fast(data) for data in uploads]
        share = (time.perf_counter() - started) / len(uploads)
        return [_normalized(read, share) for read in reads]

    def _read_batch(
        self, items: list[bytes | Normalized]
    ) -> list[tuple[Normalized, DigitReading] | None]:
        """The micro-batch's work: the small clean PNGs among ``items`` read by the fast
        path here, then every input through the network at once; None for an upload
        the fast path did not take."""
        uploads = [item for item in items if isinstance(item, bytes)]
        reads = iter(self._fast_many(uploads))
        normalized = [next(reads) if isinstance(item, bytes) else item for item in items]
        readings = iter(self._read_normalized([item for item in normalized if item is not None]))
        return [None if item is None else next(readings) for item in normalized]

    def _read_normalized(self, items: list[Normalized]) -> list[tuple[Normalized, DigitReading]]:
        """Each upload's reading (``_read_digits``: one network call for all of them)
        with the input it read: of an upload also read the other way round
        (``Normalized.other``), that reading where its digit score is OTHER_SIDE_SCORE
        or more and higher than the first's."""
        if not items:
            return []
        others = [item.other for item in items if item.other is not None]
        readings = self._read_digits(np.stack([item.network_input for item in items + others]))
        other_readings = iter(zip(others, readings[len(items) :], strict=True))
        chosen = []
        for item, reading in zip(items, readings[: len(items)], strict=True):
            if item.other is not None:
                other, other_reading = next(other_readings)
                if other_reading[1] >= max(OTHER_SIDE_SCORE, reading[1]):
                    item, reading = other, other_reading
            chosen.append((item, reading))
        return chosen

    def _read_digits(self, batch: np.ndarray) -> list[DigitReading]:
        """Single digits' inputs -> each one's calibrated probabilities and digit score
        (the second look included), interpreted for the whole batch at once."""
        probabilities, scores = self.classifier.interpret(self._looked(batch))
        return list(zip(probabilities, scores.tolist(), strict=True))

    def _score(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """/read's candidates' inputs -> calibrated digit probabilities and candidate
        scores (timed)."""
        return self.classifier.interpret(self._infer(batch), candidates=True)

    def _result(
        self, data: bytes, normalized: Normalized, reading: DigitReading, reject: bool
    ) -> Result:
        """One upload's reading (``_read_digits``); refuse it when it does not look like a digit."""
        probabilities, score = reading
        if reject:
            threshold = self.classifier.reject_below
            why = rejection.refusal(
                data, score, threshold, self.limits, normalized.decoded, normalized.marks
            )
            if why is not None:
                raise rejection.NotADigitError(why)
        return Result(probabilities, score, normalized.network_input, normalized.seconds)

    async def start(self) -> None:
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    async def _prepare(self, data: bytes, work: Callable[[Image.Image], T]) -> T:
        """Open the upload and run ``work`` on it: on the event loop for a small image,
        else (and for every HEIC and AVIF, which decode whole) in a thread, one of at
        most LARGE_IMAGE_CONCURRENCY at a time."""
        image = preprocessing.open_image(data, self.limits)
        width, height = image.size
        if width * height <= self.inline_max_pixels and image.format not in heif.FORMATS:
            return work(image)
        async with self._large_images:
            return await run_in_threadpool(work, image)

    @staticmethod
    def _decoded(image: Image.Image) -> Decoded:
        """The opened upload decoded (``Decoded``)."""
        decoded = preprocessing.decode(image)
        kept = decoded if image.format in heif.FORMATS else None
        return Decoded(decoded, preprocessing.is_photo(image), kept)

    def _read(
        self, image: Image.Image
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], Image.Image | None]:
        """The network inputs and their ink maps (``preprocessing.readings``), and the
        decoded image where the refusal path keeps it (``Decoded.kept``)."""
        decoded = self._decoded(image)
        return preprocessing.readings(decoded.image, decoded.photo), decoded.kept

    def _propose(self, image: Image.Image) -> tuple[segmentation.Proposal, Decoded]:
        """/read's candidates (``segmentation.propose``), and the upload decoded."""
        size = orientation.upright_size(image)  # before decoding, which may shrink it
        decoded = self._decoded(image)
        return segmentation.propose_decoded(decoded.image, size, self.max_digits), decoded

    async def _normalize(
        self, data: bytes, fast: bool = True, decoded: Decoded | None = None
    ) -> Normalized:
        """Bytes -> the network input and what a refusal looks at (by the fast path
        where it can, unless not ``fast``); raises preprocessing.PreprocessingError.
        ``decoded``: the upload decoded already (by /read), not decoded again."""
        read = self._fast(data) if fast else None
        if read is not None:
            return read
        started = time.perf_counter()
        if decoded is None:
            readings, kept = await self._prepare(data, self._read)
        else:  # in a thread where it is large, as _prepare reads it
            work = functools.partial(preprocessing.readings, decoded.image, decoded.photo)
            small = decoded.image.width * decoded.image.height <= self.inline_max_pixels
            readings = work() if small else await run_in_threadpool(work)
            kept = decoded.kept
        seconds = time.perf_counter() - started
        first, *other = [
            Normalized(network_input, rejection.marks_of(ink), kept, seconds)
            for network_input, ink in readings
        ]
        return dataclasses.replace(first, other=other[0]) if other else first

    async def predict(self, data: bytes, reject: bool = True) -> Result:
        """Raises preprocessing.PreprocessingError, or rejection.NotADigitError when
        ``reject`` and the image does not look like one digit."""
        read = await self.batcher.predict(data) if fast_path.may_take(data) else None
        if read is None:  # not a small clean PNG: read here, then the network
            read = await self.batcher.predict(await self._normalize(data, fast=False))
        normalized, reading = read
        return self._result(data, normalized, reading, reject)

    async def infer(self, batch: np.ndarray) -> np.ndarray:
        """Network inputs (n, 28, 28, 1) -> the (n, 10) calibrated digit probabilities
        ``/predict`` answers (the second look included), computed in a thread.
        Nothing is refused: the caller gets the probabilities of whatever it sent."""
        return self.classifier.interpret(await run_in_threadpool(self._looked, batch))[0]

    async def read(self, data: bytes, reject: bool = True) -> Reading:
        """Bytes of one line of digits -> its digits, left to right, and its other
        marks; the candidate digits through the network in one or two batches. Raises
        preprocessing.PreprocessingError (segmentation.TooManyDigitsError included; and,
        if ``reject``, rejection.NotADigitError for digits that do not look like digits:
        ``rejection.number_refused``)."""
        started = time.perf_counter()
        proposal, decoded = await self._prepare(data, self._propose)
        seconds = time.perf_counter() - started
        digits = await run_in_threadpool(proposal.read, self._score, self.pair_reader)
        if len(digits) > self.max_digits:
            raise segmentation.TooManyDigitsError(
                f"More than {self.max_digits} digits (MAX_DIGITS): {len(digits)} read."
            )
        alone = why = None
        if len(digits) == 1:
            digits, alone, why = await self._alone(data, digits[0], decoded)
        looks, refused = rejection.judged(digits, proposal.frame_cuts, proposal.marks, alone)
        if reject and refused:
            why = await run_in_threadpool(
                rejection.read_reason, data, self.limits, decoded.kept, why
            )
            raise rejection.NotADigitError(why)
        return Reading(digits, proposal.marks, seconds, looks)

    async def _alone(
        self, data: bytes, digit: candidates.Digit, decoded: Decoded
    ) -> tuple[list[candidates.Digit], bool | None, str | None]:
        """A line's one digit as ``/predict`` reads the whole image (its probabilities
        and input, the second look included), whether ``/predict`` refuses it, and why;
        as it was, None and None, where ``/predict`` cannot read the image.
        ``decoded``: the upload as /read decoded it, not decoded again."""
        try:
            normalized = await self._normalize(data, decoded=decoded)
        except preprocessing.PreprocessingError:
            return [digit], None, None
        [(normalized, reading)] = await run_in_threadpool(self._read_normalized, [normalized])
        probabilities, score = reading
        why = rejection.refusal(
            data,
            score,
            self.classifier.reject_below,
            self.limits,
            normalized.decoded,
            normalized.marks,
        )
        seen = dataclasses.replace(
            digit, probabilities=probabilities, network_input=normalized.network_input
        )
        return [seen], why is not None, why

    async def predict_many(
        self, uploads: list[bytes], reject: bool = True
    ) -> list[Result | preprocessing.PreprocessingError]:
        """Each upload's result or its own error, in order; one network call for all.
        The small clean PNGs are read together, as a micro-batch reads them."""
        outcomes: list[Normalized | preprocessing.PreprocessingError] = []
        for data, read in zip(uploads, self._fast_many(uploads), strict=True):
            try:
                if read is None:  # not a small clean PNG
                    read = await self._normalize(data, fast=False)
                outcomes.append(read)
            except preprocessing.PreprocessingError as error:
                outcomes.append(error)
        readable = [outcome for outcome in outcomes if isinstance(outcome, Normalized)]
        readings = iter(await run_in_threadpool(self._read_normalized, readable))
        results: list[Result | preprocessing.PreprocessingError] = []
        for data, outcome in zip(uploads, outcomes, strict=True):
            if isinstance(outcome, Normalized):
                try:
                    outcome = self._result(data, *next(readings), reject)
                except rejection.NotADigitError as error:
                    outcome = error
            results.append(outcome)
        return results
