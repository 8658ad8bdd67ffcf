"""The CNNs the service can load, and the augmentation used to train them.

Input contract, shared with ``app.preprocessing``: a batch of 28×28×1 float32
images in [0, 1], white ink on black, digit scaled to fit 20×20 and centred by
its centre of mass (exactly how MNIST was made). Output: 11 softmax
probabilities, index = digit, and index 10 = "not a digit" (``app.calibration``
turns them into what the service answers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import layers, ops

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 11  # the ten digits, then "not a digit"


def baseline() -> keras.Model:
    """The classic Keras convnet (Conv 32-64-64 + max-pooling + Dense 64), about 99.2 %."""
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="baseline")


def _conv_bn_relu(x, filters: int):
    # No bias: batch norm's beta does that job, and the converter folds BN into the conv.
    x = layers.Conv2D(filters, 3, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def digitnet() -> keras.Model:
    """The default: the baseline's size class (~5 M multiply-adds), batch norm and dropout.

    Sized for serving: about 150 µs per image on one core of the development machine
    with LiteRT, where a VGG-style net of the same accuracy costs 4× as much.
    """
    return _digitnet((32, 64, 64, 128), "digitnet")


def digitnet_small() -> keras.Model:
    """digitnet with half its filters (~1.5 M multiply-adds): the student distilled from
    it (``model.train --arch digitnet_small --teacher PATH``)."""
    return _digitnet((16, 32, 32, 64), "digitnet_small")


def _digitnet(filters: tuple[int, int, int, int], name: str) -> keras.Model:
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = _conv_bn_relu(inputs, filters[0])  # 26×26
    x = layers.MaxPooling2D()(x)  # 13×13
    x = _conv_bn_relu(x, filters[1])  # 11×11
    x = _conv_bn_relu(x, filters[2])  # 9×9
    x = layers.MaxPooling2D()(x)  # 4×4
    x = _conv_bn_relu(x, filters[3])  # 2×2
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "digitnet": digitnet,
    "digitnet_small": digitnet_small,
    "baseline": baseline,
}
DEFAULT_ARCHITECTURE = "digitnet"


def build(architecture: str = DEFAULT_ARCHITECTURE) -> keras.Model:
    try:
        return ARCHITECTURES[architecture]()
    except KeyError:
        known = ", ".join(ARCHITECTURES)
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {known}") from None


class RandomAffine(layers.Layer):
    """Per-image random rotation, zoom and shift, on any Keras backend.

    One batched ``ops.image.affine_transform`` call: jit-friendly on JAX and cheap
    on the TensorFlow CPU kernel, unlike chaining RandomRotation/RandomZoom/
    RandomTranslation. Identity outside training. Used only in the training graph;
    the saved model does not contain it.
    """

    def __init__(
        self,
        max_degrees: float = 10.0,
        max_zoom: float = 0.1,
        max_shift: float = 2.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_radians = math.radians(max_degrees)
        self.max_zoom = max_zoom
        self.max_shift = max_shift
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, batch, limit):
        return keras.random.uniform((batch,), -limit, limit, seed=self.seed_generator)

    def call(self, images, training=None):
        if not training:
            return images
        batch = ops.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        angle = self._uniform(batch, self.max_radians)
        zoom_x = 1.0 + self._uniform(batch, self.max_zoom)
        zoom_y = 1.0 + self._uniform(batch, self.max_zoom)
        shift_x = self._uniform(batch, self.max_shift)
        shift_y = self._uniform(batch, self.max_shift)
        centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
        cos, sin = ops.cos(angle), ops.sin(angle)
        # The transform maps each output pixel back to where it is read in the input:
        # the inverse of "zoom, rotate about the centre, then shift".
        a0, a1 = cos / zoom_x, sin / zoom_x
        b0, b1 = -sin / zoom_y, cos / zoom_y
        source_x, source_y = centre_x + shift_x, centre_y + shift_y
        a2 = centre_x - a0 * source_x - a1 * source_y
        b2 = centre_y - b0 * source_x - b1 * source_y
        zeros = ops.zeros_like(angle)
        transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        return ops.image.affine_transform(
            images, transform, interpolation="bilinear", fill_mode="constant"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            max_degrees=math.degrees(self.max_radians),
            max_zoom=self.max_zoom,
            max_shift=self.max_shift,
        )
        return config
