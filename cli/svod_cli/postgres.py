"""Finding a PostgreSQL server for development and tests, or starting a private one.

Order: ``SVOD_DATABASE_URL`` if set; else 127.0.0.1:5432 if it answers; else a private cluster
under ``.data/`` started from the system's PostgreSQL binaries (as the ``postgres`` user when
running as root, since initdb refuses root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg

PRIVATE_PORT = 54329
INSTALL_HINT = (
    "PostgreSQL is not installed. Install it (Debian/Ubuntu: "
    "`apt-get install -y postgresql postgresql-contrib`; macOS: `brew install postgresql@15`) "
    "or point SVOD_DATABASE_URL at a server."
)


class PostgresMissing(RuntimeError):
    pass


def admin_url(host: str, port: int) -> str:
    return f"postgresql+psycopg://postgres@{host}:{port}/postgres"


def answers(host: str, port: int) -> bool:
    try:
        with psycopg.connect(
            host=host, port=port, user="postgres", dbname="postgres", connect_timeout=2
        ):
            return True
    except psycopg.Error:
        return False


def find_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    candidates: list[Path] = []
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += [
        Path(p).parent for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    ]
    for found in (shutil.which("initdb"),):
        if found:
            candidates.append(Path(found).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing(
            "running as root and there is no 'postgres' user to run initdb as "
            "(initdb refuses root); create one: `useradd -r -m postgres`"
        ) from None
    return ["runuser", "-u", "postgres", "--", *cmd]


def _locale_options() -> list[str]:
    """A UTF-8 aware locale, so lower()/upper() work on Cyrillic names (the C locale's do not).

    C.UTF-8 where the C library has it; ICU's root locale otherwise (PostgreSQL 15+).
    """
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False)
    available = {name.lower().replace("-", "") for name in out.stdout.split()}
    if "c.utf8" in available:
        return ["--locale=C.UTF-8"]
    return ["--locale=C", "--locale-provider=icu", "--icu-locale=und"]


# The private cluster's settings. fsync stays on (PostgreSQL's default): with fsync=off a crash
# of the machine or of PostgreSQL can corrupt the cluster, and no crash test run on it could
# prove that an acknowledged message survives. It costs a one-row commit 2.56 ms instead of
# 0.16 ms here (benchmarks/runtime/bench_durability.py); that is taken back where tests do not
# depend on durability: the test session's own database commits with synchronous_commit=off
# (0.17 ms; conftest.py), never a fault test's.
SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "''",
    "max_connections": "200",
    "fsync": "on",
}


class PrivateCluster:
    """A throw-away cluster in a folder of ours, listening on loopback TCP only."""

    def __init__(
        self,
        datadir: Path,
        bindir: Path,
        port: int = PRIVATE_PORT,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.datadir = datadir
        self.bindir = bindir
        self.port = port
        # SERVER_SETTINGS with these on top (e.g. a test's own cluster).
        self.settings = {**SERVER_SETTINGS, **(settings or {})}

    @property
    def url(self) -> str:
        return admin_url("127.0.0.1", self.port)

    def _prepare_dir(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            shutil.chown(self.datadir, entry.pw_uid, entry.pw_gid)
            self.datadir.chmod(0o700)

    def start(self) -> str:
        if answers("127.0.0.1", self.port):
            return self.url
        if not (self.datadir / "PG_VERSION").exists():
            self._prepare_dir()
            subprocess.run(
                _as_postgres_user(
                    [
                        str(self.bindir / "initdb"),
                        "-D",
                        str(self.datadir),
                        "-U",
                        "postgres",
                        "-A",
                        "trust",
                        "-E",
                        "UTF8",
                        *_locale_options(),
                    ]
                ),
                check=True,
                capture_output=True,
            )
        self._pg_ctl("start")
        return self.url

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} " + " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        subprocess.run(
            _as_postgres_user(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.datadir / "server.log"),
                    "-o",
                    options,
                    *extra,
                    "-w",
                    "-t",
                    "60",
                    action,
                ]
            ),
            check=True,
            capture_output=True,
        )

    def restart(self, mode: str = "immediate") -> None:
        """Restarts the server; ``immediate`` is a crash (no checkpoint: recovery replays the
        WAL), ``fast`` a clean stop."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres_user(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]
            ),
            check=False,
            capture_output=True,
        )


def ensure_postgres(top: Path) -> tuple[str, PrivateCluster | None]:
    """An admin URL, and the private cluster we started (to stop later), if any."""
    url = os.environ.get("SVOD_DATABASE_URL")
    if url:
        return url, None
    if answers("127.0.0.1", 5432):
        return admin_url("127.0.0.1", 5432), None
    bindir = find_bindir()
    if bindir is None:
        raise PostgresMissing(INSTALL_HINT)
    cluster = PrivateCluster(top / ".data" / "pg", bindir)
    already_running = answers("127.0.0.1", cluster.port)
    cluster.start()
    return cluster.url, (None if already_running else cluster)
