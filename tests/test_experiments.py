"""Class experiments: each one's settings, what a run's numbers say it showed, and shuffled labels in training."""

import math

import pytest
import torch

from mnist_core.data import MNIST
from mnist_core.experiments import EXPERIMENTS, matching, outcome
from mnist_core.train import PRESETS, TrainConfig, _training_data


def epoch(loss: float, accuracy: float, val_accuracy: float | None) -> dict:
    return {"loss": loss, "accuracy": accuracy, "val_accuracy": val_accuracy}


def test_five_experiments_each_a_valid_change_of_a_preset_that_is_recognised():
    assert len(EXPERIMENTS) >= 5
    assert {"tiny-data", "lr-too-high", "no-augmentation", "two-filters", "shuffled-labels"} <= set(EXPERIMENTS)
    for experiment in EXPERIMENTS.values():
        model, train = experiment.configs()  # the configs' own checks pass
        assert matching(model, train) is experiment
        assert experiment.values()["device"] == "auto"
    tiny_model, tiny_train = EXPERIMENTS["tiny-data"].configs()
    assert tiny_train.train_size == 1000 and tiny_model == PRESETS["quick"][0]
    assert EXPERIMENTS["two-filters"].configs()[0].conv1_channels == 2
    assert EXPERIMENTS["shuffled-labels"].configs()[1].shuffle_labels
    assert matching(*PRESETS["quick"]) is None


def test_the_outcome_reads_memorising_and_divergence_from_the_history():
    memorised = outcome([epoch(2.3, 0.1, 0.1), epoch(0.05, 0.99, 0.11)])
    assert memorised is not None and memorised.memorised and not memorised.diverged
    assert memorised.gap == pytest.approx(0.88) and memorised.first_loss == 2.3 and memorised.epochs == 2
    diverged = outcome([epoch(563.0, 0.09, 0.10)])
    assert diverged is not None and diverged.diverged and not diverged.memorised
    assert outcome([epoch(math.nan, 0.1, None)]).diverged  # type: ignore[union-attr]
    fine = outcome([epoch(0.3, 0.95, 0.97)])
    assert fine is not None and not fine.diverged and not fine.memorised and fine.best_val_accuracy == 0.97
    assert outcome([]) is None


def test_shuffled_labels_give_training_images_each_others_labels_and_leave_validation_and_the_data_alone():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (600,), generator=generator)
    data = MNIST(torch.zeros(600, 1, 28, 28), labels.clone(), torch.zeros(10, 1, 28, 28), torch.zeros(10).long(), "x")
    plain = _training_data(data, TrainConfig(val_size=100, train_size=300), torch.device("cpu"))
    shuffled = _training_data(data, TrainConfig(val_size=100, train_size=300, shuffle_labels=True), torch.device("cpu"))
    rows = shuffled.rows
    assert torch.equal(plain.rows, rows)
    assert (shuffled.labels[rows] != labels[rows]).float().mean() > 0.7  # most training images: another's label
    assert torch.equal(shuffled.labels[rows].sort().values, labels[rows].sort().values)  # the same labels, moved
    assert torch.equal(shuffled.val_labels, plain.val_labels)
    assert torch.equal(data.train_labels, labels)  # the shared dataset is untouched


@pytest.mark.slow  # a page under AppTest: seconds
def test_the_train_page_sets_an_experiment_by_click_or_by_link_and_says_what_a_run_showed(folder):
    import sys
    from pathlib import Path

    from dashboard_helpers import HOME, button
    from streamlit.testing.v1 import AppTest

    sys.path.insert(0, str(Path(HOME).parent))
    from experiments_view import happened

    at = AppTest.from_file(HOME, default_timeout=120).run()
    at.query_params["experiment"] = "tiny-data"
    at.switch_page("pages/1_Train.py").run()
    assert not at.exception, at.exception
    assert (at.session_state["train_size"], at.session_state["epochs"], at.session_state["preset"]) == (
        1000,
        10,
        "quick",
    )
    button(at, "Shuffled labels").click().run()
    assert at.session_state["shuffle_labels"] and at.query_params["experiment"] in (
        "shuffled-labels",
        ["shuffled-labels"],
    )
    assert any("?experiment=shuffled-labels" in c.value for c in at.code)

    said = happened("shuffled-labels", outcome([epoch(2.3, 0.1, 0.1), epoch(0.03, 1.0, 0.116)]))  # type: ignore[arg-type]
    assert said.startswith("It memorised") and "training accuracy 100.0%, validation 11.6%" in said
    assert "a gap of 88.4 points" in said
    said = happened("lr-too-high", outcome([epoch(563.14, 0.094, 0.103)]))  # type: ignore[arg-type]
    assert said.startswith("It diverged: the training loss ended at 563, where guessing scores 2.30")
    assert "training accuracy 9.4%, validation 10.3%: no better than guessing" in said
