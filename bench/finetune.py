"""Teaching the default model a handwriting: time, the writer's error rate and MNIST accuracy, before and after.

For tests/writer.py's synthetic writer (a hand the default model misreads often), per seed:
5 samples per digit are saved as a sample set, ``python -m mnist_core finetune --json`` runs on
it as a whole process (its k-fold included), and the new model reads 300 other samples of the
same hand and MNIST's test set. Targets (issue #24): the writer's error rate at least halves,
MNIST test accuracy drops by at most 0.1 point, the command takes at most 60 s on 2 CPU cores.

    python bench/finetune.py                 # seeds 11 12 13
    python bench/finetune.py --seeds 5 6 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from writer import model_inputs, writer_digits

from mnist_core.checkpoints import load_checkpoint
from mnist_core.evaluate import evaluate
from mnist_core.preprocess import preprocess
from mnist_core.samples import save_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the fine-tuning process")
    parser.add_argument("--per-digit", type=int, default=5, help="samples of each digit to learn from")
    args = parser.parse_args()
    base = load_checkpoint()
    others, other_labels = writer_digits(30, seed=1000)
    test_x, test_y = model_inputs(others), torch.tensor(other_labels)
    before = 1 - evaluate(base.model, test_x, test_y).accuracy
    print(f"default model on 300 samples of the writer: {before:.1%} wrong")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            pictures, labels = writer_digits(args.per_digit, seed)
            for picture, label in zip(pictures, labels):
                digit = preprocess(picture).digits[0]
                save_sample(Path(folder) / "hand", label, digit.steps["28x28"], digit.steps["cropped"])
            out = Path(folder) / "tuned.pt"
            load = os.getloadavg()[0]
            started = time.perf_counter()
            command = [sys.executable, "-m", "mnist_core", "finetune", "--samples", f"{folder}/hand", "--out", str(out)]
            done = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - started
            result = json.loads(done.stdout.strip().splitlines()[-1])
            after = 1 - evaluate(load_checkpoint(out).model, test_x, test_y).accuracy
        mnist, mine = result["mnist_accuracy"], result["samples_accuracy"]
        print(
            f"seed {seed}: {seconds:.1f} s as a whole process ({result['seconds']:.1f} s tuning; load {load:.1f}); "
            f"writer {before:.1%} -> {after:.1%} wrong; MNIST {mnist['before']:.2%} -> {mnist['after']:.2%} "
            f"({100 * (mnist['after'] - mnist['before']):+.2f} points); samples k-fold {mine['before']:.0%} -> "
            f"{mine['after']:.0%}"
        )


if __name__ == "__main__":
    main()
