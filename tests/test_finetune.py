"""Fine-tuning on a user's samples: a writer the default model misreads is learnt, and MNIST is not forgotten."""

from __future__ import annotations

import functools
import json
import shutil
import time

import pytest
import torch
from test_cli import run
from test_jobs import held
from writer import model_inputs, writer_digits

from mnist_core.checkpoints import load_checkpoint, save_checkpoint, store_digit_score
from mnist_core.data import to_pixels
from mnist_core.evaluate import evaluate
from mnist_core.finetune import finetune, folds
from mnist_core.jobs import TrainingQueue
from mnist_core.model import ModelConfig
from mnist_core.ood import fit_digit_score
from mnist_core.places import shipped_model
from mnist_core.preprocess import preprocess
from mnist_core.samples import save_sample
from mnist_core.train import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, mnist):
    """A model of a few thousand weights trained in a second: what the command and the queue fine-tune here,
    so that their tests time the plumbing, not a big model (the targets test uses the default model)."""
    config = TrainConfig(epochs=1, batch_size=64, val_size=1000, train_size=3000)
    trained = train(ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16), config, mnist)
    path = tmp_path_factory.mktemp("tiny") / "base.pt"
    return load_checkpoint(save_checkpoint(path, trained.model, config, {}, trained.history, mnist.sha256))


def test_folds_cover_every_sample_once_and_spread_each_digit():
    labels = torch.tensor([d for d in range(10) for _ in range(5)])
    parts = folds(labels, 3, seed=0)
    assert sorted(torch.cat(parts).tolist()) == list(range(50))
    for part in parts:
        assert all(1 <= n <= 2 for n in torch.bincount(labels[part], minlength=10).tolist())


def test_finetune_refuses_an_empty_set_and_a_missing_folder(capsys, tmp_path, mnist):
    model = load_checkpoint(shipped_model()).model
    with pytest.raises(ValueError, match="no samples"):
        finetune(model, torch.empty(0, 1, 28, 28), torch.empty(0, dtype=torch.int64), mnist, torch.arange(10))
    code, _, err = run(capsys, "finetune", "--samples", str(tmp_path / "none"), "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "not a folder of samples" in err
    (tmp_path / "empty" / "7").mkdir(parents=True)
    (tmp_path / "empty" / "7" / "junk.png").write_bytes(b"junk")
    code, _, err = run(capsys, "finetune", "--samples", str(tmp_path / "empty"), "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "skipped 7/junk.png: the file is not an image" in err and "no samples to learn from" in err
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.slow
def test_five_samples_per_digit_halve_a_writers_errors_and_keep_mnist(mnist, default_evaluation):
    """The targets, on seeds not used while choosing the fine-tune's settings (those were 1, 2 and 100)."""
    base = load_checkpoint(shipped_model())
    pictures, labels = writer_digits(5, seed=11)
    others, other_labels = writer_digits(15, seed=12)
    test_x, test_y = model_inputs(others), torch.tensor(other_labels)
    before = 1 - evaluate(base.model, test_x, test_y).accuracy
    assert before >= 0.1  # the default model misreads this hand often
    rows = mnist.validation_indices(base.train_config.val_size, base.train_config.seed)[0]
    tuned, history = finetune(
        base.model, model_inputs(pictures), torch.tensor(labels), mnist, rows, seed=11, label_smoothing=0.1
    )
    after = 1 - evaluate(tuned, test_x, test_y).accuracy
    assert after <= before / 2, (before, after)
    mnist_after = evaluate(tuned, mnist.test_images, mnist.test_labels).accuracy
    assert mnist_after >= default_evaluation.accuracy - 0.001, (default_evaluation.accuracy, mnist_after)
    assert len(history) == 3 and history[-1]["kind"] == "epoch"


@pytest.mark.slow
def test_the_command_fine_tunes_a_folder_and_reports_json(capsys, tmp_path, tiny_base, mnist):
    """The base carries a "not a digit" score: only the classifier learns, so the conv maps the score reads, and
    the score itself, are the base's (fitting it again on the new model gives the same)."""
    base = tmp_path / "base.pt"
    store_digit_score(shutil.copy(tiny_base.path, base), fit_digit_score(tiny_base.model, mnist, 1000, 0).to_dict())
    pictures, labels = writer_digits(3, seed=21)
    for picture, label in zip(pictures, labels):
        if label in (0, 1):
            digit = preprocess(picture).digits[0]
            save_sample(tmp_path / "hand", label, digit.steps["28x28"], digit.steps["cropped"])
    out = tmp_path / "tuned.pt"
    code, stdout, err = run(
        capsys,
        "finetune",
        str(base),
        "--samples",
        str(tmp_path / "hand"),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--json",
    )
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert set(result) == {"checkpoint", "samples", "seconds", "mnist_accuracy", "samples_accuracy"}
    assert result["checkpoint"] == str(out) and result["samples"] == 6
    assert result["samples_accuracy"]["method"] == "k-fold"
    assert all(0 <= result[k][w] <= 1 for k in ("mnist_accuracy", "samples_accuracy") for w in ("before", "after"))
    assert "100%" in err  # the progress bar, on stderr
    tuned = load_checkpoint(out)
    assert tuned.tags == {"finetuned_from": "base", "samples_set": "hand", "samples": 6}
    assert len(tuned.history) == len(tiny_base.history) + 1 and tuned.history[-1]["epoch"] == 2
    assert tuned.history[-1]["finetune"] == {"set": "hand", "samples": 6}
    assert tuned.metrics["test_accuracy"] == result["mnist_accuracy"]["after"]
    assert result["mnist_accuracy"] == {
        "before": evaluate(tiny_base.model, mnist.test_images, mnist.test_labels).accuracy,
        "after": evaluate(tuned.model, mnist.test_images, mnist.test_labels).accuracy,
    }
    assert result["mnist_accuracy"]["before"] != result["mnist_accuracy"]["after"]  # the classifier did learn
    refitted = fit_digit_score(tuned.model, mnist, 1000, 0).to_dict()
    assert all(torch.equal(torch.as_tensor(tuned.digit_score[k]), torch.as_tensor(v)) for k, v in refitted.items())
    code, _, err = run(capsys, "finetune", "--samples", str(tmp_path / "hand"), "--out", str(out))
    assert code == 2 and "already taken" in err


@pytest.mark.slow
def test_the_training_queue_teaches_a_set_and_a_cancelled_one_gives_its_name_back(tmp_path, tiny_base, mnist):
    for index in (3, 2, 5):  # a 0 and two 1s of the test set
        save_sample(
            tmp_path / "samples" / "mine",
            int(mnist.test_labels[index]),
            to_pixels(mnist.test_images[index : index + 1])[0],
        )
    hold = tmp_path / "go"
    queue = TrainingQueue(tmp_path / "runs", data=functools.partial(held, hold, mnist))
    job = queue.submit_finetune(tiny_base, tmp_path / "samples" / "mine")
    waiting = queue.submit_finetune(tiny_base, tmp_path / "samples" / "mine")
    assert job.name.startswith("taught-") and waiting.name != job.name and waiting.remaining_seconds() > 0
    waiting.cancel()
    assert waiting.status == "cancelled" and not list((tmp_path / "runs").glob(f".{waiting.path.name}.reserved"))
    hold.touch()
    deadline = time.monotonic() + 120
    while not job.done:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.status == "finished", job.error
    assert job.checkpoint is not None and job.checkpoint.path == job.path and job.fraction == 1.0
    assert job.checkpoint.tags == {"finetuned_from": "base", "samples_set": "mine", "samples": 3}
    assert job.epochs()[-1].epoch == job.epochs()[-1].epochs == 4 * 3  # 3 folds and the fine-tune on them all
    assert job.checkpoint.digit_score is not None  # the base had none: fitted for the new model
    assert not list((tmp_path / "runs").glob(".*.reserved"))
