"""What each hostile input of issue 14 now gets, and what it costs: wall time and extra peak memory.

Every attack runs in its own fresh process, after imports and after its input was
made, so its figures are the rise of that process's resident-memory high-water mark
(Linux's VmHWM, reset before the attack) and the time of the attack alone.

    python bench/hostile.py             # every attack
    python bench/hostile.py jpeg_scans  # one
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from mnist_core import checkpoints
from mnist_core.checkpoints import load_checkpoint, save_checkpoint, scan_checkpoints
from mnist_core.cli import main as cli
from mnist_core.images import MAX_JPEG_SCANS
from mnist_core.inference import predict_probabilities
from mnist_core.model import CNN, ModelConfig
from mnist_core.places import reserve_new_run, shipped_model
from mnist_core.preprocess import preprocess
from mnist_core.runs import RUN_LOG, scan_runs
from mnist_core.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def tiny_checkpoint(path: Path, **changes) -> Path:
    config = ModelConfig(conv1_channels=4, conv2_channels=8, hidden_units=16)
    save_checkpoint(path, CNN(config), TrainConfig(), {"test_accuracy": 0.99}, [], "", overwrite=True)
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)
    return path


# Each attack: (make the input in a folder -> the thing to run). What the thing returns or raises is the outcome.


def checkpoint_bomb(folder: Path) -> Callable[[], object]:
    huge = {"conv1_channels": 4096, "conv2_channels": 4096, "kernel_size": 7, "hidden_units": 4096}
    with torch.device("meta"):
        config = ModelConfig(conv1_channels=128, conv2_channels=256, kernel_size=7, hidden_units=1024)
        shapes = {k: v.shape for k, v in CNN(config).state_dict().items()}
    weights = {k: torch.zeros(1).expand(s) if s else torch.zeros(()) for k, s in shapes.items()}
    path = tiny_checkpoint(folder / "bomb.pt", model_config={**config.to_dict(), **huge}, state_dict=weights)
    return lambda: load_checkpoint(path)


def zip_bomb(folder: Path) -> Callable[[], object]:
    path = tiny_checkpoint(folder / "zip.pt")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zip/data/999", b"\0" * (checkpoints.MAX_CHECKPOINT_BYTES + 1))
    return lambda: load_checkpoint(path)


def bad_files_in_folder(folder: Path) -> Callable[[], object]:
    shutil.copy(shipped_model(), folder / "default.pt")
    (folder / "dangling.pt").symlink_to(folder / "gone.pt")
    tiny_checkpoint(folder / "created.pt", created=[2026])
    tiny_checkpoint(folder / "metrics.pt", metrics="99%")
    tiny_checkpoint(folder / "label.pt", metrics={"test_accuracy": "high"})
    os.mkfifo(folder / "pipe.pt")

    def scan() -> str:
        good, bad = scan_checkpoints(folder)
        return f"listed {[c.name for c in good]}; reported {sorted(bad)}"

    return scan


def nan_weights(folder: Path) -> Callable[[], object]:
    payload = torch.load(shipped_model(), weights_only=True)
    payload["state_dict"] = {
        k: v * float("nan") if v.is_floating_point() else v for k, v in payload["state_dict"].items()
    }
    torch.save(payload, folder / "nan.pt")
    return lambda: load_checkpoint(folder / "nan.pt")


def rescan_300_files(folder: Path) -> Callable[[], object]:
    shutil.copy(shipped_model(), folder / "model-0.pt")
    for i in range(1, 300):
        os.link(folder / "model-0.pt", folder / f"model-{i}.pt")
    scan_checkpoints(folder)  # the first scan loads all 300
    shutil.copy(shipped_model(), folder / "model-new.pt")  # then one file changes
    return lambda: f"{len(scan_checkpoints(folder)[0])} listed after one new file"


def jpeg_scans(folder: Path) -> Callable[[], object]:
    buffer = io.BytesIO()  # a large flat image: every scan is a few bytes, and every scan visits every block
    Image.new("RGB", (3000, 3000), (255, 255, 255)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    last = data.rindex(b"\xff\xda")
    segment = data[last:-2]
    bomb = data[:last] + segment * (1_400_000 // len(segment)) + data[-2:]
    scans = bomb.count(b"\xff\xda")
    return lambda: f"{len(bomb) / 1e6:.1f} MB, {scans} scans: " + repr(preprocess(bomb).found)


def jpeg_worst_accepted(folder: Path) -> Callable[[], object]:
    """The most a JPEG may cost now: 20 megapixels, progressive, MAX_JPEG_SCANS scans."""
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 4000), (255, 255, 255)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    last = data.rindex(b"\xff\xda")
    scans = data.count(b"\xff\xda")
    bomb = data[:last] + data[last:-2] * (MAX_JPEG_SCANS - scans + 1) + data[-2:]
    return lambda: f"{len(bomb) / 1e3:.0f} KB, {MAX_JPEG_SCANS} scans: " + repr(preprocess(bomb).found)


def rgba_png(folder: Path) -> Callable[[], object]:
    buffer = io.BytesIO()
    Image.new("RGBA", (6000, 6600), (255, 255, 255, 255)).save(buffer, "PNG", optimize=True)
    data = buffer.getvalue()
    return lambda: f"{len(data) / 1e3:.0f} KB: " + repr(preprocess(data).found)


def large_png_within_budget(folder: Path) -> Callable[[], object]:
    buffer = io.BytesIO()
    Image.new("RGBA", (4000, 4000), (255, 255, 255, 255)).save(buffer, "PNG")
    data = buffer.getvalue()
    return lambda: f"{len(data) / 1e3:.0f} KB, 4000x4000 RGBA: found a digit {preprocess(data).found}"


def predict_dev_zero(folder: Path) -> Callable[[], object]:
    return lambda: cli(["predict", "--json", "/dev/zero"])


def predict_fifo(folder: Path) -> Callable[[], object]:
    os.mkfifo(folder / "pipe.png")
    return lambda: cli(["predict", "--json", str(folder / "pipe.png")])


def eps_as_png(folder: Path) -> Callable[[], object]:
    (folder / "digit.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    return lambda: preprocess(folder / "digit.png")


def evaluate_races_draw(folder: Path) -> Callable[[], object]:
    model = load_checkpoint(shipped_model()).model
    images = torch.rand(2000, 1, 28, 28) * 2 - 1
    expected = predict_probabilities(model, images[:1]).argmax(1)

    def race() -> str:
        wrong, done = 0, 0
        worker = threading.Thread(target=lambda: [predict_probabilities(model, images) for _ in range(3)])
        worker.start()
        while worker.is_alive():
            with torch.inference_mode():
                wrong += int((model(images[:1]).argmax(1) != expected).sum())
            done += 1
        worker.join()
        return f"{wrong} wrong of {done} predictions made during 3 evaluations"

    return race


def same_second_names(folder: Path) -> Callable[[], object]:
    return lambda: " and ".join(reserve_new_run(folder).name for _ in range(2))


def damaged_run_log(folder: Path) -> Callable[[], object]:
    (folder / RUN_LOG).write_bytes(
        b'{"name": "a", "status": "failed", "error": "caf\xe9"}\n'
        b'{"name": "b", "status": "running", "started": "2026", "pid": 1180591620717411303424}\n'
        b'{"name": "c", "status": "finished", "started": 5}\n'
    )
    return lambda: "runs {}; skipped {}".format(*scan_runs(folder))


def cli_errors(folder: Path) -> Callable[[], object]:
    os.environ["MNIST_CHECKPOINTS"] = str(folder)
    os.mkfifo(folder / "device.pt")
    (folder / "file").write_text("")
    commands = [
        ["train", "--device", "foo"],
        ["train", "--weight-decay", "nan"],
        ["train", "--conv1-channels", "4096"],
        ["train", "--out", str(folder), "--overwrite"],
        ["train", "--out", str(folder / "device.pt"), "--overwrite"],
        ["fetch", "--root", str(folder / "file")],
    ]
    return lambda: [cli(argv) for argv in commands] + [f"run log written: {(folder / RUN_LOG).exists()}"]


ATTACKS: dict[str, Callable[[Path], Callable[[], object]]] = {
    f.__name__: f
    for f in (
        checkpoint_bomb,
        zip_bomb,
        bad_files_in_folder,
        nan_weights,
        rescan_300_files,
        jpeg_scans,
        jpeg_worst_accepted,
        rgba_png,
        large_png_within_budget,
        predict_dev_zero,
        predict_fifo,
        eps_as_png,
        evaluate_races_draw,
        same_second_names,
        damaged_run_log,
        cli_errors,
    )
}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def run(name: str) -> None:
    """In this process: make the input, then time the attack and its rise in peak memory; print one JSON line.

    The peak is Linux's VmHWM, reset after the input is made (``/proc/self/clear_refs``), so making
    a large input does not hide what the attack costs.
    """
    with tempfile.TemporaryDirectory() as folder:
        attack = ATTACKS[name](Path(folder))
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")
        resident_before = _status_kb("VmRSS")
        started = time.perf_counter()
        try:
            outcome = repr(attack())
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        extra_mb = (_status_kb("VmHWM") - resident_before) / 1024
    print(
        json.dumps(
            {"attack": name, "seconds": round(seconds, 3), "extra_peak_mb": round(extra_mb, 1), "outcome": outcome}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attacks", nargs="*", help=f"attacks to run (default: all): {', '.join(ATTACKS)}")
    parser.add_argument("--in-process", action="store_true", help="run one attack here (used by the parent)")
    args = parser.parse_args()
    if unknown := set(args.attacks) - set(ATTACKS):
        parser.error(f"no such attack: {', '.join(sorted(unknown))}")
    if args.in_process:
        run(args.attacks[0])
        return
    print(f"load average {os.getloadavg()[0]:.2f}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    for name in args.attacks or ATTACKS:
        result = subprocess.run(
            [sys.executable, __file__, name, "--in-process"], capture_output=True, text=True, timeout=600
        )
        line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-300:]
        try:
            r = json.loads(line)
            print(f"{r['attack']:<26} {r['seconds']:>7.3f} s {r['extra_peak_mb']:>8.1f} MB  {r['outcome'][:200]}")
        except json.JSONDecodeError:
            print(f"{name:<26} failed: {line}")


if __name__ == "__main__":
    main()
