import hashlib
import json
import os
import shutil
import zipfile

import pytest
import torch

from mnist_core.checkpoints import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint, scan_checkpoints
from mnist_core.model import CNN, ModelConfig
from mnist_core.train import TrainConfig

CONFIG = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16)


def saved(tmp_path, name="a", **kwargs):
    model = CNN(CONFIG)
    path = save_checkpoint(
        tmp_path / f"{name}.pt",
        model,
        TrainConfig(epochs=2),
        {"test_accuracy": 0.5},
        [{"epoch": 1, "val_accuracy": 0.4}],
        "abc123",
        **kwargs,
    )
    return path, model


def test_round_trip_keeps_weights_configs_and_metadata(tmp_path):
    path, model = saved(tmp_path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_config == CONFIG and checkpoint.train_config == TrainConfig(epochs=2)
    assert checkpoint.metrics == {"test_accuracy": 0.5} and checkpoint.history[0]["val_accuracy"] == 0.4
    assert checkpoint.dataset_sha256 == "abc123" and checkpoint.name == "a"
    assert checkpoint.created and checkpoint.versions["torch"] == str(torch.__version__)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(checkpoint.model(x), model.eval()(x))
    torch.load(path, weights_only=True)  # plain data, loadable anywhere without this package


def test_a_copy_is_the_same_model_and_a_retrained_file_another(tmp_path):
    """The dashboard's caches are keyed by sha256: a copy is measured once, a retrained file again."""
    path, _ = saved(tmp_path)
    copy = tmp_path / "copy.pt"
    shutil.copy(path, copy)
    original = load_checkpoint(path)
    assert original.sha256 == load_checkpoint(copy).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    saved(tmp_path, overwrite=True)  # new weights under the same name
    assert load_checkpoint(path).sha256 != original.sha256


def test_saving_never_overwrites_unless_asked_and_leaves_no_temporary_files(tmp_path):
    path, _ = saved(tmp_path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="already exists"):
        saved(tmp_path)
    assert path.read_bytes() == before
    saved(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_list_is_newest_first_and_skips_broken_files(tmp_path):
    for name, created in [("old", "2026-01-01T00:00:00+00:00"), ("new", "2026-06-01T00:00:00+00:00")]:
        path, _ = saved(tmp_path, name)
        payload = torch.load(path, weights_only=True)
        payload["created"] = created
        torch.save(payload, path)
    (tmp_path / "junk.pt").write_bytes(b"hello")
    assert [c.name for c in list_checkpoints(tmp_path)] == ["new", "old"]
    good, bad = scan_checkpoints(tmp_path)
    assert [c.name for c in good] == ["new", "old"] and list(bad) == ["junk.pt"] and "junk.pt" in bad["junk.pt"]


def test_missing_empty_truncated_and_foreign_files_raise_clear_errors(tmp_path):
    path, _ = saved(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or another format"):
        load_checkpoint(tmp_path / "cut.pt")
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as z:
        z.writestr("hello.txt", "not torch")
    with pytest.raises(CheckpointError, match="truncated or another format"):
        load_checkpoint(tmp_path / "zip.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an mnist_core checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_other_architecture_is_refused(tmp_path):
    path, _ = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["classifier.5.weight"] = torch.zeros(12, 16)  # 12 classes, not 10
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit this architecture"):
        load_checkpoint(path)
    payload["model_config"]["attention_heads"] = 4
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit this architecture"):
        load_checkpoint(path)


class RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path, _ = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["metrics"] = RunsCode(marker)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # proof that the payload is live: a plain load runs it
    assert marker.exists()


@pytest.mark.slow
def test_a_recorded_accuracy_is_measured_not_trusted(tmp_path, mnist, default_evaluation, capsys):
    from mnist_core.cli import main
    from mnist_core.evaluate import evaluate

    torch.manual_seed(0)  # finite random weights: loads fine, scores about one in ten
    liar = save_checkpoint(tmp_path / "liar.pt", CNN(CONFIG), TrainConfig(), {"test_accuracy": 0.9952}, [], "")
    images, labels = mnist.test_images[:2000], mnist.test_labels[:2000]
    measured = evaluate(load_checkpoint(liar).model, images, labels)
    assert measured.wrong_record(load_checkpoint(liar).metrics) == 0.9952 and measured.accuracy < 0.5
    honest = load_checkpoint()  # the committed default model's record is what it scores
    assert default_evaluation.wrong_record(honest.metrics) is None

    main(["evaluate", str(liar), "--json"])  # the CLI measures, and says so when the record disagrees
    captured = capsys.readouterr()
    assert "liar.pt: its file records 99.52% test accuracy" in captured.err
    assert json.loads(captured.out)["accuracy"] < 0.5
