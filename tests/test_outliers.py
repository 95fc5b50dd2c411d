"""Non-digits: generated scribbles and letters, a model trained to find them no digit in particular, and the
"not a digit" score that flags letters shaped like digits."""

import dataclasses
from dataclasses import replace

import numpy as np
import pytest
import torch
from not_digits import letters as written_like_digits
from photo_digits import canvases

from mnist_core.checkpoints import load_checkpoint, store_digit_score
from mnist_core.data import outliers
from mnist_core.inference import features_and_logits
from mnist_core.letters import letters, written_letters
from mnist_core.model import CNN
from mnist_core.ood import DigitScore, fit_digit_score
from mnist_core.predict import NO_DIGIT, NOT_A_DIGIT, predict
from mnist_core.train import PRESETS, train


def test_outliers_are_seeded_normalized_images_unlike_the_digits_they_came_from(mnist):
    digits = mnist.train_images[:30]
    made = outliers(digits, torch.Generator().manual_seed(0))
    again = outliers(digits, torch.Generator().manual_seed(0))
    assert made.shape == digits.shape and torch.equal(made, again)
    assert made.min() >= -1 and made.max() <= 1
    assert ((made > 0).flatten(1).sum(1) >= 10).all()  # every one has ink
    assert not any(torch.equal(m, d) for m in made for d in digits)


def test_the_scores_letters_are_mnist_like_and_written_differently_each_time():
    bank = letters()
    assert bank.shape[1:] == (1, 28, 28) and len(bank) >= 3000 and torch.equal(bank, letters())
    assert bank.min() >= -1 and bank.max() <= 1 and ((bank > 0).flatten(1).sum(1) >= 10).all()
    ink = (bank + 1).clamp(min=0)[:, 0]
    rows = (ink.sum(2) * torch.arange(28)).sum(1) / ink.sum((1, 2))
    assert (rows - 13.5).abs().max() <= 1.5  # centred by mass, as MNIST's digits are
    cpu = torch.device("cpu")
    first = written_letters(40, torch.Generator().manual_seed(0), cpu)
    assert torch.equal(first, written_letters(40, torch.Generator().manual_seed(0), cpu))
    assert not torch.equal(first, written_letters(40, torch.Generator().manual_seed(1), cpu))


def _refused(prediction) -> bool:
    return prediction.error == NOT_A_DIGIT or "?" in (prediction.number or "")


@pytest.mark.slow
def test_letters_shaped_like_digits_are_flagged_and_drawn_digits_are_not_refused():
    """On seeds the score was not developed on (10 and 12 were): a third of the letters are B, R, S, Z, O, I, l,
    G, q, g or b. The committed model's score flagged 40% of this set before it had the line between digits and
    letters."""
    samples = written_like_digits(100, seed=20)
    flagged = [p.error == NO_DIGIT or _refused(p) for p in predict([s.image for s in samples])]
    assert np.mean(flagged) >= 0.55, [s.label for s, f in zip(samples, flagged) if not f]
    drawn = canvases(60, seed=1)
    assert np.mean([_refused(p) for p in predict([s.image for s in drawn])]) <= 0.01


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


@pytest.mark.slow  # two fits, each a forward pass over 17,000 images
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
