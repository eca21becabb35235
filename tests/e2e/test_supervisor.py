"""`svod run` as a supervisor: real processes, real signals.

Two suites run side by side on their own ports and databases; SIGTERM to one supervisor and
SIGINT to the other's whole process group (a terminal's Ctrl-C) each drain all five services,
exit 0 with one summary line and leave no process behind; a service that dies is reported with
its exit code and log; a port already in use stops `svod run` before anything starts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from svod_cli.suite import create_database, drop_database, free_ports
from svod_runtime.config import SERVICES
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        for child in parents.get(frontier.pop(), ()):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class RunningSuite:
    process: subprocess.Popen[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    services: set[int] = field(default_factory=set)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout_s: float) -> None:
        def printed() -> str:
            output = self.output()
            if text not in output and self.process.poll() is not None:
                time.sleep(0.5)  # let the reader take the last lines
                raise AssertionError(f"svod run exited early:\n{self.output()}")
            return output

        wait_until(printed, timeout_s, f"{text!r} in the output", 0.2, lambda out: text in out)

    def finish(self) -> int:
        code = self.process.wait(STOP_TIMEOUT_S)
        time.sleep(0.3)
        return code


def suite_env(database_url: str, log_dir: Path, ports: list[int] | None = None) -> dict[str, str]:
    """The environment of one suite; ``ports``: its ten ports (taken together with another
    suite's, so that the two never draw the same one)."""
    ports = ports or free_ports(10)
    env = {
        **os.environ,
        "SVOD_DATABASE_URL": database_url,
        "SVOD_LOG_LEVEL": "WARNING",
        "SVOD_TRACES_FILE": "",
        "SVOD_SEGMENTATION_RECOMPUTE_S": "0",
        "SVOD_QUALITY_REFRESH_INTERVAL_S": "0",
        "PYTHONUNBUFFERED": "1",
    }
    for index, service in enumerate(SERVICES):
        env[f"SVOD_{service.upper()}_PORT"] = str(ports[index])
        env[f"SVOD_{service.upper()}_METRICS_PORT"] = str(ports[5 + index])
        env.pop(f"SVOD_{service.upper()}_TARGET", None)
    env["SVOD_RUN_LOG_DIR"] = str(log_dir)
    return env


def start(env: dict[str, str]) -> RunningSuite:
    process = subprocess.Popen(
        [sys.executable, "-m", "svod_cli", "run", "--log-dir", env["SVOD_RUN_LOG_DIR"]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group, as a shell gives a job: the group signal below is a Ctrl-C.
        start_new_session=True,
    )
    suite = RunningSuite(process, env)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            suite.lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return suite


def svod(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "svod_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def databases(postgres_admin_url: str) -> Iterator[list[str]]:
    names = [f"svod_test_sup_{os.getpid()}_{i}_{time.monotonic_ns() % 10**6}" for i in range(2)]
    urls = [create_database(postgres_admin_url, name) for name in names]
    try:
        yield urls
    finally:
        for name in names:
            drop_database(postgres_admin_url, name)


def stop_quietly(suite: RunningSuite) -> None:
    if suite.process.poll() is None:
        os.killpg(suite.process.pid, signal.SIGKILL)
        suite.process.wait(10)
    for pid in suite.services:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def assert_clean_stop(suite: RunningSuite) -> None:
    assert suite.finish() == 0, suite.output()
    summary = [line for line in suite.lines if line.startswith("svod: ")]
    assert len(summary) == 1, suite.output()
    assert "all 5 services drained and exited 0" in summary[0]
    assert suite.lines[-1] == summary[0]
    left = [pid for pid in suite.services if running(pid)]
    assert not left, f"processes left behind: {left}"


def test_two_suites_side_by_side_and_both_ways_of_stopping(databases, tmp_path) -> None:
    ports = free_ports(20)
    first_env = suite_env(databases[0], tmp_path / "first", ports[:10])
    second_env = suite_env(databases[1], tmp_path / "second", ports[10:])
    first, second = start(first_env), start(second_env)
    try:
        for suite in (first, second):
            suite.wait_for("Press Ctrl-C", STARTUP_TIMEOUT_S)
            suite.services = descendants(suite.process.pid)
            assert len(suite.services) >= 5
        for suite in (first, second):
            status = svod(suite.env, "status")
            assert status.returncode == 0, status.stdout + status.stderr
            assert status.stdout.count("SERVING") == 5
            # Each CLI call reaches its own suite: only the ports differ.
            port = suite.env["SVOD_INGESTION_PORT"]
            assert f"127.0.0.1:{port}" in status.stdout
        # Each suite has its own database: a message sent to one is unknown to the other.
        record = tmp_path / "one.jsonl"
        record.write_text(
            '{"recordRef": {"source": "sup-test", "messageId": "m-1"},'
            ' "channel": "SOURCE_CHANNEL_WEB", "record": {"identifiers":'
            ' [{"type": "IDENTIFIER_TYPE_EMAIL", "value": "side.by.side@example.ru"}]}}\n'
        )
        sent = svod(first.env, "ingest", str(record), "--wait", "--timeout", "60")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "delivered 1" in sent.stdout
        seen = svod(first.env, "record", "status", "--source", "sup-test", "--message-id", "m-1")
        unseen = svod(second.env, "record", "status", "--source", "sup-test", "--message-id", "m-1")
        assert seen.returncode == 0 and "delivered" in seen.stdout
        assert unseen.returncode == 1 and "NOT_FOUND" in unseen.stderr

        os.kill(first.process.pid, signal.SIGTERM)
        assert_clean_stop(first)
        assert "SIGTERM received" in first.lines[-1]

        os.killpg(second.process.pid, signal.SIGINT)  # Ctrl-C in the suite's terminal
        assert_clean_stop(second)
        assert "SIGINT received" in second.lines[-1]
    finally:
        stop_quietly(first)
        stop_quietly(second)


def test_a_dead_service_is_reported_and_the_rest_stopped(databases, tmp_path) -> None:
    env = suite_env(databases[0], tmp_path)
    suite = start(env)
    try:
        suite.wait_for("Press Ctrl-C", STARTUP_TIMEOUT_S)
        suite.services = descendants(suite.process.pid)
        identity = next(
            pid
            for pid in suite.services
            if b"svod_identity" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        os.kill(identity, signal.SIGKILL)
        assert suite.finish() == 1, suite.output()
        out = suite.output()
        log = tmp_path / f"identity-{env['SVOD_IDENTITY_PORT']}.log"
        assert f"svod: identity was killed by SIGKILL; its log: {log}" in out
        assert log.exists()
        assert "identity stopped unexpectedly" in suite.lines[-1]
        assert not [pid for pid in suite.services if running(pid)]
    finally:
        stop_quietly(suite)


def test_a_taken_port_fails_fast_before_anything_starts(databases, tmp_path) -> None:
    env = suite_env(databases[0], tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["SVOD_IDENTITY_PORT"])))
        squatter.listen()
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "svod_cli", "run", "--log-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    port = env["SVOD_IDENTITY_PORT"]
    assert (
        f"svod: port {port} (identity gRPC, SVOD_IDENTITY_PORT) is already in use on 127.0.0.1"
        in result.stderr
    )
    assert "nothing was started" in result.stderr
    assert result.stdout == ""  # not even Postgres was looked for
    assert not list(tmp_path.glob("*.log"))
    assert time.monotonic() - started < 30
