"""A second look at the inputs the network is unsure of (test-time augmentation).

When the network's calibrated top probability for an input is under UNSURE_BELOW,
it also reads the input slightly turned (±8°), scaled (0.85 and 1.15 about the
centre) and moved a pixel (VARIANTS), as a person would look again from another
angle. The answer combines the six readings:

- the digit probabilities are the geometric mean of the six readings', squared
  (SHARPEN) and renormalised, so a digit that only one view of a hard input
  favours loses to one most views agree on;
- the digit score is the least of the six: a letter or a scribble that looks like
  a digit from one view rarely does from every view.

Few digits are unsure (0.8 % of MNIST's test digits, 2.6 % of ``model.world``'s),
so the five extra readings, one network call, cost little on average; most
non-digits are. Measured with ``model.world`` (docs/model.md#a-second-look). No web
framework in here: ``model.world`` reads with it too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from app import calibration
from app.preprocessing import INPUT_SIZE

UNSURE_BELOW = 0.8  # calibrated top probabilities under this get a second look
# The six readings agree more than independent ones would: their geometric mean alone
# was under-confident (unsure digits answered at 0.65 on average, 0.84 right); squared,
# 0.82 (fitted on model.world's samples of one seed, held on another and float32).
SHARPEN = 2.0
# (degrees turned anticlockwise, scale, rows moved down, columns moved right)
VARIANTS = (
    (8.0, 1.0, 0, 0),
    (-8.0, 1.0, 0, 0),
    (0.0, 0.85, 0, 0),
    (0.0, 1.15, 0, 0),
    (0.0, 1.0, 1, 1),
)
MIDDLE = (INPUT_SIZE - 1) / 2.0  # the turns and scales are about the middle pixel

Run = Callable[[np.ndarray], np.ndarray]  # (n, 28, 28, 1) inputs -> (n, 11 or 12) outputs


def view(image: np.ndarray, degrees: float, scale: float, down: int, right: int) -> np.ndarray:
    """A (28, 28) input turned ``degrees`` anticlockwise and scaled by ``scale`` about
    its middle, then moved ``down`` rows and ``right`` columns (bilinear, black
    beyond the edge); float32 in [0, 1]."""
    turn = np.deg2rad(degrees)
    centre = np.array([MIDDLE, MIDDLE])
    # Output pixel p shows input pixel matrix @ p + offset (ndimage's convention);
    # in (row, column) coordinates, rows growing downwards.
    matrix = np.array([[np.cos(turn), np.sin(turn)], [-np.sin(turn), np.cos(turn)]]) / scale
    offset = centre - matrix @ (centre + np.array([down, right]))
    shown = ndimage.affine_transform(
        image.astype(np.float32, copy=False), matrix, offset, order=1, cval=0.0
    )
    return np.clip(shown, 0.0, 1.0, out=shown)


def _views(image: np.ndarray) -> np.ndarray:
    """One (28, 28) input -> its VARIANTS, (len(VARIANTS), 28, 28)."""
    return np.stack([view(image, *variant) for variant in VARIANTS])


def unsure(outputs: np.ndarray, temperature: float) -> np.ndarray:
    """The indices of the outputs whose calibrated top probability is under UNSURE_BELOW.

    That probability is ``1 / Σ (p / p_top) ** (1 / temperature)`` over the ten digits
    (``calibration.digit_probabilities``' largest), reckoned so for a fraction of the
    cost: the check runs on every answer."""
    digits = np.maximum(outputs[:, : calibration.NUM_DIGITS], calibration.TINY)
    ratios = digits / digits.max(axis=1, keepdims=True)
    return np.flatnonzero(np.power(ratios, 1.0 / temperature).sum(axis=1) > 1.0 / UNSURE_BELOW)


def combined(outputs: np.ndarray) -> np.ndarray:
    """Several readings' (k, 11) network outputs -> one (11,) output: the digits'
    share the geometric mean of theirs to the power SHARPEN, the "not a digit" share
    that of the least digit score (a twelfth output, "whole", their mean).
    ``calibration`` then reads from it SHARPEN times the mean of the readings' log
    probabilities (their calibrated probabilities' geometric mean to that power,
    renormalised) and the least score."""
    logits = calibration.digit_logits(outputs).mean(axis=0)
    digits = np.exp(SHARPEN * (logits - logits.max()))
    score = float(calibration.digit_score(outputs).min())
    one = np.empty(outputs.shape[1], dtype=np.float32)
    one[: calibration.NUM_DIGITS] = digits * (score / float(digits.sum()))
    one[calibration.NUM_DIGITS] = 1.0 - score
    one[calibration.WHOLE :] = outputs[:, calibration.WHOLE :].mean(axis=0)  # if any
    return one


def outputs(
    inputs: np.ndarray,
    first: np.ndarray,
    run: Run,
    temperature: float,
    on_looked: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The network's outputs ``first`` for ``inputs`` (n, 28, 28, 1), each unsure one
    replaced by its readings combined; the variants of all go through ``run`` at once.
    ``on_looked(count)`` hears how many were looked at again, when any were."""
    if first.shape[1] <= calibration.NUM_DIGITS:  # no digit score to combine: as it is
        return first
    looked = unsure(first, temperature)
    if looked.size == 0:
        return first
    if on_looked is not None:
        on_looked(int(looked.size))
    views = np.concatenate([_views(inputs[i].reshape(INPUT_SIZE, INPUT_SIZE)) for i in looked])
    more = run(views[..., np.newaxis]).reshape(looked.size, len(VARIANTS), -1)
    result = first.copy()
    for index, others in zip(looked, more, strict=True):
        result[index] = combined(np.concatenate([first[index : index + 1], others]))
    return result


def read(classifier, inputs: np.ndarray) -> np.ndarray:
    """``classifier``'s (an ``app.inference.DigitClassifier``) outputs for single-digit
    ``inputs``, as the service answers them: with the second look."""
    first = classifier.outputs(inputs)
    return outputs(inputs, first, classifier.outputs, classifier.temperature)
