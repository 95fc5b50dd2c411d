"""Outlier exposure: generated non-digits, and a model trained to find them no digit in particular."""

import dataclasses
from dataclasses import replace

import pytest
import torch

from mnist_core.checkpoints import load_checkpoint, store_digit_score
from mnist_core.data import outliers
from mnist_core.inference import features_and_logits
from mnist_core.model import CNN
from mnist_core.ood import DigitScore, fit_digit_score
from mnist_core.train import PRESETS, train


def test_outliers_are_seeded_normalized_images_unlike_the_digits_they_came_from(mnist):
    digits = mnist.train_images[:30]
    made = outliers(digits, torch.Generator().manual_seed(0))
    again = outliers(digits, torch.Generator().manual_seed(0))
    assert made.shape == digits.shape and torch.equal(made, again)
    assert made.min() >= -1 and made.max() <= 1
    assert ((made > 0).flatten(1).sum(1) >= 10).all()  # every one has ink
    assert not any(torch.equal(m, d) for m in made for d in digits)


@pytest.mark.slow
def test_outlier_exposure_makes_the_model_unsure_on_non_digits_it_never_saw(mnist):
    model_config, quick = PRESETS["quick"]
    settings = dataclasses.replace(quick, train_size=3000, val_size=500)
    unseen = outliers(mnist.test_images[:300], torch.Generator().manual_seed(1))

    def top_probability(weight: float) -> float:
        model = train(model_config, dataclasses.replace(settings, outlier_exposure=weight), mnist).model
        return features_and_logits(model, unseen)[1].softmax(1).max(1).values.mean().item()

    assert top_probability(1.0) < 0.75 * top_probability(0.0)  # measured 0.21 against 0.40


def test_a_stored_digit_score_replaces_only_that_field_and_one_of_the_old_kind_is_dropped(folder):
    path = folder / "default.pt"
    before = load_checkpoint(path)
    score = DigitScore.from_dict(before.digit_score)
    moved = replace(score, threshold=score.threshold + 1)
    store_digit_score(path, moved.to_dict())
    after = load_checkpoint(path)
    assert after.digit_score["threshold"] == score.threshold + 1
    assert (after.metrics, after.history, after.created, after.versions) == (
        before.metrics,
        before.history,
        before.created,
        before.versions,
    )
    assert all(torch.equal(a, b) for a, b in zip(after.model.state_dict().values(), before.model.state_dict().values()))

    old_kind = {"means": score.means, "precision": score.precision, "threshold": 150.0}  # channel means only
    store_digit_score(path, old_kind)
    assert load_checkpoint(path).digit_score is None  # so predict fits the current score on demand


def test_fitting_the_digit_score_is_repeatable_and_leaves_the_callers_random_state_alone(mnist):
    torch.manual_seed(0)
    model = CNN(
        PRESETS["quick"][0]
    ).eval()  # the fit's randomness (its principal axes) is what is tested, not the model
    state = torch.random.get_rng_state()
    first = fit_digit_score(model, mnist, 1000, 0).to_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    second = fit_digit_score(model, mnist, 1000, 0).to_dict()
    assert first.keys() == second.keys()
    assert all(
        torch.equal(first[k], second[k]) if isinstance(first[k], torch.Tensor) else first[k] == second[k] for k in first
    )
