"""The Compare page and the Train page's sweep panel under AppTest, on a temporary checkpoint folder."""

import socket

import optuna
import pytest
from dashboard_helpers import button, open_page, reloaded, run_until, texts
from postgres import new_database

from mnist_core.checkpoints import load_checkpoint
from mnist_core.compare import compare
from mnist_core.model import ModelConfig
from mnist_core.runs import run_training
from mnist_core.studies import open_storage
from mnist_core.sweep import run_sweep, summary
from mnist_core.train import TrainConfig

TINY = {"epochs": 1, "train_size": 2000, "val_size": 500, "conv1_channels": 4, "conv2_channels": 8, "hidden_units": 16}


@pytest.mark.slow
def test_compare_shows_both_runs_and_browses_what_b_fixed_and_broke(folder, mnist):
    tiny = run_training(
        ModelConfig(4, 8, hidden_units=16),
        TrainConfig(epochs=1, val_size=500, train_size=2000),
        mnist,
        folder / "tiny.pt",
    )
    default = load_checkpoint(folder / "default.pt")
    expected = compare(default, tiny, mnist.test_images, mnist.test_labels)
    at = open_page("4_Compare.py")
    assert at.multiselect(key="compare_runs").value == ["default", "tiny"]  # the active model is run A
    metrics = {m.label: m.value for m in at.metric}
    assert (
        metrics["A · default"] == f"{expected.a.accuracy:.2%}"
        and metrics["vs A · tiny"] == f"{expected.b.accuracy:.2%}"
    )
    assert metrics["Agreement"] == f"{expected.agreement:.2%}"
    assert (metrics["Fixed by B"], metrics["Broken by B"]) == (f"{len(expected.fixed):,}", f"{len(expected.broken):,}")
    settings = at.dataframe[0].value
    assert list(settings.columns) == ["default", "tiny"] and "Conv 1 channels" in settings.index
    assert "Epochs" in settings.index and "Kernel size" not in settings.index  # only what differs
    assert settings.loc["Training images"].tolist() == [f"all {default.train_config.images_per_epoch:,}", "2,000"]

    first_fixed = int(expected.fixed[0])
    assert at.session_state.compared == first_fixed
    assert f"Test image #{first_fixed}" in texts(at)
    at.radio(key="compare_kind").set_value("broken").run()
    assert f"{len(expected.broken):,} image(s), 24 per page" in texts(at)
    second = int(expected.broken[1])
    at.button(key=f"compare-{second}").click().run()
    assert f"Test image #{second}: a {int(mnist.test_labels[second])}" in texts(at)
    assert f"**tiny** reads **{int(expected.b.predictions[second])}**" in texts(at)


def test_compare_needs_two_models(folder):
    at = open_page("4_Compare.py")
    assert "Comparing needs two models or more" in texts(at)


@pytest.mark.slow
def test_the_sweep_panel_shows_a_study_and_makes_its_best_trial_active(folder, mnist):
    best = summary(run_sweep(2, mnist, folder, "panel", fixed=TINY))["best"]
    at = open_page("1_Train.py")
    at.selectbox(key="sweep_study").set_value("panel").run()
    assert "Study **panel**: 2 trial(s) done, 0 running." in texts(at)
    assert f"Best so far: trial {best['trial']}, validation accuracy {best['value']:.2%}" in texts(at)
    figures = at.button_group(key="sweep_figure")  # one figure sent at a time, picked here
    assert list(figures.options) == ["Optimisation history", "Parallel coordinates", "Parameter importances"]
    button(at, "Make best trial active").click().run()
    assert at.session_state.active_model == f"panel-trial-{best['trial']}"
    assert at.sidebar.selectbox(key="model_picker").value == f"panel-trial-{best['trial']}"


@pytest.mark.slow
def test_a_sweep_started_from_the_panel_runs_in_the_queue_is_yours_after_a_reload_and_stops(folder):
    at = open_page("1_Train.py")
    assert at.selectbox(key="sweep_study").value == "sweep"  # the default study, new here
    at.number_input(key="sweep_trials").set_value(3).run()
    at.selectbox(key="sweep_epochs").set_value(1).run()
    assert "for 3 more trial(s), each about" in texts(at)  # an estimate before it starts
    button(at, "Start sweep").click().run()
    assert button(at, "Start training").disabled and at.query_params["sweep"] in ("sweep", ["sweep"])
    # A trial is training (the page drawn after the training process's first report: the check runs after the draw).
    run_until(at, lambda at: "**sweep sweep** (yours) · trial 1 of 3 · epoch" in texts(at))  # the queue knows whose
    assert "Study **sweep**: 0 trial(s) done, 1 running." in texts(at)
    assert at.dataframe[0].value["val accuracy"].tolist() == ["running"]

    again = reloaded("sweep", key="sweep")  # a new session, with only the address
    assert again.session_state.sweep_job is at.session_state.sweep_job
    assert again.selectbox(key="sweep_study").value == "sweep" and again.number_input(key="sweep_trials").value == 3
    assert button(again, "Start training").disabled and not button(again, "Stop sweep").disabled
    button(again, "Stop sweep").click().run()
    run_until(at, lambda at: "sweep sweep** was stopped" in texts(at))
    study = optuna.load_study(study_name="sweep", storage=open_storage(None, folder))
    assert [t.state.name for t in study.trials] == ["FAIL"] and study.user_attrs["preset"] == "quick"
    assert study.user_attrs["trials"] == 3
    assert not list(folder.glob("sweep-trial-*.pt"))


@pytest.mark.slow
def test_the_sweep_panel_follows_a_study_trained_on_another_machine(
    folder, mnist, tmp_path_factory, postgres_server, monkeypatch
):
    elsewhere, artifacts = tmp_path_factory.mktemp("gpu-box"), tmp_path_factory.mktemp("shared")
    url = new_database(postgres_server, "panel_shared")
    small = {**TINY, "train_size": 1000, "val_size": 200}
    best = summary(run_sweep(2, mnist, elsewhere, "remote", url, fixed=small, artifacts=artifacts))["best"]
    # The server's operator names the shared storage and artifact folder; a session may only point at those.
    monkeypatch.setenv("MNIST_SWEEP_STORAGE", url)
    monkeypatch.setenv("MNIST_SWEEP_ARTIFACTS", str(artifacts))
    at = open_page("1_Train.py")
    assert at.text_input(key="sweep_storage_url").value == url
    at.text_input(key="sweep_artifacts").input("").run()
    assert at.selectbox(key="sweep_study").options == ["remote", "sweep"]
    at.selectbox(key="sweep_study").set_value("remote").run()
    assert "Study **remote**: 2 trial(s) done, 0 running." in texts(at)
    table = at.dataframe[0].value
    assert list(table["trial"]) == [1, 0] and set(table["worker"]) == {socket.gethostname()}
    assert all(lr == f"{float(lr):.2g}" for lr in table["lr"])  # settings worded as in the run history: "0.0035"
    assert set(table["augment"]) <= {"on", "off"}
    assert table["best so far"].iloc[0] == best["value"]
    assert button(at, "Make best trial active").disabled  # trained elsewhere, and no artifact folder given
    at.text_input(key="sweep_artifacts").input(str(artifacts)).run()
    button(at, "Make best trial active").click().run()
    name = f"remote-trial-{best['trial']}"
    assert at.session_state.active_model == name and (folder / f"{name}.pt").is_file()
    assert load_checkpoint(folder / f"{name}.pt").metrics["val_accuracy"] == best["value"]
