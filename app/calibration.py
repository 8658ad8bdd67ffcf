"""From the network's outputs to what the service answers.

The network's softmax has eleven outputs: the ten digits, then "not a digit"
(trained by outlier exposure on letters, symbols, scribbles, textures, scenes and
numbers of several digits); a twelfth, "whole", says whether a candidate digit cut
by /read is one whole digit (``candidate_score``). The service answers

- ``probabilities``: the softmax over the ten digits alone, with temperature
  scaling fitted on the validation split so that a confidence of 0.9 is right
  about 90 % of the time (``fit_temperature``);
- ``digit_score``: the network's probability that the image is one digit at all,
  1 − p(not a digit). Below the threshold fitted on validation data the upload is
  refused as not a digit.

Both come from one network call. No TensorFlow here: training imports this too.
"""

from __future__ import annotations

import numpy as np

NUM_DIGITS = 10
TINY = 1e-30  # float32 softmax outputs can underflow to 0; their log stays finite
WHOLE = NUM_DIGITS + 1  # the "whole" output's index, in a network that has it
# How much "whole" weighs in a candidate's score (candidate_score). /read's numbers
# (model.numbers --count 600, MNIST seed 7, pendigits and box16 seed 3) read as many at
# 0.25, 0.35 and 0.5, fewer at 1; over 0.35 a whole digit of an odd shape (whole ~0.3)
# is no longer sure (splits), and its group is cut into every candidate: 2.7 times the
# candidates for the 20 numbers of model.numbers --speed at 0.5, 1.1 times at 0.35.
WHOLE_WEIGHT = 0.35


def digit_logits(outputs: np.ndarray) -> np.ndarray:
    """Log-probabilities of the ten digits, up to a constant per row: the ratios of
    the eleven-way softmax are those of the digits' own logits."""
    return np.log(np.maximum(outputs[:, :NUM_DIGITS].astype(np.float64), TINY))


def digit_probabilities(outputs: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(n, 10 or 11) network outputs -> (n, 10) float32 softmax over the digits at
    ``temperature``.

    The softmax of log(p) / T is p ** (1 / T), normalised: the same float32 values as
    through the logarithm (none different in 100,000 random rows at the shipped
    temperature), in half the time of a single digit's six array operations. The
    powers neither overflow nor underflow: p is in [TINY, 1] and 1 / T in [1/8, 8].
    """
    digits = np.maximum(outputs[:, :NUM_DIGITS].astype(np.float64), TINY)
    powered = digits ** (1.0 / temperature)
    return (powered / powered.sum(axis=1, keepdims=True)).astype(np.float32)


def digit_score(outputs: np.ndarray) -> np.ndarray:
    """(n,) how much each input looks like one digit: 1 − p(not a digit); 1 for a
    network without the eleventh output."""
    if outputs.shape[1] <= NUM_DIGITS:
        return np.ones(outputs.shape[0], dtype=np.float32)
    return (1.0 - outputs[:, NUM_DIGITS]).astype(np.float32)


def candidate_score(outputs: np.ndarray) -> np.ndarray:
    """(n,) how much each of /read's candidate digits looks like one whole digit: the
    digit score times the network's "whole" output (the twelfth: one whole digit as
    /read cuts them, no piece of one nor parts of two; ``model.wholes``) to the power
    WHOLE_WEIGHT; the digit score alone for a network without that output."""
    score = digit_score(outputs)
    if outputs.shape[1] <= WHOLE:
        return score
    whole = np.maximum(outputs[:, WHOLE].astype(np.float32), np.float32(TINY))
    return score * whole**WHOLE_WEIGHT


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    return float(-np.mean(np.log(np.maximum(picked, TINY))))


def fit_temperature(outputs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the validation digits' log loss (golden
    section search over log T in [1/8, 8])."""
    low, high = np.log(1 / 8), np.log(8.0)
    ratio = (np.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return negative_log_likelihood(digit_probabilities(outputs, np.exp(log_t)), labels)

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(40):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return float(np.exp((low + high) / 2))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 10
) -> float:
    """ECE over ``bins`` equal-width confidence bins: the mean |accuracy − confidence|,
    each bin weighted by its share of the inputs."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            gap = abs(float(correct[members].mean()) - float(confidence[members].mean()))
            error += gap * members.mean()
    return float(error)
