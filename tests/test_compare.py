"""compare: fixed and broken are exactly the difference of the two models' own errors, on any pair of runs."""

import json

import pytest
import torch

from mnist_core.checkpoints import Checkpoint
from mnist_core.cli import main
from mnist_core.compare import Comparison, compare, settings_diff
from mnist_core.evaluate import Evaluation, evaluate
from mnist_core.model import ModelConfig
from mnist_core.runs import run_training
from mnist_core.train import TrainConfig


@pytest.fixture(scope="module")
def two_runs(mnist, tmp_path_factory) -> tuple[Checkpoint, Checkpoint]:
    """Two tiny models, trained on 2,000 images each with different settings, so each makes its own errors."""
    folder = tmp_path_factory.mktemp("compare")
    settings = TrainConfig(epochs=1, batch_size=64, val_size=500, train_size=2000)
    a = run_training(ModelConfig(4, 8, hidden_units=16), settings, mnist, folder / "a.pt")
    b = run_training(
        ModelConfig(4, 8, hidden_units=32), TrainConfig(**{**settings.to_dict(), "lr": 1e-2}), mnist, folder / "b.pt"
    )
    return a, b


@pytest.mark.slow
def test_fixed_and_broken_are_the_difference_of_each_models_own_errors(two_runs, mnist):
    a, b = two_runs
    images, labels = mnist.test_images[:2000], mnist.test_labels[:2000]
    errors_a = set(evaluate(a.model, images, labels).error_indices.tolist())
    errors_b = set(evaluate(b.model, images, labels).error_indices.tolist())
    comparison = compare(a, b, images, labels)
    assert comparison.fixed.tolist() == sorted(errors_a - errors_b)
    assert comparison.broken.tolist() == sorted(errors_b - errors_a)
    assert errors_a - errors_b and errors_b - errors_a  # two different models: both sets non-empty here
    summary = comparison.summary()
    n = len(labels)
    assert summary["accuracy"]["b"] - summary["accuracy"]["a"] == pytest.approx(
        (len(summary["fixed"]) - len(summary["broken"])) / n, abs=1e-6
    )
    # Agreeing means the same digit: all images both get right, and none where exactly one is right.
    both_right = n - len(errors_a | errors_b)
    assert both_right / n <= summary["agreement"] <= 1 - len(errors_a ^ errors_b) / n


@pytest.mark.slow
def test_a_model_compared_with_itself_fixes_and_breaks_nothing(two_runs, mnist):
    a, _ = two_runs
    comparison = compare(a, a, mnist.test_images[:500], mnist.test_labels[:500])
    assert (comparison.agreement, len(comparison.fixed), len(comparison.broken)) == (1.0, 0, 0)


def test_evaluations_of_different_images_are_refused():
    probabilities = torch.full((3, 10), 0.1)
    with pytest.raises(ValueError, match="same images"):
        Comparison(
            Evaluation(torch.tensor([1, 2, 3]), probabilities), Evaluation(torch.tensor([1, 2, 4]), probabilities)
        )


@pytest.mark.slow
def test_settings_diff_lists_only_what_differs_in_run_order(two_runs):
    a, b = two_runs
    assert settings_diff([a, b]) == {"hidden_units": [16, 32], "lr": [3e-3, 1e-2]}
    assert settings_diff([a, a]) == {}


@pytest.mark.slow
def test_compare_command_prints_one_json_object(two_runs, mnist, capsys):
    a, b = two_runs
    assert main(["compare", str(a.path), str(b.path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"a", "b", "accuracy", "agreement", "fixed", "broken", "settings_diff"}
    errors_a = set(evaluate(a.model, mnist.test_images, mnist.test_labels).error_indices.tolist())
    errors_b = set(evaluate(b.model, mnist.test_images, mnist.test_labels).error_indices.tolist())
    assert (result["fixed"], result["broken"]) == (sorted(errors_a - errors_b), sorted(errors_b - errors_a))
    assert result["accuracy"]["a"] == pytest.approx(1 - len(errors_a) / 10000)
    assert result["settings_diff"] == {"hidden_units": [16, 32], "lr": [3e-3, 1e-2]}

    assert main(["compare", str(a.path), str(b.path)]) == 0
    report = capsys.readouterr().out
    assert f"fixed (A wrong, B right): {len(errors_a - errors_b)}" in report and "lr: 0.003 -> 0.01" in report
