"""Fixtures for the server tests; the helpers they use live in harness.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # harness.py and fake_engine.py, by plain name

from harness import Deployment, PostgresCluster, as_postgres, free_port, pg_bin


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    dep = Deployment(tmp_path)
    yield dep
    dep.close()
    print(dep.logs())  # pytest shows captured output only when the test failed


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster in a temp dir (skipped only if PostgreSQL is absent)."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
        )
    root = Path(tempfile.mkdtemp(prefix="vidora-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    run = dict(check=True, capture_output=True)
    subprocess.run(
        as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]), **run
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    )
    subprocess.run(
        as_postgres(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
        ),
        **run,
    )
    try:
        yield PostgresCluster(port)
    finally:
        subprocess.run(
            as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)
