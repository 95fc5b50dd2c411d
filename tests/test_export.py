"""Exported models give the checkpoint's own probabilities under their own runtimes, for any batch size."""

import shutil
import subprocess
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch

from mnist_core.checkpoints import load_checkpoint
from mnist_core.cli import main, run
from mnist_core.export import export_model, run_exported
from mnist_core.inference import predict_probabilities
from mnist_core.model import CNN, ModelConfig
from mnist_core.places import default_checkpoint


@pytest.fixture(scope="module")
def small_model() -> CNN:
    torch.manual_seed(0)
    return CNN(ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16, dropout=0.0)).eval()


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_an_export_takes_any_batch_size_and_matches_the_model(small_model, tmp_path, format):
    path = export_model(small_model, tmp_path / f"model.{format}", format)
    for n in (1, 3, 50):
        images = random_images(n, seed=n)
        with torch.inference_mode():
            expected = small_model(images).softmax(dim=1).numpy()
        got = run_exported(path, images, format)
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)


def test_exporting_leaves_the_callers_model_untouched(small_model, tmp_path):
    before = {k: v.clone() for k, v in small_model.state_dict().items()}
    export_model(small_model, tmp_path / "model.onnx")
    assert not small_model.training
    assert small_model.features[0][0].weight.is_contiguous()
    for name, tensor in small_model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_an_unknown_format_is_refused(small_model, tmp_path):
    with pytest.raises(ValueError, match="onnx, torchscript"):
        export_model(small_model, tmp_path / "model.x", "tflite")  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_onnx_default_model_agrees_with_the_checkpoint_on_every_test_image(tmp_path, mnist):
    model = load_checkpoint(default_checkpoint()).model
    path = export_model(model, tmp_path / "default.onnx")
    expected = predict_probabilities(model, mnist.test_images).numpy()
    got = run_exported(path, mnist.test_images)
    assert np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_the_export_command_writes_a_checked_file(tmp_path, capsys):
    out = tmp_path / "sub" / "default.onnx"
    assert main(["export", str(default_checkpoint()), "--out", str(out)]) == 0
    assert out.stat().st_size > 100_000
    assert "largest difference from the checkpoint" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    assert main(["export", str(default_checkpoint()), "--out", str(tmp_path)]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_the_mnist_lab_console_script_runs_the_cli():
    [script] = entry_points(group="console_scripts", name="mnist-lab")
    assert script.load() is run  # what `python -m mnist_core` runs
    executable = shutil.which("mnist-lab") or pytest.skip("the package is not installed with its scripts")
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("fetch", "train", "evaluate", "predict", "export"):
        assert command in result.stdout
