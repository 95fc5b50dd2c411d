"""Hostile and careless input: each test makes the attack itself and fails without its protection.

Checkpoints that ask for gigabytes, unpack into gigabytes or carry NaN weights; metadata
of the wrong types (also fuzzed with hypothesis); pipes and devices where files belong;
image formats and JPEG scan counts the lab does not read; damaged run logs; names
claimed by two runs at once; leftovers of killed processes; a model shared between threads.
"""

import dataclasses
import io
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
import torch
from dashboard_helpers import open_page, texts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_sweep_journal import write_journal

from mnist_core import checkpoints
from mnist_core.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, scan_checkpoints
from mnist_core.cli import main
from mnist_core.data import MNIST
from mnist_core.images import MAX_JPEG_SCANS, ImageError, load_image
from mnist_core.inference import predict_probabilities
from mnist_core.model import CNN, ModelConfig
from mnist_core.places import release, reserve, reserve_new_run
from mnist_core.runs import RUN_LOG, read_runs, run_training, scan_runs
from mnist_core.studies import SweepError, check_page_artifacts, check_page_storage
from mnist_core.train import TrainConfig

TINY = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16)


def write(path, **changes):
    """A valid tiny checkpoint at ``path``, with payload entries replaced by ``changes``."""
    save_checkpoint(path, CNN(TINY), TrainConfig(), {"test_accuracy": 0.5}, [{"epoch": 1}], "abc", overwrite=True)
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)
    return path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --- checkpoints ------------------------------------------------------------------------------------------------


def test_a_few_kilobytes_cannot_build_a_huge_model(tmp_path):
    """The original attack: a config at the old 4096 limits, weights stored as one repeated value (7 GB, 42 s)."""
    huge = {"conv1_channels": 4096, "conv2_channels": 4096, "kernel_size": 7, "hidden_units": 4096}
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in CNN(ModelConfig(conv1_channels=4, conv2_channels=4)).state_dict().items()}
    path = write(
        tmp_path / "bomb.pt",
        model_config={**TINY.to_dict(), **huge},
        state_dict={k: torch.zeros(1).expand(s) if s else torch.zeros(()) for k, s in shapes.items()},
    )
    assert path.stat().st_size < 20_000
    with pytest.raises(CheckpointError, match="between 1 and 128"):
        load_checkpoint(path)
    # Within the limits, a tensor that is not the architecture's is refused before any model is built.
    weights = CNN(TINY).state_dict()
    weights["classifier.2.weight"] = torch.zeros(1).expand(10**5, 10**5)
    with pytest.raises(CheckpointError, match="do not fit this architecture"):
        load_checkpoint(write(tmp_path / "stretched.pt", state_dict=weights))


def test_a_checkpoint_that_unpacks_past_the_budget_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", 2**20)
    path = write(tmp_path / "zip.pt")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zip/data/999", b"\0" * 2**21)  # 2 MB of zeros in a few kilobytes
    assert path.stat().st_size < 2**20
    with pytest.raises(CheckpointError, match="would unpack to 2"):
        load_checkpoint(path)
    (tmp_path / "big.pt").write_bytes(b"\0" * (2**20 + 1))
    with pytest.raises(CheckpointError, match="larger than 1 MB"):
        load_checkpoint(tmp_path / "big.pt")


def test_nan_and_overflowing_weights_are_refused_everywhere(tmp_path, capsys):
    weights = CNN(TINY).state_dict()
    weights["classifier.5.bias"] = torch.full((10,), float("nan"))
    path = write(tmp_path / "nan.pt", state_dict=weights, metrics={"test_accuracy": 0.9952})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(path)
    weights = {k: v * 1e30 if v.is_floating_point() else v for k, v in CNN(TINY).state_dict().items()}
    with pytest.raises(CheckpointError, match="overflow"):
        load_checkpoint(write(tmp_path / "huge.pt", state_dict=weights))
    Image.new("L", (28, 28), 0).save(tmp_path / "x.png")
    code = main(["predict", "--json", "--checkpoint", str(path), str(tmp_path / "x.png")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "NaN" in err and err.count("\n") == 1
    model = CNN(TINY)
    model.classifier[5].bias.data.fill_(float("nan"))  # a diverged run is not saved at all
    with pytest.raises(CheckpointError, match="diverged"):
        save_checkpoint(tmp_path / "diverged.pt", model, TrainConfig(), {}, [], "")
    assert not (tmp_path / "diverged.pt").exists()


BAD_METADATA = {
    "created is a number": ({"created": 5}, "creation time"),
    "created is not a date": ({"created": "yesterday"}, "ISO 8601"),
    "metrics is a list": ({"metrics": [0.99]}, "metrics must map"),
    "accuracy is text": ({"metrics": {"test_accuracy": "99%"}}, "test_accuracy"),
    "accuracy is NaN": ({"metrics": {"test_accuracy": float("nan")}}, "test_accuracy"),
    "history is a dict": ({"history": {"epoch": 1}}, "history must be a list"),
    "an epoch is text": ({"history": ["epoch 1"]}, "history epoch 1"),
    "config value is text": ({"model_config": {**TINY.to_dict(), "conv1_channels": "4"}}, "must be int"),
    "config value is NaN": ({"train_config": {"weight_decay": float("nan")}}, "must be float"),
    "device is a number": ({"train_config": {"device": 0}}, "must be str"),
    "versions hold numbers": ({"versions": {"torch": 2.1}}, "versions"),
}


@pytest.mark.parametrize("kind", BAD_METADATA)
def test_metadata_of_the_wrong_type_is_refused_with_its_reason(tmp_path, kind):
    changes, message = BAD_METADATA[kind]
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(write(tmp_path / "bad.pt", **changes))


def test_unknown_metadata_is_tolerated_so_later_versions_can_add_their_own(tmp_path):
    history = [{"epoch": 1, "val_accuracy": 0.9, "predictions": torch.zeros(100, dtype=torch.uint8)}]
    path = write(tmp_path / "newer.pt", history=history, ood={"mean": torch.zeros(10)}, sweep="study-1/trial-3")
    checkpoint = load_checkpoint(path)
    assert checkpoint.history[0]["predictions"].shape == (100,)
    assert checkpoint.created.endswith("+00:00")


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "metrics": json_like | st.dictionaries(st.sampled_from(list(checkpoints.METRIC_CHECKS)), json_like),
        "history": json_like | st.lists(st.dictionaries(st.sampled_from(["epoch", "loss", "x"]), json_like)),
        "created": json_like | st.datetimes().map(str),
        "dataset_sha256": json_like,
        "versions": json_like,
        "model_config": json_like | st.dictionaries(st.sampled_from(list(TINY.to_dict())), json_like),
        "train_config": json_like | st.dictionaries(st.sampled_from(list(TrainConfig().to_dict())), json_like),
        "something_new": json_like,
    },
)


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=metadata)
def test_any_metadata_gives_a_usable_checkpoint_or_a_checkpoint_error(tmp_path, changes):
    """Whatever the metadata holds, loading answers with fields a page can show, or says why not."""
    try:
        checkpoint = load_checkpoint(write(tmp_path / "fuzz.pt", **changes))
    except CheckpointError as exc:
        assert str(exc).startswith(str(tmp_path / "fuzz.pt"))
        return
    accuracy = checkpoint.metrics.get("test_accuracy", 0)
    assert f"{accuracy:.2%}" and 0 <= accuracy <= 1  # what the sidebar formats
    assert isinstance(checkpoint.created, str) and isinstance(checkpoint.dataset_sha256, str)
    assert all(isinstance(epoch, dict) for epoch in checkpoint.history)
    assert checkpoint.model(torch.zeros(1, 1, 28, 28)).isfinite().all()
    assert scan_checkpoints(tmp_path)[0][0].created == checkpoint.created  # sortable with the others


def test_one_bad_file_of_each_kind_is_reported_alone_and_unchanged_files_are_not_reloaded(tmp_path):
    write(tmp_path / "good.pt")
    write(tmp_path / "other.pt", created="2020-01-01T00:00:00")
    (tmp_path / "dangling.pt").symlink_to(tmp_path / "gone.pt")
    write(tmp_path / "created.pt", created=[2026])
    write(tmp_path / "metrics.pt", metrics="99%")
    write(tmp_path / "label.pt", metrics={"test_accuracy": "high"})
    os.mkfifo(tmp_path / "pipe.pt")
    good, bad = scan_checkpoints(tmp_path)
    assert [c.name for c in good] == ["good", "other"]
    assert sorted(bad) == ["created.pt", "dangling.pt", "label.pt", "metrics.pt", "pipe.pt"]
    assert "broken link" in bad["dangling.pt"] and "not a regular file" in bad["pipe.pt"]

    write(tmp_path / "other.pt", created="2021-01-01T00:00:00")
    again, _ = scan_checkpoints(tmp_path)
    assert again[0] is good[0]  # the same object: not read again
    assert again[1] is not good[1] and again[1].created.startswith("2021")
    with pytest.raises(dataclasses.FrozenInstanceError):  # shared between sessions: nobody may change it
        again[0].metrics = {}  # type: ignore[misc]


PANEL = {"images": torch.zeros(2, 28, 28, dtype=torch.uint8), "labels": [3, -1]}
TEN = [0.1] * 10
LYING_HISTORY = {
    "watch is text": ({"watch": PANEL, "history": [{"epoch": 1, "watch": "yes"}]}, "watch"),
    "watch is None": ({"watch": PANEL, "history": [{"epoch": 1, "watch": None}]}, None),
    "watch lacks an image": ({"watch": PANEL, "history": [{"epoch": 1, "watch": [TEN]}]}, "watch"),
    "watch holds text": ({"watch": PANEL, "history": [{"epoch": 1, "watch": [TEN, ["a"] * 10]}]}, "watch"),
    "watch without epochs": ({"watch": PANEL, "history": []}, None),
    "no epoch": ({"history": [{"x": 1}]}, "epoch"),
    "epoch is text": ({"history": [{"epoch": "1"}]}, "epoch"),
}


@pytest.mark.parametrize("kind", LYING_HISTORY)
def test_a_history_that_lies_is_refused_or_made_safe_to_read(tmp_path, kind):
    """What the pages read of each epoch (Compare's curves, the Train page's replay) is there and of its type."""
    changes, message = LYING_HISTORY[kind]
    path = write(tmp_path / "lies.pt", **changes)
    if message:
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
        return
    checkpoint = load_checkpoint(path)
    for epoch in checkpoint.history:
        assert isinstance(epoch["epoch"], int)
        assert all(epoch[key] is None or isinstance(epoch[key], (int, float)) for key in checkpoints.CURVES)
    if checkpoint.watch:  # a replay reads one row of 10 probabilities per watched image, every epoch
        assert checkpoint.history and all(
            np.array(epoch["watch"]).shape == (len(checkpoint.watch["labels"]), 10) for epoch in checkpoint.history
        )


def test_the_dashboard_lists_bad_files_and_every_page_keeps_working(folder):
    """Files that cannot load are listed; files that load but lie (the newest one's replay history is text,
    another has no curves) leave the Train page's replay and Compare's curves working."""
    from dashboard_helpers import open_page

    (folder / "dangling.pt").symlink_to(folder / "gone.pt")
    write(folder / "label.pt", metrics={"test_accuracy": "high"})
    write(folder / "created.pt", created=b"\xff")
    write(folder / "text.pt", watch=PANEL, history=[{"epoch": 1, "watch": "yes"}], created="2100-01-01T00:00:00")
    write(folder / "unwatched.pt", watch=PANEL, history=[{"epoch": 1, "watch": None}], created="2099-01-01T00:00")
    write(folder / "bare.pt", history=[{"epoch": 1}], created="2098-01-01T00:00:00")
    at = open_page("3_Draw.py")
    assert at.sidebar.expander[0].label == "4 unreadable checkpoint(s)"
    assert len(at.selectbox(key="model_picker").options) == 3 and not at.exception
    at.switch_page("pages/1_Train.py").run()
    assert not at.exception, at.exception
    at.switch_page("pages/4_Compare.py").run()
    at.multiselect(key="compare_runs").set_value(["default", "bare"]).run()
    assert not at.exception and len(at.get("plotly_chart")), at.exception


# --- names, leftovers, writes -----------------------------------------------------------------------------------


def test_simultaneous_runs_get_distinct_names_in_threads_and_processes(tmp_path):
    names: list = []
    threads = [threading.Thread(target=lambda: names.append(reserve_new_run(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8
    claim = (
        "import sys; from mnist_core.places import reserve; reserve(sys.argv[1]); print('held', flush=True); input()"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", claim, str(tmp_path / "mine.pt")], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert other.stdout.readline() == b"held\n"
        with pytest.raises(CheckpointError, match="already taken by a run in progress"):
            reserve(tmp_path / "mine.pt")
    finally:
        other.kill()
        other.wait()
    assert reserve(tmp_path / "mine.pt") == tmp_path / "mine.pt"  # the holder died: its claim is void
    release(tmp_path / "mine.pt")


def test_leftovers_of_killed_processes_are_removed_and_live_ones_kept(tmp_path):
    dead, alive = dead_pid(), os.getpid()
    leftovers = [f".a.pt.{dead}.x1y2.partial", ".b.pt.reserved"]
    live = [f".c.pt.{alive}.x1y2.partial", ".d.pt.reserved"]
    for name in leftovers + live:
        (tmp_path / name).write_text("")
    (tmp_path / ".b.pt.reserved").write_text(str(dead))
    (tmp_path / ".d.pt.reserved").write_text(str(alive))
    scan_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(live)


def test_a_write_that_fails_says_so_and_leaves_nothing(tmp_path):
    """A full disk, made real with a file-size limit: saving raises a CheckpointError, no partial file stays."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(CheckpointError, match="could not write"):
            save_checkpoint(tmp_path / "full.pt", CNN(ModelConfig()), TrainConfig(), {}, [], "")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_leaves_no_empty_reservation(tmp_path):
    """The pid in a run's marker could not be written: the empty marker stayed and held the name for a minute."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # the file opens, its pid does not fit
    try:
        with pytest.raises(CheckpointError, match="cannot write in"):
            reserve(tmp_path / "mine.pt")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert list(tmp_path.iterdir()) == []
    assert reserve(tmp_path / "mine.pt") == tmp_path / "mine.pt"  # the name is free at once


@pytest.mark.parametrize("command", ["export", "explain", "embed"])
def test_no_command_overwrites_a_file_without_overwrite_and_it_says_so_before_any_work(
    tmp_path, capsys, monkeypatch, command
):
    """`export --out checkpoints/default.pt` once wrote ONNX over the default model; `embed` checked after 20 s."""
    target = tmp_path / "default.pt"
    target.write_bytes(b"precious")
    Image.new("L", (28, 28), 0).save(tmp_path / "x.png")
    monkeypatch.setattr("mnist_core.cli.load_checkpoint", lambda *_: pytest.fail("the work began"))
    args = {"export": ["export", "m.pt"], "explain": ["explain", str(tmp_path / "x.png")], "embed": ["embed", "m.pt"]}
    assert main([*args[command], "--out", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "already exists; add --overwrite" in err
    assert target.read_bytes() == b"precious"
    assert main([*args[command], "--out", str(tmp_path)]) == 2 and "is not a file" in capsys.readouterr().err


def test_overwrite_replaces_the_file_whole(tmp_path, capsys, mnist):
    target = tmp_path / "map.png"
    target.write_bytes(b"old")
    Image.fromarray(((mnist.test_images[0, 0] + 1) * 127.5).byte().numpy()).save(tmp_path / "seven.png")
    argv = ["explain", str(tmp_path / "seven.png"), "--method", "saliency", "--out", str(target)]
    assert main(argv) == 2 and target.read_bytes() == b"old"
    assert main([*argv, "--overwrite"]) == 0 and Image.open(target).format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png", "seven.png"]  # no temporary file left


@pytest.mark.slow
def test_a_failed_retrain_says_the_earlier_checkpoint_is_unchanged(tmp_path):
    path = write(tmp_path / "mine.pt")
    before = path.read_bytes()
    noise = MNIST(
        torch.rand(300, 1, 28, 28), torch.randint(0, 10, (300,)), torch.rand(50, 1, 28, 28), torch.arange(50) % 10, "x"
    )

    def disk_on_fire(progress):
        raise OSError("disk on fire")

    with pytest.raises(OSError):
        run_training(TINY, TrainConfig(epochs=1, val_size=50), noise, path, on_progress=disk_on_fire, overwrite=True)
    [run] = read_runs(tmp_path)
    assert run["status"] == "failed" and "the earlier mine.pt is unchanged" in run["error"]
    assert path.read_bytes() == before and not list(tmp_path.glob(".*"))  # no marker, no partial file


# --- the command line -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--device", "foo"], "--device foo cannot be used here"),
        (["train", "--weight-decay", "nan"], "must be finite"),
        (["train", "--conv1-channels", "4096"], "between 1 and 128"),
        (["train", "--epochs", "abc"], "invalid int value"),
        (["train", "--out", "{tmp}", "--overwrite"], "not a regular file"),
        (["train", "--out", "{tmp}/pipe.pt", "--overwrite"], "not a regular file"),
        (["train", "--out", "{tmp}/taken.pt"], "already taken by a run in progress"),
        (["fetch", "--root", "{tmp}/file"], "Not a directory"),
        (["evaluate", "{tmp}/pipe.pt"], "not a regular file"),
    ],
)
def test_user_errors_are_one_line_exit_2_before_any_training(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("MNIST_CHECKPOINTS", str(tmp_path))
    os.mkfifo(tmp_path / "pipe.pt")
    (tmp_path / "file").write_text("")
    reserve(tmp_path / "taken.pt")
    try:
        code = main([arg.format(tmp=tmp_path) for arg in argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    finally:
        release(tmp_path / "taken.pt")
    _, err = capsys.readouterr()
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / RUN_LOG).exists()  # no junk "failed" row: nothing started
    assert (tmp_path / "pipe.pt").exists() and not (tmp_path / "pipe.pt").is_file()  # never replaced


def test_predict_answers_every_file_after_a_device_and_a_pipe(tmp_path, mnist):
    pixels = ((mnist.test_images[0, 0] + 1) * 127.5).round().byte().numpy()
    Image.fromarray(255 - pixels).save(tmp_path / "digit.png")
    os.mkfifo(tmp_path / "pipe.png")
    names = ("pipe.png", "digit.png")
    result = subprocess.run(
        [sys.executable, "-m", "mnist_core", "predict", "--json", "/dev/zero", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 2
    assert ["not a regular file" in (r["error"] or "") for r in records] == [True, True, False]
    assert records[2]["digit"] == mnist.test_labels[0].item()


# --- images -----------------------------------------------------------------------------------------------------


def jpeg(progressive: bool) -> bytes:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", progressive=progressive)
    return buffer.getvalue()


def test_a_jpeg_with_thousands_of_scans_is_refused_before_decoding():
    data = jpeg(progressive=True)
    last_scan = data.rindex(b"\xff\xda")
    assert load_image(data).size == (64, 64)  # an ordinary progressive JPEG is read
    bomb = data[:last_scan] + data[last_scan:-2] * 5000 + data[-2:]  # the last scan repeated: 1.4 MB, 5,000 scans
    with pytest.raises(ImageError, match=f"scans; at most {MAX_JPEG_SCANS}"):
        load_image(bomb)


def test_formats_the_lab_does_not_document_never_reach_a_decoder(tmp_path):
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nnewpath 0 0 moveto 28 28 lineto stroke\nshowpage\n"
    (tmp_path / "digit.png").write_bytes(eps)
    tiff = io.BytesIO()
    Image.new("L", (28, 28)).save(tiff, "TIFF")
    for source in (tmp_path / "digit.png", tiff.getvalue()):
        with pytest.raises(ImageError, match="PNG, JPEG, GIF, BMP or WebP"):
            load_image(source)


def test_large_images_are_decoded_within_the_memory_budget(tmp_path):
    big = Image.new("RGBA", (6000, 6600), (255, 255, 255, 255))
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    assert len(buffer.getvalue()) < 1_000_000  # 160 MB of pixels in a small file
    with pytest.raises(ImageError, match="too large to decode"):
        load_image(buffer.getvalue(), max_side=512)
    within = Image.new("L", (4000, 3000), 255)
    within.save(tmp_path / "scan.png")
    assert load_image(tmp_path / "scan.png", max_side=512).size == (572, 429)  # reduced by 7 right after decoding
    for mode in ("P", "1", "I;16"):  # modes reduce() cannot average are converted first
        buffer = io.BytesIO()
        Image.new(mode, (2000, 1100)).save(buffer, "PNG")
        assert load_image(buffer.getvalue(), max_side=512).size == (667, 367)
    for device in ("/dev/zero",):
        with pytest.raises(ImageError, match="not a regular file"):
            load_image(device)


# --- run logs ---------------------------------------------------------------------------------------------------


def test_a_damaged_run_log_costs_only_its_bad_lines(tmp_path):
    good = {"name": "ok", "status": "finished", "started": "2026-01-01T00:00:00+00:00", "metrics": {}}
    lines = [
        json.dumps(good).encode(),
        b'{"name": "latin", "status": "failed", "error": "caf\xe9"}',
        json.dumps({"name": "pid", "status": "running", "started": "2026", "pid": 2**70}).encode(),
        json.dumps({"name": "when", "status": "finished", "started": 5}).encode(),
        json.dumps({"name": "acc", "status": "finished", "metrics": {"test_accuracy": "high"}}).encode(),
        json.dumps({"name": "how", "status": "exploded"}).encode(),
        b"[1, 2]",
        b"[" * 100_000,
    ]
    (tmp_path / RUN_LOG).write_bytes(b"\n".join(lines) + b"\n")
    runs, skipped = scan_runs(tmp_path)
    assert {r["name"]: r["status"] for r in runs} == {"ok": "finished", "pid": "interrupted"}
    assert [s.split(": ")[0] for s in skipped] == [f"{RUN_LOG} line {n}" for n in (2, 4, 5, 6, 7, 8)]
    assert "UTF-8" in skipped[0] and "started" in skipped[1] and "test_accuracy" in skipped[2]
    assert read_runs(tmp_path) == runs


def test_a_run_log_that_is_a_pipe_is_reported_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / RUN_LOG)
    assert scan_runs(tmp_path) == (
        [],
        [f"cannot read {tmp_path / RUN_LOG}: not a regular file (a folder, device or pipe)"],
    )


# --- a model shared between sessions -----------------------------------------------------------------------------


def test_predicting_never_changes_the_callers_model_so_threads_can_share_it():
    model = CNN(ModelConfig(conv1_channels=8, conv2_channels=16, hidden_units=32)).train()
    conv = model.features[0][0].weight
    before = (conv.data_ptr(), conv.is_contiguous(), conv.clone())
    images = torch.rand(300, 1, 28, 28) * 2 - 1
    predict_probabilities(model, images)
    assert model.training and (conv.data_ptr(), conv.is_contiguous()) == before[:2] and torch.equal(conv, before[2])

    model.eval()
    expected = predict_probabilities(model, images)
    results: list = []

    def predict_repeatedly():
        for _ in range(5):
            results.append(predict_probabilities(model, images))

    threads = [threading.Thread(target=predict_repeatedly) for _ in range(3)]
    for t in threads:
        t.start()
    with torch.inference_mode():
        direct = [torch.softmax(model(images), 1) for _ in range(5)]  # the caller's model, used while they run
    for t in threads:
        t.join()
    assert all(torch.allclose(r, expected, atol=1e-5) for r in results + direct)


def test_storage_a_page_may_open_is_the_servers_own_or_its_operators(tmp_path):
    own, outside = tmp_path / "checkpoints", tmp_path / "elsewhere"
    own.mkdir()
    outside.mkdir()
    (own / "link.journal").symlink_to(outside / "secret.journal")
    for url in (None, f"journal:{own / 'other.journal'}", "postgresql://lab@db/sweeps"):
        check_page_storage(url, own, "postgresql://lab@db/sweeps")  # the operator's storage too
    for url in (
        f"journal:{outside / 'secret.journal'}",
        f"journal:{own / 'link.journal'}",  # a link out of the folder
        f"journal:{own / '..' / 'elsewhere' / 'secret.journal'}",
        f"journal:{own / 'runs.jsonl'}",  # not a journal
        f"sqlite:///{outside / 'new.db'}",
        "postgresql://someone@host/db",
    ):
        with pytest.raises(SweepError, match="only this server's journal"):
            check_page_storage(url, own, None)
    check_page_artifacts(str(own / "shared"), own, None)
    check_page_artifacts(str(outside), own, str(outside))
    with pytest.raises(SweepError, match="only a folder inside this server's checkpoints folder"):
        check_page_artifacts(str(outside), own, None)


@pytest.mark.slow  # page runs
def test_the_train_page_refuses_storage_and_folders_outside_the_server_and_keeps_working(folder, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    write_journal(outside / "secret.journal", 2, study="secret")
    write_journal(folder / "sweeps.journal", 2, study="own")
    at = open_page("1_Train.py")
    at.text_input(key="sweep_storage_url").input(f"journal:{outside / 'secret.journal'}")
    at.text_input(key="sweep_artifacts").input(str(outside)).run()
    assert not at.exception and "Not this storage: only this server's journal" in texts(at)
    assert "Not this artifact folder" in texts(at)
    assert "secret" not in at.selectbox(key="sweep_study").options and "own" in at.selectbox(key="sweep_study").options
    assert "Run history" in [h.value for h in at.header]
