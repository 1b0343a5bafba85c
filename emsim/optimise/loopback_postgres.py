"""A throwaway PostgreSQL server on loopback, for the storage tests and the storage benchmark.

Needs Debian's ``postgresql`` package (initdb/pg_ctl under /usr/lib/postgresql/*/bin) and the
``psycopg`` driver (``pip install emsim[postgres]``). PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` system user. Authentication is ``trust`` and the
server listens on 127.0.0.1 only: never use it for real data.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PG_BIN", "LoopbackPostgres", "loopback_postgres"]

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
_RUN = dict(check=True, capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackPostgres:
    """A running server: :meth:`create_database` gives a fresh database's SQLAlchemy URL."""

    def __init__(self, base: Path):
        self.bindir = os.path.dirname(PG_BIN[-1])
        self.base = base
        self.as_user: list[str] = []
        data, sock = base / "data", base / "sock"
        sock.mkdir(parents=True)
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(base, "postgres")
            shutil.chown(sock, "postgres")
            for parent in (base.parent, base.parent.parent):
                os.chmod(parent, stat.S_IMODE(os.stat(parent).st_mode) | 0o755)
        self.port = _free_port()
        self._n = 0
        subprocess.run(self.as_user + [f"{self.bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "emsim"], **_RUN)
        subprocess.run(self.as_user + [f"{self.bindir}/pg_ctl", "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                                       f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1", "start"], **_RUN)

    def create_database(self, name: str | None = None) -> str:
        self._n += 1
        name = name or f"emsim{self._n}"
        subprocess.run(self.as_user + [f"{self.bindir}/createdb", "-h", "127.0.0.1", "-p", str(self.port),
                                       "-U", "emsim", name], **_RUN)
        return f"postgresql+psycopg://emsim@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(self.as_user + [f"{self.bindir}/pg_ctl", "-D", str(self.base / "data"), "-m", "immediate",
                                       "stop"], capture_output=True, timeout=120)


@contextmanager
def loopback_postgres(base: Path | None = None):
    """Start a server in ``base`` (default: a new temporary folder), yield it, stop it."""
    if not PG_BIN:
        raise RuntimeError("PostgreSQL server binaries not installed (apt-get install postgresql)")
    tmp = None
    if base is None:
        tmp = base = Path(tempfile.mkdtemp(prefix="emsim-pg-"))
    server = LoopbackPostgres(Path(base))
    try:
        yield server
    finally:
        server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
