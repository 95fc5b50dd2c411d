"""The package as a user installs it: built into a wheel, installed into a fresh virtualenv, run from elsewhere.

Nothing here may download: the wheel is built with this environment's setuptools, and
the new environment borrows this one's site-packages (after its own) for the dependencies,
so the only ``mnist_core`` it can import is the one the wheel installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import platformdirs
import pytest
from PIL import Image

from mnist_core.data import to_pixels
from mnist_core.places import data_root

REPO = Path(__file__).resolve().parent.parent


def run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin`` folder of a new virtualenv holding the wheel built from this source tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy, so the build leaves nothing (build/, *.egg-info) in the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "mnist_core", source / "mnist_core", ignore=shutil.ignore_patterns("__pycache__"))
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", tmp / "dist", source)
    [wheel] = (tmp / "dist").glob("mnist_lab-*.whl")

    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel)
    own = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    Path(own, "borrowed-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


@pytest.mark.slow
def test_the_installed_wheel_predicts_and_evaluates_from_another_folder(installed, mnist, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.fromarray(to_pixels(mnist.test_images[:1])[0]).save(elsewhere / "digit.png")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MNIST_CHECKPOINTS", "VIRTUAL_ENV")}
    env |= {"MNIST_HOME": str(tmp_path / "home"), "MNIST_ROOT": str(data_root())}

    where = run(installed / "python", "-c", "import mnist_core; print(mnist_core.__file__)", cwd=elsewhere, env=env)
    assert Path(where.stdout.strip()).is_relative_to(installed.parent)  # the wheel's copy, not the source tree
    folders = "from mnist_core import places; print(places.checkpoint_dir()); print(places.data_root())"
    unset = {k: v for k, v in env.items() if k not in ("MNIST_HOME", "MNIST_ROOT")}
    printed = run(installed / "python", "-c", folders, cwd=elsewhere, env=unset).stdout.split()
    assert printed == [str(platformdirs.user_data_path("mnist-lab") / name) for name in ("checkpoints", "data")]

    lab = installed / "mnist-lab"
    predicted = json.loads(run(lab, "predict", "digit.png", "--json", cwd=elsewhere, env=env).stdout)
    assert predicted["digit"] == mnist.test_labels[0].item() and predicted["error"] is None

    evaluated = json.loads(run(lab, "evaluate", "--json", cwd=elsewhere, env=env).stdout)
    assert evaluated["accuracy"] >= 0.993 and sum(map(sum, evaluated["confusion"])) == 10_000
    assert sorted(p.name for p in elsewhere.iterdir()) == ["digit.png"]  # nothing written where it ran
