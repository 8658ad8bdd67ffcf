"""Rendered extras saved to a file, to render them once and train elsewhere (on a
machine without the fonts, an accelerator, say): ``model.train --extras FILE``. The
file names the recipe it was rendered for; another recipe is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.augment import NEGATIVES_PER_DIGIT, REAL_VARIANTS, WORLD_VARIANTS, Extras


class ExtrasMismatchError(RuntimeError):
    """A saved set of extras was rendered for another recipe."""


def recipe(
    seed: int,
    validation_size: int,
    limit: int | None,
    mnist: dict,
    split_seed: int | None = None,
    habits: dict | None = None,
) -> dict:
    """What a saved set of extras must match to stand in for rendering them again
    (``split_seed``: the validation split's, when not ``seed``; ``habits``, as
    ``augment.training_extras`` takes them, each named only where set, so that sets
    saved before it was added still match)."""
    return {
        **{name: value for name, value in (habits or {}).items() if value},
        "seed": seed,
        "split_seed": seed if split_seed is None else split_seed,
        "validation_size": validation_size,
        "limit": limit or 0,
        "mnist_sha256": mnist,
        "world_variants": WORLD_VARIANTS,
        "real_variants": REAL_VARIANTS,
        "negatives_per_digit": NEGATIVES_PER_DIGIT,
    }


def save(path: Path, extras: Extras, held: Extras, wanted: dict, seconds: float) -> None:
    """Write the training and validation extras (8-bit, compressed) to render them once
    and train elsewhere, on a machine without the fonts, say."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        np.savez_compressed(
            file,
            train=np.round(extras.inputs * 255).astype(np.uint8),
            train_labels=extras.labels,
            held=np.round(held.inputs * 255).astype(np.uint8),
            held_labels=held.labels,
            meta=json.dumps({"recipe": wanted, "seconds": seconds,
                             "counts": extras.counts, "held_counts": held.counts}),
        )  # fmt: skip


def load(path: Path, wanted: dict) -> tuple[Extras, Extras, float]:
    """The extras ``save`` wrote, and the seconds their rendering took."""
    with np.load(path) as saved:
        meta = json.loads(str(saved["meta"]))
        differ = sorted(k for k in wanted if meta["recipe"].get(k) != wanted[k])
        if differ:
            raise ExtrasMismatchError(
                f"{path} was rendered for another recipe ({', '.join(differ)} differ): "
                "delete it to render the extras again"
            )
        return (
            Extras(saved["train"] / np.float32(255), saved["train_labels"], meta["counts"]),
            Extras(saved["held"] / np.float32(255), saved["held_labels"], meta["held_counts"]),
            meta["seconds"],
        )
