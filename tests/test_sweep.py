"""Sweeps: every finished trial is a tagged run, poor trials are pruned, studies resume and are shared by workers.

Trials are tiny (1 epoch on 2,000 images) so a sweep takes seconds. The worker tests
start `python -m mnist_core sweep` as separate processes on one journal file, as a
user scaling out would, and kill one, as a crash would.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from PIL import Image
from postgres import new_database

from mnist_core.checkpoints import load_checkpoint
from mnist_core.cli import describe_trial, main
from mnist_core.jobs import TrainingQueue
from mnist_core.runs import read_runs
from mnist_core.studies import SweepError, open_storage
from mnist_core.sweep import run_sweep, search_space, summary

# Fixed for every trial, so each takes seconds; the rest (lr, batch size, dropout, augmentation) is searched.
TINY = {"epochs": 1, "train_size": 2000, "val_size": 500, "conv1_channels": 4, "conv2_channels": 8, "hidden_units": 16}
REPO = Path(__file__).resolve().parent.parent
SMALLER = {**TINY, "train_size": 1000, "val_size": 200}  # where only the plumbing is tested, not the search


@pytest.mark.slow
def test_a_tiny_sweep_makes_tagged_runs_and_resumes_to_its_target(tmp_path, mnist, sweep_storage):
    seen = []
    study = run_sweep(3, mnist, tmp_path, "tiny", sweep_storage, fixed=TINY, on_trial=lambda t: seen.append(t.number))
    result = summary(study)
    assert seen == [0, 1, 2] and [t["state"] for t in result["trials"]] == ["COMPLETE"] * 3
    runs = {r["name"]: r for r in read_runs(tmp_path)}
    for trial in result["trials"]:
        checkpoint = load_checkpoint(trial["checkpoint"])
        assert checkpoint.name == f"tiny-trial-{trial['trial']}"
        assert checkpoint.tags == {"study": "tiny", "trial": trial["trial"]}
        assert trial["value"] == checkpoint.metrics["val_accuracy"]
        assert checkpoint.train_config.train_size == 2000 and checkpoint.train_config.epochs == 1
        assert checkpoint.model_config.dropout == trial["params"]["dropout"]
        assert checkpoint.train_config.lr == trial["params"]["lr"]
        run = runs[checkpoint.name]
        assert (run["status"], run["tags"]) == ("finished", checkpoint.tags)
    assert result["best"]["value"] == max(t["value"] for t in result["trials"])
    assert (result["done"], result["running"]) == (3, 0)
    assert set(result["trials"][0]["params"]) == {"lr", "batch_size", "dropout", "augment"}  # the rest is fixed
    json.dumps(result)

    assert len(run_sweep(3, mnist, tmp_path, "tiny", sweep_storage, fixed=TINY).trials) == 3  # nothing runs
    assert [t.number for t in run_sweep(4, mnist, tmp_path, "tiny", sweep_storage, fixed=TINY).trials] == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_trial_below_the_pruners_threshold_stops_after_its_first_epoch(tmp_path, mnist):
    study = run_sweep(
        1, mnist, tmp_path, "pruned", fixed={**TINY, "epochs": 3}, pruner=optuna.pruners.ThresholdPruner(lower=1.01)
    )
    [trial] = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and list(trial.intermediate_values) == [1]
    assert describe_trial(trial).startswith(f"trial 0: pruned at val accuracy {trial.intermediate_values[1]:.2%} (")
    assert summary(study)["trials"][0]["checkpoint"] is None and not list(tmp_path.glob("*.pt"))
    assert (summary(study)["best"], summary(study)["done"]) == (None, 1)  # pruned: done, but never the best
    [run] = read_runs(tmp_path)
    assert run["status"] == "cancelled" and "epoch 2" in run["error"]


def test_bad_settings_and_another_presets_study_are_refused_before_any_trial(tmp_path, mnist, sweep_storage):
    with pytest.raises(SweepError, match="unknown setting"):
        run_sweep(1, mnist, tmp_path, "s", sweep_storage, fixed={"colour": "red"})
    with pytest.raises(SweepError, match="epochs must be"):
        run_sweep(1, mnist, tmp_path, "s", sweep_storage, fixed={"epochs": 0})
    with pytest.raises(SweepError, match="cannot open storage 'nonsense://x'"):
        run_sweep(1, mnist, tmp_path, "s", storage="nonsense://x")
    with pytest.raises(SweepError, match="cannot open storage 'postgresql://nobody@127\\.0\\.0\\.1:1/none'"):
        run_sweep(1, mnist, tmp_path, "s", storage="postgresql://nobody@127.0.0.1:1/none")  # no server there
    run_sweep(0, mnist, tmp_path, "s", sweep_storage, preset="quick")
    with pytest.raises(SweepError, match="searches the 'quick' preset"):
        run_sweep(1, mnist, tmp_path, "s", sweep_storage, preset="best")
    assert not read_runs(tmp_path)


@pytest.mark.slow
def test_a_sweep_job_goes_through_the_queue_and_stops_when_cancelled(tmp_path, mnist, sweep_storage):
    queue = TrainingQueue(tmp_path, data=mnist)
    job = queue.submit_sweep("queued", 5, sweep_storage, fixed={**TINY, "batch_size": 16})
    deadline = time.monotonic() + 120
    while not job.events:
        assert time.monotonic() < deadline and not job.done, job.error
        time.sleep(0.01)
    job.cancel()
    while not job.done:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert job.status == "cancelled"
    study = optuna.load_study(study_name="queued", storage=open_storage(sweep_storage, tmp_path))
    assert [t.state.name for t in study.trials] == ["FAIL"] and not list(tmp_path.glob("*.pt"))


def sweep_command(storage: Path, study: str, trials: int) -> list[str]:
    return [
        *(sys.executable, "-m", "mnist_core", "sweep", "--trials", str(trials), "--study", study),
        *("--storage", f"journal:{storage}", "--json"),
        *(f"--{name.replace('_', '-')}={value}" for name, value in TINY.items()),
    ]


def start(command: list[str], folder: Path) -> subprocess.Popen:
    env = {**os.environ, "MNIST_CHECKPOINTS": str(folder)}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def last_json(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_workers_on_one_journal_share_the_study_without_losing_or_repeating_a_trial(tmp_path):
    journal = tmp_path / "shared.journal"
    workers = [start(sweep_command(journal, "shared", 6), tmp_path) for _ in range(2)]
    results = [last_json(w) for w in workers]
    # Two workers that ask for a trial at the same moment near the end may make one too many: it is failed at
    # once, marked surplus, never trained, and numbered after the six.
    for result in results:  # each reports the whole study: the other worker's trials too, maybe one still running
        assert [t["trial"] for t in result["trials"] if t["state"] != "FAIL"] == list(range(6))
        assert {t["state"] for t in result["trials"] if t["trial"] < 6} <= {"COMPLETE", "RUNNING"}
    study = optuna.load_study(study_name="shared", storage=open_storage(f"journal:{journal}", tmp_path))
    trials = [t for t in summary(study)["trials"] if t["trial"] < 6]
    assert {t["state"] for t in trials} == {"COMPLETE"}
    assert all(t.state.name == "FAIL" and t.user_attrs.get("surplus") for t in study.trials[6:])
    assert len({t.user_attrs["worker"] for t in study.trials[:6]}) == 2  # both did some of the work
    finished = [r["name"] for r in read_runs(tmp_path) if r["status"] == "finished"]
    assert sorted(finished) == sorted(f"shared-trial-{n}" for n in range(6))  # each run exactly once
    assert all(Path(t["checkpoint"]).is_file() for t in trials)


@pytest.mark.slow
def test_a_killed_sweep_resumes_losing_only_the_trial_in_flight(tmp_path):
    journal = tmp_path / "killed.journal"
    worker = start(sweep_command(journal, "killed", 3), tmp_path)
    deadline = time.monotonic() + 300
    while not any(r["name"] == "killed-trial-1" for r in read_runs(tmp_path)):  # trial 0 done, trial 1 started
        assert worker.poll() is None and time.monotonic() < deadline, worker.communicate()
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.communicate()
    before = optuna.load_study(study_name="killed", storage=open_storage(f"journal:{journal}", tmp_path)).trials
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]

    result = last_json(start(sweep_command(journal, "killed", 3), tmp_path))
    states = {t["trial"]: t["state"] for t in result["trials"]}
    assert states == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE", 3: "COMPLETE"}
    assert result["trials"][0]["value"] == before[0].value  # trial 0 kept, not run again
    assert not (tmp_path / "killed-trial-1.pt").exists()
    assert {r["name"]: r["status"] for r in read_runs(tmp_path)}["killed-trial-1"] == "interrupted"


@pytest.mark.slow
def test_a_trial_whose_worker_stopped_beating_is_failed_and_run_again_once(tmp_path, mnist, postgres_server):
    url = new_database(postgres_server, "heartbeat")
    storage = open_storage(url, tmp_path, heartbeat=1)
    study = optuna.create_study(storage=storage, study_name="beat", direction="maximize")
    study.set_user_attr("preset", "quick")
    low, high = search_space("quick")["lr"]
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna would rather see optimize; a worker elsewhere did
        dead = study.ask({"lr": optuna.distributions.FloatDistribution(low, high, log=True)})
    storage.record_heartbeat(dead._trial_id)  # its last heartbeat; then it died
    time.sleep(3.5)  # three heartbeats missed
    result = summary(run_sweep(2, mnist, tmp_path, "beat", url, fixed=SMALLER, heartbeat=1))
    assert [t["state"] for t in result["trials"]] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert result["trials"][1]["params"]["lr"] == dead.params["lr"]  # the same settings, run again once
    assert load_checkpoint(result["trials"][1]["checkpoint"]).name == "beat-trial-1"


@pytest.mark.slow
def test_sigterm_marks_the_trial_in_flight_failed_at_once(tmp_path):
    journal = tmp_path / "term.journal"
    worker = start(sweep_command(journal, "term", 2), tmp_path)
    deadline = time.monotonic() + 120
    while not any(r["name"] == "term-trial-0" for r in read_runs(tmp_path)):
        assert worker.poll() is None and time.monotonic() < deadline, worker.communicate()
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 130 and err.strip().splitlines()[-1] == "interrupted; nothing was saved"
    [trial] = optuna.load_study(study_name="term", storage=open_storage(f"journal:{journal}", tmp_path)).trials
    assert trial.state.name == "FAIL" and not (tmp_path / "term-trial-0.pt").exists()


@pytest.mark.slow
def test_a_trial_reference_fetches_the_checkpoint_from_the_artifact_folder_once(tmp_path, mnist, monkeypatch, capsys):
    worker, laptop, artifacts = tmp_path / "worker", tmp_path / "laptop", tmp_path / "shared"
    worker.mkdir()
    (worker / "again-trial-0.pt").write_bytes(b"left by an earlier study named again, its journal since deleted")
    storage = f"journal:{tmp_path / 'again.journal'}"
    [trial] = run_sweep(1, mnist, worker, "again", storage, fixed=SMALLER, artifacts=artifacts).trials
    assert trial.user_attrs["checkpoint"] == str(worker / "again-trial-0-2.pt")  # a free name, found before training
    monkeypatch.setenv("MNIST_HOME", str(laptop))
    for name in ("MNIST_SWEEP_STORAGE", "MNIST_SWEEP_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    (worker / "again-trial-0-2.pt").unlink()  # only the artifact folder is shared
    assert main(["evaluate", "again:0", "--storage", storage, "--json"]) == 2
    assert "give --artifacts or MNIST_SWEEP_ARTIFACTS" in capsys.readouterr().err
    monkeypatch.setenv("MNIST_SWEEP_STORAGE", storage)
    monkeypatch.setenv("MNIST_SWEEP_ARTIFACTS", str(artifacts))
    assert main(["evaluate", "again:0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(trial.user_attrs["test_accuracy"])
    [cached] = (laptop / "cache" / "trials").glob("*/again-trial-0.pt")
    assert cached.parent.name == trial.user_attrs["checkpoint_artifact"]
    image = tmp_path / "seven.png"
    Image.fromarray((mnist.test_images[0, 0].numpy() * 255).astype("uint8")).save(image)
    assert main(["predict", str(image), "--checkpoint", "again:0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(image)
    assert main(["compare", "again:0", str(cached), "--json"]) == 0  # the reference and its cached file: one model
    assert json.loads(capsys.readouterr().out)["agreement"] == 1.0
    assert [p.name for p in (laptop / "cache" / "trials").rglob("*.pt")] == ["again-trial-0.pt"]  # fetched once
    for reference, error in (("again:1", "has no trial 1"), ("gone:0", "no study named 'gone'")):
        assert main(["evaluate", reference]) == 2 and error in capsys.readouterr().err


@pytest.mark.slow
def test_three_machines_share_a_postgresql_study_and_one_is_killed_mid_trial(tmp_path, postgres_server):
    """Three workers, each with its own checkpoint folder (as three machines have), sharing only the database and
    the artifact folder; one is killed mid-trial. A fourth process reaches every finished trial's checkpoint."""
    url, artifacts, trials = new_database(postgres_server, "many"), tmp_path / "shared", 6
    command = sweep_command(tmp_path, "many", trials)
    command[command.index("--storage") + 1] = url
    command += ["--artifacts", str(artifacts), "--heartbeat", "1", "--train-size=1000", "--val-size=200"]
    machines = [tmp_path / f"machine-{n}" for n in range(3)]
    workers = [start(command, machine) for machine in machines]
    deadline = time.monotonic() + 120
    while not any(r["status"] == "running" for r in read_runs(machines[0])):  # machine 0 is training a trial
        assert workers[0].poll() is None and time.monotonic() < deadline, workers[0].communicate()
        time.sleep(0.05)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].communicate()
    for worker in workers[1:]:
        assert [t["state"] for t in last_json(worker)["trials"]].count("COMPLETE") == trials

    study = optuna.load_study(study_name="many", storage=open_storage(url, tmp_path))
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == trials and set(states) <= {"COMPLETE", "FAIL"}
    [killed] = [t for t in study.trials if t.user_attrs.get("worker", "").endswith(f":{workers[0].pid}")]
    assert killed.state.name == "FAIL"  # found dead by its silent heartbeat, on "another machine"
    assert any(t.system_attrs.get("failed_trial") == killed.number for t in study.trials)  # and run again
    numbers = [r["tags"]["trial"] for machine in machines for r in read_runs(machine)]
    assert sorted(numbers) == sorted(set(numbers))  # no trial number ever trained twice

    finished = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    fourth = (
        "import json, sys; from mnist_core.trials import fetch; from mnist_core.checkpoints import load_checkpoint; "
        "print(json.dumps({n: load_checkpoint(fetch(f'many:{n}')).metrics['val_accuracy'] for n in "
        "json.loads(sys.argv[1])}))"
    )
    env = {**os.environ, "MNIST_HOME": str(tmp_path / "laptop"), "MNIST_SWEEP_STORAGE": url}
    env["MNIST_SWEEP_ARTIFACTS"] = str(artifacts)
    out = subprocess.run(
        [sys.executable, "-c", fourth, json.dumps(finished)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {str(t.number): t.value for t in study.trials if t.state.name == "COMPLETE"}
