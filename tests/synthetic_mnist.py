"""A small MNIST-shaped data set made on the spot, for tests of the training machinery, not of accuracy.

Each class is a fixed random figure of three pen strokes; its images are that figure
shifted by a few pixels, with varied ink strength and a little noise. A small CNN
learns it in one epoch, so loops, logs, queues and checkpoints can be tested in
seconds without the real MNIST files.
"""

import numpy as np
import torch
from PIL import Image, ImageDraw

from mnist_core.data import MNIST, normalize


def _templates(rng: np.random.Generator) -> list[np.ndarray]:
    figures = []
    for _ in range(10):
        image = Image.new("L", (28, 28))
        points = [tuple(p) for p in rng.uniform(6, 22, (4, 2))]
        ImageDraw.Draw(image).line(points, fill=255, width=3)
        figures.append(np.asarray(image, dtype=np.float32))
    return figures


def _images(templates: list[np.ndarray], labels: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    shifts = rng.integers(-3, 4, (len(labels), 2))
    strength = rng.uniform(0.6, 1.0, len(labels))
    images = np.stack(
        [np.roll(templates[label], tuple(shift), axis=(0, 1)) * s for label, shift, s in zip(labels, shifts, strength)]
    )
    images += rng.normal(0, 12, images.shape)
    return normalize(torch.from_numpy(np.clip(images, 0, 255).astype(np.uint8)))


def synthetic_mnist(n_train: int, n_test: int, seed: int = 0) -> MNIST:
    rng = np.random.default_rng(seed)
    templates = _templates(rng)
    train_labels, test_labels = rng.integers(0, 10, n_train), rng.integers(0, 10, n_test)
    return MNIST(
        _images(templates, train_labels, rng),
        torch.from_numpy(train_labels),
        _images(templates, test_labels, rng),
        torch.from_numpy(test_labels),
        f"synthetic-{seed}",
    )
