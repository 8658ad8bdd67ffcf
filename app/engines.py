"""How the network is run: the LiteRT interpreter (what the service uses) or Keras.

An engine takes a (n, 28, 28, 1) float32 batch and returns the network's (n, 11)
outputs, or (n, 12) with its "whole" output (``model.wholes``). ``app.inference``
chooses, checks and loads one.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

INPUT_SHAPE = (28, 28, 1)


class Engine(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class LiteRTEngine:
    """The LiteRT interpreter, one per batch size in powers of two up to ``largest``
    (64 for the digit network; inputs of ``input_shape``: its, or the pair reader's,
    ``app.pairs``).

    A batch of 13 runs as 8 + 4 + 1: no padding computed, no tensor reallocated.
    """

    def __init__(
        self, flatbuffer: bytes, input_shape: tuple[int, ...] = INPUT_SHAPE, largest: int = 64
    ):
        from ai_edge_litert.interpreter import Interpreter

        self._runners = {}
        self.largest = largest
        size = 1
        while size <= largest:
            interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
            input_index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(input_index, [size, *input_shape])
            interpreter.allocate_tensors()
            # The eleven outputs first, then "whole" where the network has it (converted
            # apart: ``separated``).
            outputs = sorted(interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
            self._runners[size] = (interpreter, input_index, [d["index"] for d in outputs])
            size *= 2

    def _run(self, batch: np.ndarray) -> np.ndarray:
        interpreter, input_index, output_indices = self._runners[len(batch)]
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        if len(output_indices) == 1:
            return interpreter.get_tensor(output_indices[0]).copy()
        return np.concatenate([interpreter.get_tensor(i) for i in output_indices], axis=1)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        results, start = [], 0
        while start < len(batch):
            remaining = len(batch) - start
            size = min(self.largest, 1 << (remaining.bit_length() - 1))
            results.append(self._run(batch[start : start + size]))
            start += size
        if not results:
            interpreter, _, output_indices = self._runners[1]
            width = sum(interpreter.get_tensor(i).shape[-1] for i in output_indices)
            return np.zeros((0, width), dtype=np.float32)
        return results[0] if len(results) == 1 else np.concatenate(results)


def separated(model):
    """For the converter: a Keras model whose outputs end in one concatenation (the
    eleven and "whole", ``model.wholes``) with them as separate outputs, which
    ``LiteRTEngine`` joins again. Concatenated in int8, the softmax would be requantised
    to the joint scale (1/255 against its own 1/256): other digit probabilities."""
    last = model.layers[-1]
    if type(last).__name__ != "Concatenate":
        return model
    return type(model)(model.input, list(last.input), name=model.name)  # a keras.Model


class KerasEngine:
    """The Keras model itself, called as a compiled function (not ``predict``)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)
