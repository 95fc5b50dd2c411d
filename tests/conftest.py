"""Shared fixtures: the real MNIST, loaded once per test session (fetched on first use)."""
import pytest

from mnist_core.data import MNIST, load_mnist


@pytest.fixture(scope="session")
def mnist() -> MNIST:
    return load_mnist()
