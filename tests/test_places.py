"""Where the lab keeps data and runs, and which model it uses when none is named."""

import shutil

import platformdirs
import pytest

from mnist_core import places
from mnist_core.checkpoints import CheckpointError, load_checkpoint, scan_checkpoints
from mnist_core.places import checkpoint_path, release, reserve, reserve_new_run


def test_home_is_mnist_home_then_the_source_checkout_then_the_users_data_folder(tmp_path, monkeypatch):
    for name in ("MNIST_HOME", "MNIST_ROOT", "MNIST_CHECKPOINTS"):
        monkeypatch.delenv(name, raising=False)
    assert places.home() == places.SOURCE_ROOT  # this is a source checkout
    assert places.data_root() == places.SOURCE_ROOT / "data"
    assert places.checkpoint_dir() == places.SOURCE_ROOT / "checkpoints"

    monkeypatch.setattr(places, "SOURCE_ROOT", tmp_path / "site-packages")  # installed: no pyproject.toml beside
    assert places.home() == platformdirs.user_data_path("mnist-lab")

    monkeypatch.setenv("MNIST_HOME", str(tmp_path / "home"))
    assert places.data_root() == tmp_path / "home" / "data"
    assert places.checkpoint_dir() == tmp_path / "home" / "checkpoints"

    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "mnist"))
    monkeypatch.setenv("MNIST_CHECKPOINTS", str(tmp_path / "runs"))
    assert (places.data_root(), places.checkpoint_dir()) == (tmp_path / "mnist", tmp_path / "runs")


def test_the_default_model_ships_in_the_package_and_a_default_in_the_folder_replaces_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_CHECKPOINTS", str(tmp_path))
    shipped = places.shipped_model()
    assert shipped.parent == places.SOURCE_ROOT / "mnist_core"
    assert places.default_checkpoint() == shipped and load_checkpoint().path == shipped

    [listed], bad = scan_checkpoints(tmp_path, also=places.default_checkpoint())  # the dashboard's list
    assert listed.name == "default" and listed.path == shipped and not bad

    shutil.copy(shipped, tmp_path / "default.pt")
    assert places.default_checkpoint() == tmp_path / "default.pt"
    [listed], _ = scan_checkpoints(tmp_path, also=shipped)
    assert listed.path == tmp_path / "default.pt"  # listed once, the folder's own


@pytest.mark.parametrize("name", ["../evil", "a/b", "/abs", "", ".hidden", "x" * 65, "a..b", "ü"])
def test_run_names_cannot_escape_the_folder(tmp_path, name):
    with pytest.raises(CheckpointError, match="invalid run name"):
        checkpoint_path(name, tmp_path)


def test_good_run_names_and_fresh_reserved_names(tmp_path):
    assert checkpoint_path("my-run_1.2", tmp_path) == tmp_path / "my-run_1.2.pt"
    assert checkpoint_path("run.pt", tmp_path) == tmp_path / "run.pt"
    first = reserve_new_run(tmp_path)
    second = reserve_new_run(tmp_path)  # nothing saved yet, and very likely the same second
    first.touch()  # the run saved its checkpoint
    third = reserve_new_run(tmp_path)
    assert len({first, second, third}) == 3
    with pytest.raises(CheckpointError, match="already taken by a run in progress"):
        reserve(second)
    release(second)
    assert reserve(second) == second  # free again once released
