"""A private PostgreSQL server (initdb + pg_ctl) for the local stack and tests w/o DATABASE_URL."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    import pg8000.native

logger = logging.getLogger("infra.local.postgres")  # stable name also under `python -m`

BackendPreference = Literal["auto", "system", "pgserver"]

# Debian/Ubuntu install every server major under here; used when pg_config is absent or points
# at a client-only bindir (libpq-dev without the server package).
_PG_LIB_ROOT = Path("/usr/lib/postgresql")
# PostgreSQL refuses to run as root; as root we run the server as this (distro-created) user.
_SERVER_USER = "postgres"
# Where the data lives when the requested root is under a directory the server user can't enter.
_FALLBACK_PARENT = Path("/tmp")
_HOST = "127.0.0.1"
_START_TIMEOUT_S = 30
# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS); PostgreSQL needs the NUL too.
_MAX_SOCKET_PATH = 103
_LOG_TAIL_LINES = 25

_INSTALL_HINT = (
    "Install one of: the PostgreSQL server package (`apt-get install postgresql` on Debian/Ubuntu, "
    "`brew install postgresql@16` on macOS), or the bundled server wheel (`pip install pgserver`, "
    "Linux x86_64/macOS, Python <= 3.12) - or set DATABASE_URL to an existing server."
)


@dataclass(frozen=True)
class Backend:
    """Where the initdb/pg_ctl/postgres executables come from."""

    name: Literal["system", "pgserver"]
    bindir: Path

    def exe(self, program: str) -> str:
        return str(self.bindir / program)


def _has_server_binaries(bindir: Path) -> bool:
    return all(
        (bindir / prog).is_file() and os.access(bindir / prog, os.X_OK)
        for prog in ("initdb", "pg_ctl", "postgres")
    )


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<major>/bin: sort numerically so 10 beats 9.6.
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (-1,)


def _system_bindir() -> Path | None:
    """Server binaries of an installed PostgreSQL: `pg_config --bindir`, else newest Debian dir."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    candidates.extend(sorted(_PG_LIB_ROOT.glob("*/bin"), key=_version_key, reverse=True))
    return next((c for c in candidates if _has_server_binaries(c)), None)


def _pgserver_bindir() -> Path | None:
    """The binaries bundled in the `pgserver` wheel, located without importing it.

    Importing pgserver is not needed (and its API is Unix-socket-only and would `useradd` as root),
    we only run its bundled executables.
    """
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bindir = Path(location) / "pginstall" / "bin"
        if _has_server_binaries(bindir):
            return bindir
    return None


def _find_backend(preference: BackendPreference = "auto") -> Backend:
    """Pick the server binaries: system PostgreSQL first, then pgserver's bundle, else explain."""
    if preference not in ("auto", "system", "pgserver"):
        raise ValueError(f"backend must be 'auto', 'system' or 'pgserver', not {preference!r}")
    if preference in ("auto", "system"):
        bindir = _system_bindir()
        if bindir is not None:
            return Backend("system", bindir)
        if preference == "system":
            raise RuntimeError(
                "No PostgreSQL server binaries found (checked `pg_config --bindir` and "
                f"{_PG_LIB_ROOT}/*/bin for initdb, pg_ctl, postgres). Install them: "
                "`apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql@16` "
                "(macOS)."
            )
    if preference in ("auto", "pgserver"):
        bindir = _pgserver_bindir()
        if bindir is not None:
            return Backend("pgserver", bindir)
        if preference == "pgserver":
            raise RuntimeError(
                "The pgserver package (or its bundled pginstall/bin) is not available in this "
                "interpreter. Install it: `pip install pgserver` (Linux x86_64/macOS, "
                "Python <= 3.12)."
            )
    raise RuntimeError(
        "No PostgreSQL server available to start a local database: no server binaries "
        f"(`pg_config --bindir`, {_PG_LIB_ROOT}/*/bin) and no pgserver package. {_INSTALL_HINT}"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The account to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(_SERVER_USER)
    except KeyError:
        raise RuntimeError(
            "Running as root, and PostgreSQL refuses to run as root, so the local server runs "
            f"as the system user {_SERVER_USER!r} - which does not exist on this machine. Either "
            "create it (`useradd --system --home-dir /var/lib/postgresql --shell "
            f"/usr/sbin/nologin {_SERVER_USER}`, "
            "or `apt-get install postgresql`, which creates it) or run as a non-root user. "
            "(pgserver's own get_server() would silently `useradd` a 'pgserver' account as root; "
            "this module deliberately does not create users.)"
        ) from None
    if shutil.which("runuser") is None:
        raise RuntimeError(
            "Running as root needs `runuser` (util-linux) to start PostgreSQL as 'postgres'."
        )
    return user


def _can_traverse(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may enter directory `path` (classic mode bits; ACLs are not consulted)."""
    st = path.stat()
    if user.pw_uid == 0:
        return True
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _blocking_ancestor(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first ancestor of `path` that `user` cannot traverse (we never chmod ancestors).

    Missing ancestors are skipped: mkdir creates them with the usual 0755.
    """
    for ancestor in reversed(path.parents):
        if ancestor.is_dir() and not _can_traverse(ancestor, user):
            return ancestor
    return None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Mirror PostgreSQL, which binds with SO_REUSEADDR: a TIME_WAIT leftover is not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _pick_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie.

    kill(pid, 0) alone (all `pg_ctl status` does) counts an unreaped zombie as alive, and containers
    whose PID 1 reaps late keep a killed postmaster as a zombie for a while.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists but belongs to another user
    try:  # Linux only; elsewhere trust kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _pid_is_live_postgres(pid: int) -> bool:
    """Whether `pid` is a running postgres process (not a zombie, not a recycled PID)."""
    if not _pid_alive(pid):
        return False
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS) or not ours to read: trust kill(0)


def _shm_attach_count(shmid: int) -> int:
    """How many processes still attach the crashed server's SysV interlock segment (Linux only).

    A killed postmaster's children keep it attached until they exit; starting a new postmaster
    over them (after we removed postmaster.pid) would let two servers write the same data.
    """
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return 0
    for row in rows:
        fields = row.split()
        if len(fields) > 6 and fields[1] == str(shmid):
            return int(fields[6])
    return 0


@dataclass(frozen=True)
class _PidFile:
    pid: int
    port: int | None
    shmid: int | None


def _read_pidfile(path: Path) -> _PidFile | None:
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    # Layout (pidfile.h): pid, datadir, start time, port, socket dir, listen addr, "shmkey shmid",
    # status.
    try:
        pid = int(lines[0].strip())
    except (IndexError, ValueError):
        pid = -1
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    shm = lines[6].split() if len(lines) > 6 else []
    shmid = int(shm[1]) if len(shm) == 2 and shm[1].isdigit() else None
    return _PidFile(pid=pid, port=port, shmid=shmid)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


class EmbeddedPostgres:
    """One private PostgreSQL cluster living under `root`, reachable over TCP on 127.0.0.1.

    Layout: <workdir>/data (PGDATA), <workdir>/run (Unix socket), <workdir>/postgres.log, and in
    <root>: port (reused on the next start), .lock, leases/. workdir is `root`, except when running
    as root and `root` sits under a directory the 'postgres' user cannot enter: then it is
    /tmp/coinfrs-pg-<hash of root>, owned by 'postgres'.

    Several processes may share one root (parallel test runs, the dev server): start() and stop()
    are serialised by a file lock, every start() takes a lease, and stop() only shuts the server
    down when no other live lease remains (stop(force=True) always does).
    """

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        *,
        backend: BackendPreference = "auto",
        persistent: bool = False,
    ) -> None:
        """`persistent`: the lease outlives this process (CLI start/stop); else it dies with it."""
        if backend not in ("auto", "system", "pgserver"):
            raise ValueError(f"backend must be 'auto', 'system' or 'pgserver', not {backend!r}")
        # Absolute: pg_ctl runs with another cwd and the paths are baked into postmaster.pid.
        self.root = Path(root).expanduser().absolute()
        self._requested_port = port
        self._preference: BackendPreference = backend
        self._backend: Backend | None = None
        self._port: int | None = None
        # "<pid>-<random>": one per object, pruned once its process is gone.
        self._lease = "persistent" if persistent else f"{os.getpid()}-{secrets.token_hex(4)}"

    # ---- layout -------------------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        user = _server_user() if os.geteuid() == 0 else None
        if user is not None and _blocking_ancestor(self.root, user) is not None:
            digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
            return _FALLBACK_PARENT / f"coinfrs-pg-{digest}"
        return self.root

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    @property
    def socket_dir(self) -> Path | None:
        """The Unix socket directory, or None when its path would be too long for a socket."""
        run = self.workdir / "run"
        return run if len(str(run).encode()) + len("/.s.PGSQL.65535") <= _MAX_SOCKET_PATH else None

    @property
    def _port_file(self) -> Path:
        return self.root / "port"

    @property
    def _leases_dir(self) -> Path:
        return self.root / "leases"

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = _find_backend(self._preference)
        return self._backend

    @property
    def port(self) -> int | None:
        """The TCP port once started (or found running), else None."""
        return self._port

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of `database` on the running server."""
        if self._port is None:
            raise RuntimeError(f"the local PostgreSQL under {self.root} is not started")
        # Percent-encoded: SQLAlchemy decodes the database part, so any name survives the URL.
        return f"postgresql+pg8000://postgres@{_HOST}:{self._port}/{quote(database, safe='')}"

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        """Initialise (first time) and start the server, or join the running one; return its URL."""
        backend = self.backend
        user = _server_user()
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            url = self._start_locked(backend, user)
            self._leases_dir.mkdir(exist_ok=True)
            (self._leases_dir / self._lease).touch()
        return url

    def _start_locked(self, backend: Backend, user: pwd.struct_passwd | None) -> str:
        began = time.monotonic()
        closed = _blocking_ancestor(backend.bindir / "postgres", user) if user else None
        if user is not None and closed is not None:
            # e.g. pgserver installed in a venv under /root (mode 0700)
            raise RuntimeError(
                f"user {user.pw_name!r} cannot reach the {backend.name} binaries in "
                f"{backend.bindir} ({closed} is closed to it); install them somewhere "
                "world-readable (a venv outside /root) or use the system PostgreSQL"
            )
        self._prepare_dirs(user)

        running_port = self._live_port(clean_stale=True)
        if running_port is not None:
            if self._requested_port is not None and self._requested_port != running_port:
                raise RuntimeError(
                    f"the local PostgreSQL in {self.data_dir} already runs on port {running_port}, "
                    f"not the requested {self._requested_port}; stop it first"
                )
            self._port = running_port
            logger.info(
                "PostgreSQL already running in %s on %s:%d", self.data_dir, _HOST, running_port
            )
            return self.url()

        if (self.data_dir / "PG_VERSION").is_file():
            self._check_data_version(backend, user)
        else:
            self._initdb(backend, user)

        port = self._choose_port()
        self._port_file.write_text(f"{port}\n")
        socket_dir = self.socket_dir
        server_opts = [
            "-h",
            _HOST,
            "-p",
            str(port),
            "-k",
            str(socket_dir) if socket_dir else "",  # "" disables Unix sockets (path too long)
            # Dev/test server: crash safety is worthless for throwaway data and these three make
            # every commit (and so the whole test suite) several times faster.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        result = self._run(
            backend,
            user,
            "pg_ctl",
            [
                "start",
                "-D",
                str(self.data_dir),
                "-o",
                " ".join(shlex.quote(o) for o in server_opts),
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "-l",
                str(self.log_path),
            ],
        )
        if result.returncode != 0:
            self._fail("pg_ctl start", result)
        self._port = port
        logger.info(
            "PostgreSQL (%s, %s) started on %s:%d in %.2fs; data %s",
            backend.name,
            backend.bindir,
            _HOST,
            port,
            time.monotonic() - began,
            self.data_dir,
        )
        return self.url()

    def stop(self, *, force: bool = False) -> None:
        """Release this object's lease; when no other live lease remains (or `force`), shut down.

        Shutdown is `pg_ctl stop -m fast -w` (disconnects clients); a no-op when nothing runs.
        """
        with self._locked():
            self._port = None
            with contextlib.suppress(FileNotFoundError):
                (self._leases_dir / self._lease).unlink()
            others = self._live_leases()
            if force:
                for lease in others:
                    (self._leases_dir / lease).unlink(missing_ok=True)
            if self._live_port(clean_stale=True) is None:
                return
            if others and not force:
                logger.info(
                    "leaving PostgreSQL in %s running for its other clients %s",
                    self.data_dir,
                    others,
                )
                return
            self._stop_server()

    def _stop_server(self) -> None:
        result = self._run(
            self.backend,
            _server_user(),
            "pg_ctl",
            ["stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(_START_TIMEOUT_S)],
        )
        if result.returncode != 0 and self._live_port(clean_stale=False) is not None:
            self._fail("pg_ctl stop", result)
        logger.info("PostgreSQL in %s stopped", self.data_dir)

    def is_running(self) -> bool:
        """Whether a live server owns this data dir (also learns its port)."""
        port = self._live_port(clean_stale=False)
        if port is not None:
            self._port = port
        return port is not None

    def destroy(self) -> None:
        """Force-stop and delete the cluster: data, socket dir, log, port, leases, /tmp fallback."""
        self.stop(force=True)
        workdir = self.workdir
        if workdir != self.root:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for path in (self.data_dir, workdir / "run"):
                shutil.rmtree(path, ignore_errors=True)
            self.log_path.unlink(missing_ok=True)
        shutil.rmtree(self._leases_dir, ignore_errors=True)
        self._port_file.unlink(missing_ok=True)
        (self.root / ".lock").unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- databases ----------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (fails if it exists); return its SQLAlchemy URL."""
        from pg8000.native import identifier

        with self._admin_connection() as conn:
            conn.run(f"CREATE DATABASE {identifier(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS `name`, disconnecting its sessions (pooled test connections)."""
        from pg8000.native import identifier

        with self._admin_connection() as conn:
            conn.run(f"DROP DATABASE IF EXISTS {identifier(name)} WITH (FORCE)")

    def _admin_connection(self) -> pg8000.native.Connection:
        import pg8000.native

        if self._port is None:
            raise RuntimeError(f"the local PostgreSQL under {self.root} is not started")
        # pg8000.native runs every statement outside a transaction block (autocommit), which
        # CREATE/DROP DATABASE require.
        return pg8000.native.Connection(
            user="postgres", host=_HOST, port=self._port, database="postgres", timeout=30
        )

    # ---- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop across processes sharing this root (else two cold starts initdb)."""
        if not self.root.is_dir():
            yield  # nothing on disk to protect (stop() of a never-started root)
            return
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # held at most one start/stop (bounded by pg_ctl -t)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _live_leases(self) -> list[str]:
        """Other clients' leases that still count; those of exited processes are deleted."""
        live: list[str] = []
        leases = sorted(self._leases_dir.iterdir()) if self._leases_dir.is_dir() else []
        for lease in leases:
            pid = lease.name.split("-", 1)[0]
            if lease.name == "persistent" or (pid.isdigit() and _pid_alive(int(pid))):
                live.append(lease.name)
            else:
                lease.unlink(missing_ok=True)
        return live

    def _prepare_dirs(self, user: pwd.struct_passwd | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        workdir = self.workdir
        if user is not None:
            if workdir == self.root:
                if not _can_traverse(self.root, user):
                    # Only the folder we were given: add o+x (enter, not list) so 'postgres' reaches
                    # its data dir inside. Ancestors are never touched.
                    self.root.chmod(self.root.stat().st_mode | stat.S_IXOTH)
                    logger.info("added o+x to %s so %r can reach its data", self.root, user.pw_name)
            else:
                logger.warning(
                    "%s is under %s, which user %r cannot enter; keeping the PostgreSQL data in %s",
                    self.root,
                    _blocking_ancestor(self.root, user),
                    user.pw_name,
                    workdir,
                )
                self._ensure_private_dir(workdir, user)
        for path in (self.data_dir, workdir / "run"):
            if not path.exists():
                path.mkdir(mode=0o700)
                if user is not None:
                    os.chown(path, user.pw_uid, user.pw_gid)
            elif user is not None and path.stat().st_uid != user.pw_uid:
                raise RuntimeError(
                    f"{path} is owned by uid {path.stat().st_uid}, not by {user.pw_name!r} that "
                    "runs the server; it was made by another account - delete it or chown it"
                )
        if not self.log_path.exists():
            self.log_path.touch(mode=0o600)
            if user is not None:
                # pg_ctl opens the log itself, as the server user.
                os.chown(self.log_path, user.pw_uid, user.pw_gid)

    @staticmethod
    def _ensure_private_dir(path: Path, user: pwd.struct_passwd) -> None:
        """Create (or vet) the /tmp fallback: a predictable name there may be someone else's."""
        try:
            path.mkdir(mode=0o700)
            os.chown(path, user.pw_uid, user.pw_gid)
            return
        except FileExistsError:
            pass
        st = path.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != user.pw_uid or st.st_mode & 0o022:
            raise RuntimeError(
                f"refusing to use {path}: it exists but is not a directory owned by "
                f"{user.pw_name!r} and writable only by it; remove it"
            )

    def _live_port(self, *, clean_stale: bool) -> int | None:
        """Port of the live postmaster in our data dir; optionally clear a crashed run's files."""
        pidfile = self.data_dir / "postmaster.pid"
        info = _read_pidfile(pidfile)
        if info is None:
            return None
        if _pid_is_live_postgres(info.pid):
            return info.port
        if not clean_stale:
            return None
        if info.shmid is not None:
            # Children of a killed postmaster exit on their own promptly; wait for them, because
            # removing postmaster.pid also removes PostgreSQL's own "still in use" check.
            deadline = time.monotonic() + 10
            while _shm_attach_count(info.shmid) > 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"processes of a crashed PostgreSQL (pid {info.pid}) still use "
                        f"{self.data_dir} (shared memory id {info.shmid}); kill them, then "
                        "start again"
                    )
                time.sleep(0.05)
        logger.warning(
            "removing stale %s: postmaster pid %d is gone (an earlier run crashed or was killed)",
            pidfile,
            info.pid,
        )
        pidfile.unlink(missing_ok=True)
        # Same for the socket lock files: PostgreSQL refuses them too while the PID is a zombie.
        socket_dir = self.workdir / "run"
        for lock in socket_dir.glob(".s.PGSQL.*.lock") if socket_dir.is_dir() else ():
            lock_info = _read_pidfile(lock)
            if lock_info is None or not _pid_is_live_postgres(lock_info.pid):
                lock.unlink(missing_ok=True)
                socket_dir.joinpath(lock.name.removesuffix(".lock")).unlink(missing_ok=True)
        return None

    def _choose_port(self) -> int:
        if self._requested_port is not None:
            if not _port_is_free(self._requested_port):
                raise RuntimeError(f"port {self._requested_port} on {_HOST} is already in use")
            return self._requested_port
        try:
            saved: int | None = int(self._port_file.read_text().strip())
        except (OSError, ValueError):
            saved = None
        if saved is not None and 0 < saved < 65536 and _port_is_free(saved):
            return saved
        port = _pick_free_port()
        if saved is not None:
            logger.info("saved port %d is taken; using %d", saved, port)
        return port

    def _initdb(self, backend: Backend, user: pwd.struct_passwd | None) -> None:
        began = time.monotonic()
        result = self._run(
            backend,
            user,
            "initdb",
            [
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                # C locale: exists everywhere (the developer's LANG may name an uninstalled locale)
                # and sorts deterministically.
                "--locale=C",
            ],
        )
        if result.returncode != 0:
            self._fail("initdb", result)
        logger.info(
            "initdb (%s) of %s took %.2fs", backend.name, self.data_dir, time.monotonic() - began
        )

    def _check_data_version(self, backend: Backend, user: pwd.struct_passwd | None) -> None:
        """A data dir only starts with the major that created it; say so rather than dump a log."""
        data_major = (self.data_dir / "PG_VERSION").read_text().strip()
        result = self._run(backend, user, "pg_ctl", ["--version"])
        match = re.search(r"\(PostgreSQL\) (\d+)", result.stdout)
        if match and match.group(1) != data_major:
            raise RuntimeError(
                f"{self.data_dir} was created by PostgreSQL {data_major} but the {backend.name} "
                f"backend ({backend.bindir}) is PostgreSQL {match.group(1)}; delete "
                f"{self.workdir} (local data only) or choose the matching backend"
            )

    def _run(
        self, backend: Backend, user: pwd.struct_passwd | None, program: str, args: list[str]
    ) -> subprocess.CompletedProcess[str]:
        cmd = [backend.exe(program), *args]
        if user is not None:
            cmd = ["runuser", "-u", user.pw_name, "--", *cmd]
        # PG* variables (PGDATA, PGPORT, PGHOST, PGOPTIONS...) would silently retarget the tools.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        logger.debug("running %s", shlex.join(cmd))
        # The server logs to -l, so pg_ctl's stdout/stderr close when it returns: capturing is safe.
        # cwd: the server user must be able to enter it (not /root).
        return subprocess.run(
            cmd,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S + 30,
        )

    def _fail(self, what: str, result: subprocess.CompletedProcess[str]) -> None:
        output = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}) for {self.data_dir}:\n{output}\n"
            f"--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"
        )


def _default_root() -> Path:
    return Path(__file__).resolve().parents[2] / ".local" / "postgres"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.postgres", description=__doc__)
    parser.add_argument("command", choices=("start", "stop", "url"))
    parser.add_argument(
        "--root", type=Path, default=_default_root(), help="cluster folder (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="TCP port (default: saved one, else a free one)"
    )
    parser.add_argument("--backend", choices=("auto", "system", "pgserver"), default="auto")
    parser.add_argument(
        "--force", action="store_true", help="stop even if other processes still use it"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    # persistent: the server outlives this command, until `stop` releases the same lease.
    pg = EmbeddedPostgres(args.root, args.port, backend=args.backend, persistent=True)
    try:
        if args.command == "start":
            print(pg.start())
        elif args.command == "stop":
            pg.stop(force=args.force)
            if pg.is_running():
                print(
                    "still running: other processes use it (use --force to stop anyway)",
                    file=sys.stderr,
                )
        elif pg.is_running():
            print(pg.url())
        else:
            print(f"not running (root {args.root})", file=sys.stderr)
            return 1
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
