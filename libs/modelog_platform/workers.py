"""`modelog up --workers N`: N processes, each serving every service on the same gRPC and HTTP ports,
and one bus worker running the relays, the async projections and the webhook dispatcher.

One Python process serves on one core (its event loop); more processes use more cores. Nothing here is
home-made coordination: the kernel spreads connections over the serving workers (SO_REUSEPORT);
appends from any of them are ordered by the log's advisory lock; each log's relay and the webhook
dispatcher elect one owner by a PostgreSQL advisory lock that a dead process's session releases; each
projection is a Kafka consumer group whose appliers take turns on the checkpoint row. Those already
allow a copy in every worker; the bus worker exists for speed: consumers in each of N workers polled
the broker N times over (4 workers: the broker's CPU tripled) and shared the serving event loops.
The parent owns the embedded PostgreSQL and broker, starts the first worker alone (it creates the
schemas, tokens and TLS files the others then find) and restarts any worker that dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from contextlib import suppress

from modelog.shared.settings import Settings
from modelog_platform.app import StartupError
from modelog_platform.embedded import EmbeddedError, _die_with_parent

READY = "modelog ready on"
WORKER_ENV = "MODELOG_WORKER_INDEX"
ROLE_ENV = "MODELOG_WORKER_ROLE"
BUS = 0
"""The index of the bus worker."""
EMBEDDED_CONNECTIONS = 150
"""Pooled connections all workers may hold on the embedded PostgreSQL (max_connections=200 leaves the
rest for relay locks, LISTEN and the CLI)."""


class Worker:
    """One worker process, a part the Supervisor restarts like the embedded database and broker."""

    def __init__(self, index: int, env: dict[str, str]) -> None:
        self.index = index
        self.env = {**env, WORKER_ENV: str(index), ROLE_ENV: "bus" if index == BUS else "serve"}
        if index == BUS:  # a private port (its EventLog for its own healing reads), no HTTP
            self.env.update(MODELOG_ADDR="127.0.0.1:0", MODELOG_HTTP_ADDR="off", MODELOG_REUSE_PORT="0")
        self.proc: subprocess.Popen[str] | None = None
        self.ready_line = ""
        self._ready = threading.Event()
        self._tail: deque[str] = deque(maxlen=30)

    def __str__(self) -> str:
        return "bus worker" if self.index == BUS else f"worker {self.index}"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the process (from the main thread: its death signal is tied to the forking thread)."""
        self._ready.clear()
        self._tail.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelog_platform.workers"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Ctrl-C reaches the parent only, which stops the workers in order.
            start_new_session=True,
            preexec_fn=_die_with_parent(signal.SIGTERM),
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True, name=str(self)).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        """Forward the worker's output, named; its ready line is the parent's to print."""
        assert proc.stdout is not None
        for line in proc.stdout:
            if not self._ready.is_set() and line.startswith(READY):
                self.ready_line = line.rstrip("\n")
                self._ready.set()
                continue
            self._tail.append(line)
            print(f"[{self}] {line}", end="", flush=True)

    def wait_ready(self, timeout: float) -> str:
        assert self.proc is not None
        while not self._ready.wait(0.1):
            timeout -= 0.1
            if self.proc.poll() is not None or timeout <= 0:
                reason = "exited" if self.proc.poll() is not None else "was not ready in time"
                self.stop()
                last = "".join(self._tail).strip().splitlines()
                raise EmbeddedError(f"{self} {reason} while starting: {last[-1] if last else 'no output'}")
        return self.ready_line

    def start(self, timeout: float = 90) -> str:
        self.spawn()
        return self.wait_ready(timeout)

    def terminate(self) -> None:
        if self.is_running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20) -> None:
        self.terminate()
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def worker_env(settings: Settings, dsn: str, bootstrap: str, embedded_pg: bool) -> dict[str, str]:
    """What a worker is told: the servers to use (never to start its own) and to share the ports."""
    env = {k: v for k, v in os.environ.items() if k != "MODELOG_WORKERS"}
    pool = settings.pool_size
    if embedded_pg:
        pool = max(4, min(pool, EMBEDDED_CONNECTIONS // settings.workers))
    env.update(
        MODELOG_PG_DSN=dsn,
        MODELOG_KAFKA_BOOTSTRAP=bootstrap,
        MODELOG_REUSE_PORT="1",
        MODELOG_POOL_SIZE=str(pool),
        MODELOG_HOME=str(settings.home),
        MODELOG_ADDR=settings.addr,
        MODELOG_HTTP_ADDR=settings.http_addr,
        MODELOG_TLS="1" if settings.tls else "0",
    )
    return env


def start_workers(settings: Settings, env: dict[str, str], timeout: float = 90) -> list[Worker]:
    """The first alone (it creates what the others find), then the rest and the bus worker together."""
    workers = [Worker(i, env) for i in (*range(1, settings.workers + 1), BUS)]
    try:
        workers[0].start(timeout)
        for w in workers[1:]:
            w.spawn()
        for w in workers[1:]:
            w.wait_ready(timeout)
    except BaseException:
        stop_workers(workers)
        raise
    return workers


def stop_workers(workers: list[Worker]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        w.stop()


def ready_line(workers: list[Worker]) -> str:
    """The first worker's ready line, naming every worker: tests and people read one line."""
    serving = [w for w in workers if w.index != BUS]
    bus = " ".join(f"+ bus worker (pid {w.pid})" for w in workers if w.index == BUS)
    pids = ",".join(str(w.pid) for w in serving)
    head, sep, tail = serving[0].ready_line.partition(" | admin token:")
    return f"{head} | workers: {len(serving)} (pids {pids}) {bus}{sep}{tail}"


def main() -> int:
    """A worker: every service on the shared ports, against the parent's servers."""
    from modelog_platform.runner import _configure, serve

    settings = Settings()
    assert settings.pg_dsn and settings.kafka_bootstrap, "started by `modelog up --workers`"
    try:
        _configure(settings)
        bus = os.environ.get(ROLE_ENV) == "bus"
        asyncio.run(serve(settings, settings.pg_dsn, settings.kafka_bootstrap, http=not bus, bus=bus))
    except StartupError as exc:
        print(f"modelog: {exc}", flush=True)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    with suppress(BrokenPipeError):
        sys.exit(main())
