"""A 2-D map of feature vectors (``embed.penultimate``): PCA, or UMAP computed in a background process.

PCA is exact and instant, so a map is there at once; UMAP (umap-learn) keeps
neighbourhoods, so each digit becomes its own island and the errors sit on the
shores, but it takes a while (the first call in a process also compiles its numba
code), so the dashboard computes it in the background. This module imports no torch:
the background process would pay for it in seconds and hundreds of megabytes
(bench/RESULTS.md). A new image (a drawing) is placed among its nearest neighbours in
feature space, the same way for both methods.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import numpy as np

from . import processes

METHODS = ("pca", "umap")
NEIGHBOURS = 10  # where a new image lands: the mean position of this many nearest images
UMAP_NEIGHBOURS = 15  # the neighbourhood UMAP keeps together (umap-learn's default)
# A background map's process gets every cycle the rest leaves idle, and only those: at the same priority
# as the server, UMAP took a whole core from the pages' reruns (and a run) after a model changed.
BACKGROUND_NICENESS = 10


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) coordinates of ``features``; the same features and seed give the same map."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "pca":
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=seed).fit_transform(features)
        # A principal axis has no sign of its own: fix it, so a retrained model's map is not mirrored at random.
        points *= np.where(np.abs(points.max(0)) >= np.abs(points.min(0)), 1, -1)
    else:
        import umap
        from sklearn.neighbors import NearestNeighbors

        # UMAP's own neighbour search (pynndescent) compiles numba code in every new process, and the map is
        # always made in a new one; scikit-learn finds the exact neighbours in one pass. 200 layout epochs,
        # UMAP's own choice above 10,000 points, instead of its 500 below: the test-set map keeps its neighbour
        # agreement in far less time (bench/RESULTS.md, issue 12).
        distances, indices = NearestNeighbors(n_neighbors=UMAP_NEIGHBOURS).fit(features).kneighbors(features)
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=UMAP_NEIGHBOURS,
            min_dist=0.1,
            n_epochs=200,
            random_state=seed,  # deterministic, at the price of running on one thread
            n_jobs=1,
            precomputed_knn=(indices, distances, None),
        )
        with warnings.catch_warnings():  # without a search index UMAP cannot transform new points: place() does
            warnings.filterwarnings("ignore", message="precomputed_knn")
            points = reducer.fit_transform(features)
    return np.asarray(points, dtype=np.float32)


@dataclass(eq=False)
class BackgroundProjection:
    """A projection computed in another process, for a page that draws PCA meanwhile and polls ``done``.

    A process, not a thread: UMAP's numba code holds the GIL and would stall a dashboard
    serving many sessions. It is a daemon, so it ends with the server instead of keeping
    it alive on shutdown. One runs at a time per server, the others wait their turn in the
    order asked (``ahead``): seven sessions on seven models once ran eight UMAP processes
    at once, 6.1 GB, each three times slower.
    """

    features: np.ndarray = field(repr=False)
    method: str
    seed: int
    process: BaseProcess | None = None  # None while it waits its turn
    receiver: Connection | None = None
    started: float | None = None  # when its process started
    _points: np.ndarray | None = None
    _error: str | None = None

    def done(self) -> bool:
        _advance()
        return self._points is not None or self._error is not None

    @property
    def ahead(self) -> int:
        """How many projections run before this one starts: 0 once it runs (or has run)."""
        _advance()
        with _queue_lock:
            return _waiting.index(self) + 1 if self in _waiting else 0

    @property
    def points(self) -> np.ndarray | None:
        """(N, 2) once done and successful, else None."""
        self.done()
        return self._points

    @property
    def error(self) -> str | None:
        """Why it failed, once it has."""
        self.done()
        return self._error

    def _start(self) -> None:
        context = processes.context()
        self.receiver, sender = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_project_into, args=(sender, self.features, self.method, self.seed), daemon=True
        )
        processes.start(self.process)
        sender.close()  # the child holds its own end
        self.started = time.time()

    def _finished(self) -> bool:
        """Take the result if the process has sent it (or has died); True once the process has also ended."""
        assert self.process is not None and self.receiver is not None
        alive = self.process.is_alive()
        if self._points is None and self._error is None:
            try:
                if self.receiver.poll():  # also true once the child's end is closed with nothing sent
                    self._points, self._error = self.receiver.recv()
                elif not alive:
                    raise EOFError
            except (EOFError, OSError):
                self.process.join(timeout=1)
                self._error = f"the worker process stopped (exit code {self.process.exitcode})"
        return not alive and (self._points is not None or self._error is not None)


def _project_into(sender: Connection, features: np.ndarray, method: str, seed: int) -> None:
    if hasattr(os, "nice"):  # background work: the dashboard's page reruns, and a training run, go first
        os.nice(BACKGROUND_NICENESS)
    try:
        sender.send((project(features, method, seed), None))
    except Exception as exc:  # reported to the page instead of dying silently
        sender.send((None, f"{type(exc).__name__}: {exc}"))


# The server's projections: the one running, and those waiting their turn. Whoever polls moves the queue on,
# so no thread is needed: a projection nobody polls any more has nobody waiting for it either.
_queue_lock = threading.Lock()
_running: BackgroundProjection | None = None
_waiting: list[BackgroundProjection] = []


def _advance() -> None:
    global _running
    with _queue_lock:
        if _running is not None and _running._finished():
            _running = None
        if _running is None and _waiting:
            _running = _waiting.pop(0)
            _running._start()


def project_in_background(features: np.ndarray, method: str = "umap", seed: int = 0) -> BackgroundProjection:
    """Queue ``project(features, method, seed)`` for a fresh daemon process and return at once; it starts now
    if no other projection runs."""
    job = BackgroundProjection(features, method, seed)
    with _queue_lock:
        _waiting.append(job)
    _advance()
    return job


def place(new: np.ndarray, features: np.ndarray, points: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """(M, 2) map positions for new feature rows (M, H): the mean position of each one's k nearest images."""
    from sklearn.neighbors import NearestNeighbors

    _, nearest = NearestNeighbors(n_neighbors=k).fit(features).kneighbors(new)
    return points[nearest].mean(1)


def neighbour_agreement(points: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Share of each point's k nearest 2-D neighbours with its label: how well the map keeps digits apart."""
    from sklearn.neighbors import NearestNeighbors

    _, index = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    return float((labels[index[:, 1:]] == labels[:, None]).mean())
