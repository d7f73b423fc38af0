"""A throwaway PostgreSQL cluster for the test session: a real server, no mocks.

``initdb`` refuses to run as root, so the cluster is made and run as the ``postgres`` OS
user (``runuser``) in a temporary folder it owns, listening only on a Unix socket there, with
fsync off (a test cluster is thrown away; durability is not what these tests measure, except
the crash test, which restarts the same cluster). Without PostgreSQL binaries the tests skip
with the reason, unless $CMPREP_REQUIRE_POSTGRES is set (CI sets it), which makes the skip a
failure: a real-server test that quietly skipped would prove nothing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(versions[-1]) if versions else None


def unavailable(reason: str) -> None:
    """Skip, or fail when the run requires a real server."""
    if os.environ.get("CMPREP_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL is required in this run: {reason}")
    pytest.skip(reason)


class Cluster:
    """One running cluster; ``new_database()`` gives a URL of a fresh, empty database."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable  # fsync on: for the bench, where durability is what is timed
        bin_dir = _bin_dir()
        if bin_dir is None:
            unavailable("no PostgreSQL server binaries (apt-get install postgresql)")
        assert bin_dir is not None
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="cmprep-pg-"))
        self.data = self.root / "data"
        self.as_postgres = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_postgres, str(self.bin / tool), *args], capture_output=True, text=True
        )
        if done.returncode != 0:
            unavailable(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        speed = "" if self.durable else "-c fsync=off -c full_page_writes=off "
        options = f"-k {self.root} -c listen_addresses='' {speed}-c max_connections=200"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                mode,
                "-w",
                "stop",
            ],
            capture_output=True,
        )

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.root}"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


_CLUSTER: list[Cluster] = []


def cluster() -> Cluster:
    """The session's cluster, started on first use and removed when the tests end."""
    if not _CLUSTER:
        import atexit

        _CLUSTER.append(Cluster())
        atexit.register(_CLUSTER[0].remove)
    return _CLUSTER[0]


def psycopg_or_skip() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install '.[postgres]')")
