"""What fitting the "not a digit" score costs at the end of every training run: time and extra memory, by preset.

The fit's cost does not depend on what the weights learned, so each preset's model is
measured freshly initialised (seeded): no training needed, and the three presets take
under a minute. Extra memory is the peak resident size while fitting, sampled every
millisecond, minus the size just before (data and model already loaded), in the last
fit: the first also pages in the libraries it calls (oneDNN kernels, LAPACK), 100 to
170 MB more, which a training run has already paid for. The stored score's size is what it adds
to the checkpoint.

    python bench/digit_score.py                      # quick, default and best
    python bench/digit_score.py --presets quick --repeats 3
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from functools import partial

import torch

from mnist_core.data import load_mnist
from mnist_core.model import CNN
from mnist_core.ood import fit_digit_score
from mnist_core.train import PRESETS


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _peak_while(work):
    """Run ``work()``; return its result and the peak resident size above the size before it started."""
    before, peak, done = _resident_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _resident_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    return result, max(peak[0], _resident_bytes()) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS), help="presets to fit")
    parser.add_argument(
        "--repeats", type=int, default=2, help="fits per preset; the fastest time is printed (default: 2)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2, as training uses)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(verify=False)
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[0]} (on {torch.get_num_threads()} torch threads)")
    for name in args.presets:
        model_config, train_config = PRESETS[name]
        torch.manual_seed(0)
        model = CNN(model_config).eval()
        seconds, extra = [], 0
        for _ in range(args.repeats):
            start = time.perf_counter()
            fit = partial(fit_digit_score, model, data, train_config.val_size, train_config.seed)
            score, peak = _peak_while(fit)
            seconds.append(time.perf_counter() - start)
            extra = peak
        stored = io.BytesIO()
        torch.save(score.to_dict(), stored)
        print(
            f"  {name:<8} fit {min(seconds):5.2f} s   extra peak memory {extra / 2**20:6.0f} MB"
            f"   stored score {stored.tell() / 2**20:5.2f} MB"
        )


if __name__ == "__main__":
    main()
