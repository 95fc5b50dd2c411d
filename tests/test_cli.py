import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_core.checkpoints import load_checkpoint, save_checkpoint
from mnist_core.cli import COMMANDS, build_parser, main
from mnist_core.data import MNIST, to_pixels
from mnist_core.model import ModelConfig
from mnist_core.train import TrainConfig, train


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["fetch", "train", "evaluate", "predict", "explain", "embed"])
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: python -m mnist_core " + command in capsys.readouterr().out


def test_the_command_table_names_every_command_and_nothing_else():
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == set(COMMANDS)
    assert parser.parse_args(["fetch"]).run is COMMANDS["fetch"]


@pytest.mark.slow
def test_evaluate_json_on_the_committed_default_model(capsys, mnist):
    code, out, _ = run(capsys, "evaluate", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["accuracy"] >= 0.993
    assert np.array(result["confusion"]).shape == (10, 10) and np.array(result["confusion"]).sum() == 10000
    assert result["n_errors"] == 10000 - np.trace(result["confusion"])
    assert [row["digit"] for row in result["per_class"]] == list(range(10))
    assert 0 <= result["rejected"] <= 0.01  # test digits the "not a digit" score would refuse


@pytest.mark.slow
def test_evaluate_report(capsys, mnist):
    code, out, _ = run(capsys, "evaluate")
    assert code == 0 and "confusion matrix" in out and "precision" in out


@pytest.mark.slow
def test_refit_stores_a_digit_score_and_reports_what_evaluate_then_refuses(capsys, tmp_path, mnist):
    small = MNIST(mnist.train_images[:2000], mnist.train_labels[:2000], mnist.test_images, mnist.test_labels, "x")
    config = TrainConfig(epochs=1, batch_size=100, val_size=500)
    result = train(ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16), config, small)
    path = save_checkpoint(tmp_path / "tiny.pt", result.model, config, {}, result.history, mnist.sha256)
    assert load_checkpoint(path).digit_score is None  # as in a file from before the score existed

    code, out, _ = run(capsys, "refit", str(path))
    after = load_checkpoint(path)
    assert code == 0 and after.digit_score is not None
    assert all(torch.equal(a, b) for a, b in zip(after.model.state_dict().values(), result.model.state_dict().values()))
    _, evaluated, _ = run(capsys, "evaluate", "--json", str(path))  # the stored score, as predict uses it
    assert out.strip().endswith(f": {json.loads(evaluated)['rejected']:.2%} of the test digits would be refused")


@pytest.mark.slow
def test_train_writes_a_checkpoint_with_the_flags_applied(capsys, tmp_path, mnist):
    out_path = tmp_path / "cli.pt"
    code, out, _ = run(
        capsys,
        "train",
        "--epochs",
        "1",
        "--conv1-channels",
        "4",
        "--conv2-channels",
        "8",
        "--hidden-units",
        "16",
        "--batch-norm",
        "off",
        "--lr",
        "0.005",
        "--out",
        str(out_path),
    )
    assert code == 0 and "test accuracy" in out
    checkpoint = load_checkpoint(out_path)
    assert (checkpoint.model_config.conv1_channels, checkpoint.model_config.batch_norm) == (4, False)
    assert (checkpoint.train_config.epochs, checkpoint.train_config.lr) == (1, 0.005)
    assert checkpoint.metrics["test_accuracy"] > 0.9
    assert len(checkpoint.history[0]["watch"]) == len(checkpoint.watch["labels"]) == 20  # replayable in the dashboard

    code, _, err = run(capsys, "train", "--epochs", "1", "--out", str(out_path))
    assert code == 2 and "already exists" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "0"], "epochs must be"),
        (["train", "--dropout", "1.5"], "dropout must be"),
        (["evaluate", "missing.pt"], "no such checkpoint"),
    ],
)
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_broken_checkpoint_exits_2(capsys, tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x80\x04garbage")
    code, _, err = run(capsys, "evaluate", str(tmp_path / "bad.pt"), "--json")
    assert code == 2 and "bad.pt" in err


def test_predict_json_reads_digits_reports_bad_files_and_keeps_order(capsys, tmp_path, mnist):
    pixels = to_pixels(mnist.test_images[:3])
    paths = []
    for i, image in enumerate(pixels):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(255 - image).save(paths[-1])  # dark ink on white paper, as a scan would be
    (tmp_path / "blank.png").write_bytes(b"")
    Image.new("L", (280, 280), 0).save(tmp_path / "empty.png")
    (tmp_path / "notes.txt").write_text("not an image")
    argv = [
        "predict",
        "--json",
        str(paths[0]),
        str(tmp_path / "notes.txt"),
        str(paths[1]),
        str(tmp_path / "empty.png"),
        str(tmp_path / "missing.png"),
        str(paths[2]),
    ]
    code, out, _ = run(capsys, *argv)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 2
    assert [r["path"] for r in records] == argv[2:]
    assert [records[i]["digit"] for i in (0, 2, 5)] == mnist.test_labels[:3].tolist()
    assert all(len(records[i]["probabilities"]) == 10 for i in (0, 2, 5))
    assert records[1]["error"] and records[4]["error"] and records[1]["digit"] is None
    empty = {"path": argv[5], "digit": None, "number": None, "probabilities": None, "digits": [], "lines": []}
    empty["error"] = None
    assert records[3] == {**empty, "error": "no digit found"}

    code, out, _ = run(capsys, "predict", str(paths[0]))
    assert code == 0 and str(paths[0]) in out and f" {mnist.test_labels[0].item()} " in out
