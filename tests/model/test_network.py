"""The architectures: input contract, output shape, softmax, augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from model import network


@pytest.mark.parametrize("architecture", sorted(network.ARCHITECTURES))
def test_shapes_and_softmax(architecture: str) -> None:
    model = network.build(architecture)
    assert tuple(model.input_shape) == (None, 28, 28, 1)
    batch = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    probabilities = np.asarray(model.predict_on_batch(batch))
    assert probabilities.shape == (4, network.NUM_CLASSES) == (4, 11)  # ten digits, not a digit
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_unknown_architecture_is_named() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        network.build("resnet9000")


def test_default_is_small_enough_to_serve() -> None:
    assert network.build().count_params() < 500_000


def test_augmentation_moves_pixels_only_in_training() -> None:
    images = np.zeros((8, 28, 28, 1), dtype=np.float32)
    images[:, 8:20, 12:16] = 1.0
    layer = network.RandomAffine(seed=3)
    assert np.array_equal(np.asarray(layer(images, training=False)), images)
    moved = np.asarray(layer(images, training=True))
    assert moved.shape == images.shape
    assert not np.allclose(moved, images)
    # Small transforms: the stroke's ink stays mostly in the frame, roughly the same amount.
    np.testing.assert_allclose(moved.sum(axis=(1, 2, 3)), images.sum(axis=(1, 2, 3)), rtol=0.35)
