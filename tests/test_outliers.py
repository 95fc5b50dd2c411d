"""Outlier exposure: generated non-digits, and a model trained to find them no digit in particular."""

import dataclasses

import torch

from mnist_core.data import outliers
from mnist_core.evaluate import features_and_logits
from mnist_core.train import PRESETS, train


def test_outliers_are_seeded_normalized_images_unlike_the_digits_they_came_from(mnist):
    digits = mnist.train_images[:30]
    made = outliers(digits, torch.Generator().manual_seed(0))
    again = outliers(digits, torch.Generator().manual_seed(0))
    assert made.shape == digits.shape and torch.equal(made, again)
    assert made.min() >= -1 and made.max() <= 1
    assert ((made > 0).flatten(1).sum(1) >= 10).all()  # every one has ink
    assert not any(torch.equal(m, d) for m in made for d in digits)


def test_outlier_exposure_makes_the_model_unsure_on_non_digits_it_never_saw(mnist):
    model_config, quick = PRESETS["quick"]
    settings = dataclasses.replace(quick, train_size=3000, val_size=500)
    unseen = outliers(mnist.test_images[:300], torch.Generator().manual_seed(1))

    def top_probability(weight: float) -> float:
        model = train(model_config, dataclasses.replace(settings, outlier_exposure=weight), mnist).model
        return features_and_logits(model, unseen)[1].softmax(1).max(1).values.mean().item()

    assert top_probability(1.0) < 0.75 * top_probability(0.0)  # measured 0.21 against 0.40
