"""A throwaway PostgreSQL server for the sweep tests: ``initdb`` and ``pg_ctl`` in a temporary folder, a free port.

Debian's ``postgresql`` package puts its programs in /usr/lib/postgresql/<version>/bin,
off PATH. PostgreSQL refuses to run as root, so as root (CI, containers) the server runs
as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, newest version first; None if PostgreSQL is not installed."""
    found = shutil.which("initdb")
    candidates = ([str(Path(found).parent)] if found else []) + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    return next((Path(c) for c in candidates if (Path(c) / "pg_ctl").is_file()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def throwaway_server(bin_dir: Path) -> Iterator[str]:
    """A server for the time of the ``with``; yields its URL (the ``postgres`` database, no password)."""
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="mnist-postgres-"))  # not under pytest's root-only folder
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "cwd": folder}
    subprocess.run([*as_postgres, bin_dir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"], **run)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    pg_ctl = [*as_postgres, bin_dir / "pg_ctl", "-D", data, "-w"]
    subprocess.run([*pg_ctl, "-o", options, "-l", folder / "log", "start"], **run)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server: str, name: str) -> str:
    """A fresh, empty database on the server, so each test's studies start from nothing; returns its URL."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + f"/{name}"
