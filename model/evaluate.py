"""Evaluate a saved model on the MNIST test set and print the model card's numbers.

    python -m model.evaluate --model model/artifacts/digitnet.keras [--data DIR]

The test set is for this final report only; model selection uses the validation
split carved out of the training set (see ``model.train``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from app import calibration
from model import data


def as_network_input(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) MNIST images -> the float32 (n, 28, 28, 1) batch the network takes."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, log loss, per-class accuracy and the confusion matrix (rows = true digit)."""
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    counts = confusion.sum(axis=1)
    # A digit with no examples has no accuracy: null in the card, not a 0/0 warning.
    per_class = [
        round(float(right / count), 6) if count else None
        for right, count in zip(confusion.diagonal(), counts, strict=True)
    ]
    return {
        "accuracy": float((predicted == labels).mean()),
        "loss": round(loss, 6),
        "errors": int((predicted != labels).sum()),
        "count": len(labels),
        "per_class_accuracy": {str(digit): a for digit, a in enumerate(per_class)},
        "confusion_matrix": confusion.tolist(),
    }


def evaluate(model, split: data.Split, temperature: float = 1.0, batch_size: int = 1000) -> dict:
    """The card's test figures: the digits' calibrated softmax, as the service answers."""
    outputs = model.predict(as_network_input(split.images), batch_size=batch_size, verbose=0)
    probabilities = calibration.digit_probabilities(np.asarray(outputs), temperature)
    return metrics(probabilities, split.labels.astype(np.int64))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model/artifacts/digitnet.keras"))
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    args = parser.parse_args(argv)
    try:
        mnist = data.load(args.data)
    except data.MnistDataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import keras

    model = keras.saving.load_model(args.model, compile=False)
    card_path = args.model.parent / "model_card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    result = evaluate(model, mnist.test, card.get("calibration", {}).get("temperature", 1.0))
    print(json.dumps({"model": str(args.model), "test": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
