"""A throwaway PostgreSQL server for tests and benches: Debian's ``postgresql`` binaries, a
private data directory, port and unix socket, listening on 127.0.0.1 only, run as an
unprivileged user (``postgres`` via ``runuser`` when we are root: initdb refuses root)."""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from harness.processes import free_port

SUPERUSER = "postgres"  # reached only over the private unix socket (trust there)


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or an unprivileged user to run them) are missing."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[str] = []
    if pg_config := shutil.which("pg_config"):
        # libpq-dev's pg_config also answers when the server is not installed: check initdb.
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(done.stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        if candidate and all((Path(candidate) / b).is_file() for b in ("initdb", "pg_ctl")):
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (no initdb/pg_ctl under pg_config --bindir or "
        "/usr/lib/postgresql/*/bin): install Debian's postgresql (.ci/run does)"
    )


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` in a temp dir; a login role with a password (scram-sha-256
    over TCP) owning one database; ``url`` is a SQLAlchemy URL for psycopg 3."""

    def __init__(self, *, user: str = "drg", database: str = "drg") -> None:
        self.bindir = find_bindir()
        self.as_root = os.geteuid() == 0
        if self.as_root and (shutil.which("runuser") is None or not _user_exists(SUPERUSER)):
            raise PostgresUnavailable("running as root needs runuser and the 'postgres' user")
        self.user = user
        self.database = database
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="drg-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_path = self.root / "postgres.log"
        # What the store reads its password from (a file setting, like a mounted Secret).
        self.password_file = self.root / "password"
        self.password_file.write_text(self.password)
        self.password_file.chmod(0o600)
        self.running = False
        atexit.register(self.close)

    @property
    def url(self) -> str:
        """``postgresql+psycopg://user:password@127.0.0.1:port/database``."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of another database on this server (see ``create_database``)."""
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def settings_url(self, database: str | None = None) -> str:
        """``DRG_DATABASE_URL`` for a database here: no password (the gateway reads it from
        ``password_file``, as from a mounted Secret)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database or self.database}"

    def _server_cmd(self, binary: str, *args: str) -> list[str]:
        prefix = ["runuser", "-u", SUPERUSER, "--"] if self.as_root else []
        return [*prefix, str(self.bindir / binary), *args]

    def _run(self, binary: str, *args: str) -> None:
        done = subprocess.run(
            self._server_cmd(binary, *args), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{binary} failed ({done.returncode}): {done.stderr}{self.log()}")

    def start(self) -> PostgresServer:
        """Initialise (first time), start and wait until ready; returns self."""
        fresh = not self.data_dir.exists()
        if fresh:
            self._init()
        # -w: pg_ctl waits until the server accepts connections (or -t seconds pass).
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", "60", "start"
        )
        self.running = True
        if fresh:
            with self.admin() as conn:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(self.user), sql.Literal(self.password)
                    )
                )
            self.create_database(self.database)
        return self

    def _init(self) -> None:
        self.socket_dir.mkdir(mode=0o700)
        if self.as_root:
            for path in (self.root, self.socket_dir):
                shutil.chown(path, SUPERUSER, SUPERUSER)
        initdb = [
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
        self._run("initdb", *initdb)
        settings = {
            "listen_addresses": "'127.0.0.1'",  # no external exposure
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        # The socket dir is private to the server user: trust there; TCP needs the password.
        hba = f"local all {SUPERUSER} trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        (self.data_dir / "pg_hba.conf").write_text(hba)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the unix socket (autocommit)."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        """A fresh database owned by the role; returns its URL."""
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.user)
                )
            )
        return self.url_for(name)

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop`` (fast: roll back open transactions, close connections)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
            self.running = False

    def restart(self) -> None:
        """Stop and start again on the same port; committed data stays."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (a crash); ``start()`` then runs recovery."""
        pid_file = self.data_dir / "postmaster.pid"
        if not self.running or not pid_file.exists():
            return
        postmaster = int(pid_file.read_text().split()[0])
        pids = [postmaster, *_children(postmaster)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in pids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres processes {pids} outlived SIGKILL")
            time.sleep(0.05)
        self.running = False

    def log(self) -> str:
        """The server log so far (for failure messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        """Stop the server and delete its files."""
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self if self.running else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _children(parent: int) -> list[int]:
    """Direct children of a process (the postmaster's backends), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found
