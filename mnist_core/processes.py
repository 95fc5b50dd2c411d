"""Child processes for the server's heavy work (training, UMAP), started so that they cannot hang it or its pages.

A fork of a process that runs threads (a Streamlit server runs many) can deadlock the
child, so children start from a fresh interpreter. Each child first imports the parent's
``__main__``; under Streamlit or AppTest that is a page script, which the child does not
need (and, away from the dashboard's folder, cannot even import: the child died and the
parent waited forever), so children are started from an empty ``__main__``.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import types
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess

_main_lock = threading.Lock()  # two threads swapping __main__ at once could leave the empty one in place


def context(preload: list[str] | None = None) -> SpawnContext | ForkServerContext:
    """Spawn; or, given ``preload`` and where the system has one, a fork server that imports those modules once
    (torch takes seconds to import), each child then a fork of that single-threaded server."""
    if preload and "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(preload)
        return forkserver
    return multiprocessing.get_context("spawn")


def start(process: BaseProcess) -> None:
    """``process.start()`` from an empty ``__main__``."""
    with _main_lock:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            sys.modules["__main__"] = main
