"""Settings declared once: flags, checks, sweeps, the history and the Train page all follow the declarations."""

import dataclasses
from pathlib import Path

import optuna
import pytest
import torch
from dashboard_helpers import open_page

from mnist_core import settings
from mnist_core.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from mnist_core.cli import build_parser, main
from mnist_core.model import CNN, ModelConfig
from mnist_core.runs import history_rows
from mnist_core.settings import Interval, setting
from mnist_core.sweep import SweepError, check_fixed, search_space, suggest
from mnist_core.train import PRESETS, TrainConfig, run_settings

EVERY = run_settings()


def exit_code(argv: list[str]) -> int:
    """``main``'s exit status, also where argparse exits by itself."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def outside(s: settings.Setting):
    """A value just outside the setting's range or choices, or None where every value of its type will do."""
    if s.choices:
        return "nope" if s.base is str else 4
    for end, step in ((s.low, -1), (s.above, 0), (s.high, 1), (s.below, 0)):
        if end is not None:
            return s.base(end + step)
    return None


def test_presets_keep_their_values():
    written_out = {
        "quick": (
            ModelConfig(conv1_channels=16, conv2_channels=32, hidden_units=128, dropout=0.0),
            TrainConfig(epochs=1, batch_size=128, lr=1e-2, label_smoothing=0.1),
        ),
        "default": (
            ModelConfig(conv1_channels=32, conv2_channels=64, hidden_units=128, dropout=0.25),
            TrainConfig(epochs=8, batch_size=128, lr=3e-3, augment=True, label_smoothing=0.1),
        ),
        "best": (
            ModelConfig(conv1_channels=64, conv2_channels=128, hidden_units=256, dropout=0.3),
            TrainConfig(
                epochs=15,
                batch_size=128,
                lr=3e-3,
                augment=True,
                clean_epochs=2,
                label_smoothing=0.1,
                weight_decay=1e-5,
                val_size=1000,
            ),
        ),
    }
    assert written_out == PRESETS


@pytest.mark.parametrize("s", EVERY, ids=lambda s: s.name)
def test_every_setting_has_label_and_help_and_searches_and_offers_only_what_it_allows(s):
    assert s.label and s.help and s.label[0].isupper()
    assert s.problem(s.default) is None
    assert set(s.presets) <= set(PRESETS) and set(s.search) <= set(PRESETS)
    offered = [*s.stops, *(v for space in s.search.values() for v in space)]
    assert all(s.problem(s.base(v)) is None for v in offered), offered


def test_every_field_must_be_declared():
    Plain = dataclasses.make_dataclass("Plain", [("colour", str, "red")], bases=(TrainConfig,))
    with pytest.raises(TypeError, match=r"Plain\.colour is not declared"):
        Plain()


@pytest.mark.parametrize("s", [s for s in EVERY if outside(s) is not None], ids=lambda s: s.name)
def test_a_value_outside_its_range_is_refused_by_config_flag_and_checkpoint_alike(s, tmp_path, capsys, monkeypatch):
    bad = outside(s)
    model, train = PRESETS["quick"]
    with pytest.raises(ValueError, match=f"^{s.name} must be"):
        settings.apply(model, {s.name: bad}), settings.apply(train, {s.name: bad})

    monkeypatch.setenv("MNIST_CHECKPOINTS", str(tmp_path))
    assert exit_code(["train", f"--{s.name.replace('_', '-')}={bad}"]) == 2
    err = capsys.readouterr().err
    assert (f"{s.name} must be" in err or "invalid choice" in err) and err.count("\n") == 1
    assert not list(tmp_path.iterdir())  # refused before anything was reserved or trained

    path = save_checkpoint(tmp_path / "bad.pt", CNN(ModelConfig(4, 8, 3, 16)), TrainConfig(), {}, [], "x")
    payload = torch.load(path, weights_only=True)
    part = "model_config" if s.name in payload["model_config"] else "train_config"
    payload[part][s.name] = bad
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"{part}: {s.name} must be"):
        load_checkpoint(path)


def test_a_setting_declared_in_one_place_reaches_flags_checks_sweeps_history_and_the_train_page(
    monkeypatch, folder, capsys
):
    """One new field, declared once, and nothing else edited: every place that lists settings offers it."""
    warmup = setting(
        0,
        "Warm-up epochs",
        "epochs whose learning rate rises from zero",
        low=0,
        high=5,
        presets={"best": 2},
        search={"quick": Interval(0, 2)},
        rare=True,
    )
    Train = dataclasses.make_dataclass("Train", [("warmup_epochs", int, warmup)], bases=(TrainConfig,))
    for name, (model, _) in list(PRESETS.items()):
        monkeypatch.setitem(PRESETS, name, (model, settings.preset(Train, name)))
    assert PRESETS["best"][1].warmup_epochs == 2 and PRESETS["best"][1].val_size == 1000

    with pytest.raises(ValueError, match="warmup_epochs must be between 0 and 5, got 6"):
        Train(warmup_epochs=6)

    assert build_parser().parse_args(["train", "--warmup-epochs", "3"]).warmup_epochs == 3
    assert exit_code(["train", "--warmup-epochs", "6"]) == 2
    assert "warmup_epochs must be between 0 and 5" in capsys.readouterr().err
    assert exit_code(["train", "--help"]) == 0
    assert "--warmup-epochs" in capsys.readouterr().out

    assert search_space("quick")["warmup_epochs"] == Interval(0, 2) and "warmup_epochs" not in search_space("best")
    drawn = {name: space[0] for name, space in search_space("quick").items()}
    assert suggest(optuna.trial.FixedTrial({**drawn, "warmup_epochs": 1}), "quick")[1].warmup_epochs == 1
    assert suggest(optuna.trial.FixedTrial(drawn), "quick", fixed={"warmup_epochs": 4})[1].warmup_epochs == 4
    check_fixed("quick", {"warmup_epochs": 4})
    with pytest.raises(SweepError, match="warmup_epochs must be"):
        check_fixed("quick", {"warmup_epochs": 7})

    assert history_rows([{"name": "x", "train_config": {"warmup_epochs": 2}}])[0]["warmup_epochs"] == 2

    at = open_page("1_Train.py")
    [more] = [e for e in at.sidebar.expander if e.label == "More settings"]
    assert more.number_input(key="warmup_epochs").value == 0
    at.number_input(key="warmup_epochs").set_value(3).run()
    assert any("Warm-up epochs" in c.value for c in at.sidebar.caption)  # named as changed from the preset
    at.selectbox(key="preset").set_value("best").run()
    assert at.number_input(key="warmup_epochs").value == 2


def test_the_train_page_offers_every_setting_and_marks_what_differs_from_the_preset(folder):
    at = open_page("1_Train.py")
    [more] = [e for e in at.sidebar.expander if e.label == "More settings"]
    widgets = ("slider", "select_slider", "number_input", "selectbox", "text_input", "toggle")
    assert {w.key for kind in widgets for w in getattr(more, kind)} == {s.name for s in EVERY if s.rare}
    assert {s.name for s in EVERY} <= {w.key for kind in widgets for w in getattr(at.sidebar, kind)}
    assert not any("changed" in c.value for c in at.sidebar.caption)

    at.select_slider(key="batch_size").set_value(512).run()
    assert at.select_slider(key="batch_size").label.endswith("●]") and at.slider(key="epochs").label == "Epochs"
    assert "Quick preset: 128." in at.select_slider(key="batch_size").help
    assert any("changed from the Quick preset: Batch size" in c.value for c in at.sidebar.caption)

    at.number_input(key="label_smoothing").set_value(1.0).run()
    assert "label_smoothing must be in \\[0, 1)" in at.sidebar.error[0].value  # escaped: shown as typed, not markup
    assert next(b for b in at.button if b.label == "Start training").disabled

    next(b for b in at.button if b.label == "Reset to Quick").click().run()
    assert (at.select_slider(key="batch_size").value, at.number_input(key="label_smoothing").value) == (128, 0.1)
    assert not at.sidebar.error


def test_every_page_shows_a_setting_as_people_read_it(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "dashboard"))  # as the pages import it
    import settings_view

    model, train = ModelConfig(), TrainConfig(lr=0.00348116973989, augment=True, train_size=0, val_size=5000)
    words = settings_view.shown(model, train)
    assert (words["train_size"], words["augment"], words["lr"]) == ("all 55,000", "on", "0.0035")
    assert (words["batch_size"], words["batch_norm"]) == ("128", "on")
    assert "Augmentation on" in settings_view.line(train) and "Training images all 55,000" in settings_view.line(train)
    run = {"name": "x", "train_config": {**train.to_dict(), "augment": False}}
    [row] = settings_view.history_words(history_rows([run]))
    assert (row["train_size"], row["augment"], row["lr"]) == ("all 55,000", "off", "0.0035")
    [damaged] = settings_view.history_words(history_rows([{"name": "y", "train_config": {"train_size": 0}}]))
    assert damaged["train_size"] == "all" and damaged["epochs"] == ""  # no config to count from, nothing made up
