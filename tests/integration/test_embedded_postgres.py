"""Integration tests for infra.local.postgres: real servers from system binaries and pgserver."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from infra.local import postgres as pgmod
from infra.local.postgres import EmbeddedPostgres

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


def _postgres_user_exists() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


needs_system_pg = pytest.mark.skipif(
    pgmod._system_bindir() is None,
    reason="no PostgreSQL server binaries (apt-get install postgresql)",
)
needs_pgserver = pytest.mark.skipif(
    pgmod._pgserver_bindir() is None, reason="pgserver is not installed (pip install pgserver)"
)
needs_runnable_as_root = pytest.mark.skipif(
    IS_ROOT and not _postgres_user_exists(),
    reason="running as root without a 'postgres' user to run the server",
)


def _hard_kill(pg: EmbeddedPostgres) -> None:
    """Last resort when stop() failed: no test may leave a server behind."""
    info = pgmod._read_pidfile(pg.data_dir / "postmaster.pid")
    if info is not None and pgmod._pid_is_live_postgres(info.pid):
        os.kill(info.pid, signal.SIGKILL)


@pytest.fixture
def make_pg() -> Iterator[Callable[..., EmbeddedPostgres]]:
    made: list[EmbeddedPostgres] = []

    def make(root: Path, **kwargs: object) -> EmbeddedPostgres:
        pg = EmbeddedPostgres(root, **kwargs)  # type: ignore[arg-type]
        made.append(pg)
        return pg

    yield make
    failures: list[BaseException] = []
    for pg in made:
        try:
            pg.destroy()
        except Exception as exc:  # still kill and clean up the others
            failures.append(exc)
            _hard_kill(pg)
            shutil.rmtree(pg.workdir if pg.workdir != pg.root else pg.data_dir, ignore_errors=True)
        assert not pg.is_running()
    if failures:
        raise failures[0]


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A mode-0700 directory right under /tmp (as root: one the 'postgres' user can't enter yet).

    Request it BEFORE make_pg so it is removed after make_pg has stopped the servers inside it.
    """
    path = Path(tempfile.mkdtemp(prefix="coinfrs-pgtest-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _events_table() -> tuple[sa.MetaData, sa.Table]:
    meta = sa.MetaData()
    table = sa.Table(
        "events",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("payload", JSONB, nullable=False),
    )
    return meta, table


@needs_system_pg
@needs_runnable_as_root
def test_system_backend_roundtrip_databases_and_restart(
    make_pg: Callable[..., EmbeddedPostgres], tmp_path: Path
) -> None:
    pg = make_pg(tmp_path / "pg", backend="system")
    url = pg.start()
    assert pg.backend.name == "system"
    port = pg.port
    assert port is not None
    assert url == f"postgresql+pg8000://postgres@127.0.0.1:{port}/postgres"
    assert (pg.root / "port").read_text().strip() == str(port)
    if IS_ROOT:
        assert pg.data_dir.stat().st_uid == pwd.getpwnam("postgres").pw_uid

    meta, events = _events_table()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            meta.create_all(conn)
            conn.execute(
                events.insert(),
                [{"payload": {"vault": 3, "tags": ["a", "b"]}}, {"payload": {"vault": 4}}],
            )
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.payload).where(events.c.payload["vault"].as_integer() == 3)
            ).all()
            assert rows == [({"vault": 3, "tags": ["a", "b"]},)]
            assert (
                conn.execute(
                    sa.select(sa.func.count()).where(events.c.payload.contains({"vault": 4}))
                ).scalar()
                == 1
            )
            # the dev/test durability shortcuts are really applied
            assert conn.execute(sa.text("SHOW fsync")).scalar() == "off"
            assert conn.execute(sa.text("SHOW synchronous_commit")).scalar() == "off"
    finally:
        engine.dispose()

    # A name that needs identifier quoting (and URL encoding) on every step.
    name = 'tenant "one"-x'
    db_url = pg.create_database(name)
    db_engine = sa.create_engine(db_url)
    try:
        with db_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == name
        # drop works while a pooled connection to that database is still open (WITH (FORCE))
        with db_engine.connect() as conn:
            pg.drop_database(name)
    finally:
        db_engine.dispose()
    check = sa.create_engine(url)
    try:
        with check.connect() as conn:
            names = conn.execute(sa.text("SELECT datname FROM pg_database")).scalars().all()
        assert name not in names
    finally:
        check.dispose()
    pg.drop_database(name)  # IF EXISTS: dropping again is fine

    pg.stop()
    assert not pg.is_running()
    assert pg.port is None
    assert pgmod._port_is_free(port)
    pg.stop()  # idempotent

    again = EmbeddedPostgres(tmp_path / "pg", backend="system")  # a fresh object, as after a reboot
    make_pg_url = again.start()
    try:
        assert make_pg_url == url  # same port reused
        engine = sa.create_engine(make_pg_url)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 2
        finally:
            engine.dispose()
    finally:
        again.stop()
    assert not again.is_running()


@needs_pgserver
@needs_runnable_as_root
def test_pgserver_backend_serves_tcp(
    make_pg: Callable[..., EmbeddedPostgres], tmp_path: Path
) -> None:
    pg = make_pg(tmp_path / "pg", backend="pgserver")
    with pg:
        assert pg.backend.name == "pgserver"
        assert "pgserver" in str(pg.backend.bindir)
        engine = sa.create_engine(pg.url())
        try:
            with engine.begin() as conn:
                version = conn.execute(sa.text("SHOW server_version")).scalar()
                conn.execute(sa.text("CREATE TABLE t (doc jsonb)"))
                conn.execute(sa.text("INSERT INTO t VALUES ('{\"k\": [1, 2]}')"))
                assert conn.execute(sa.text("SELECT doc->'k'->>1 FROM t")).scalar() == "2"
        finally:
            engine.dispose()
        assert str(version).startswith("16.")
    assert not pg.is_running()
    # pgserver's own code would have created this account as root; we must not
    if IS_ROOT:
        with pytest.raises(KeyError):
            pwd.getpwnam("pgserver")


@needs_system_pg
@needs_runnable_as_root
def test_recovers_from_killed_postmaster(
    private_dir: Path, make_pg: Callable[..., EmbeddedPostgres]
) -> None:
    pg = make_pg(private_dir)
    url = pg.start()
    if IS_ROOT:
        # the given folder (0700) was opened just enough for 'postgres' and used in place
        assert pg.workdir == private_dir
        assert private_dir.stat().st_mode & stat.S_IXOTH
        assert not private_dir.stat().st_mode & (stat.S_IROTH | stat.S_IWOTH)
    pidfile = pg.data_dir / "postmaster.pid"
    info = pgmod._read_pidfile(pidfile)
    assert info is not None
    old_pid = info.pid

    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pgmod._pid_is_live_postgres(old_pid):
        assert time.monotonic() < deadline, "killed postmaster did not die"
        time.sleep(0.02)
    assert pidfile.exists()  # the crash left its pid file behind
    assert not pg.is_running()

    assert pg.start() == url  # recovered, same port
    new_info = pgmod._read_pidfile(pidfile)
    assert new_info is not None and new_info.pid != old_pid
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()

    # the CLI sees the same server
    cli = subprocess.run(
        [sys.executable, "-m", "infra.local.postgres", "url", "--root", str(private_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == url


@needs_system_pg
@needs_runnable_as_root
def test_shared_root_stops_with_its_last_client(
    make_pg: Callable[..., EmbeddedPostgres], tmp_path: Path
) -> None:
    root = tmp_path / "shared"
    first, second = make_pg(root), make_pg(root)  # e.g. two pytest runs on .local/test-postgres
    url = first.start()
    assert second.start() == url  # joined, not a second initdb/server
    first.stop()
    assert second.is_running()  # still used by `second`

    # A lease whose process is gone (pid beyond pid_max) does not keep the server up.
    (root / "leases" / "999999999-deadbeef").touch()
    second.stop()
    assert not second.is_running()
    assert list((root / "leases").iterdir()) == []

    # The CLI's persistent lease keeps it up after an in-process client leaves, until forced.
    cli_like = EmbeddedPostgres(root, persistent=True)
    cli_like.start()
    third = make_pg(root)
    third.start()
    third.stop()
    assert third.is_running()
    third.stop(force=True)
    assert not third.is_running()


def test_nothing_available_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no pg_config
    monkeypatch.setattr(pgmod, "_PG_LIB_ROOT", tmp_path / "no-postgresql")  # no Debian layout
    monkeypatch.setitem(sys.modules, "pgserver", None)  # pgserver not importable

    root = tmp_path / "pg"
    with pytest.raises(RuntimeError) as auto:
        EmbeddedPostgres(root).start()
    message = str(auto.value)
    assert "apt-get install postgresql" in message
    assert "pip install pgserver" in message
    assert not root.exists()  # failed before touching the disk

    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        pgmod._find_backend("system")
    with pytest.raises(RuntimeError, match="pip install pgserver"):
        pgmod._find_backend("pgserver")
    with pytest.raises(ValueError):
        EmbeddedPostgres(root, backend="docker")  # type: ignore[arg-type]


@pytest.mark.skipif(not IS_ROOT or not _postgres_user_exists(), reason="root-only layout rules")
def test_root_fallback_dir_when_parent_is_closed(
    private_dir: Path, make_pg: Callable[..., EmbeddedPostgres]
) -> None:
    postgres_uid = pwd.getpwnam("postgres").pw_uid
    pg = make_pg(private_dir / "inner")  # private_dir (0700, root) is closed to 'postgres'
    pg._prepare_dirs(pgmod._server_user())
    workdir = pg.workdir
    assert workdir.parent == Path("/tmp") and workdir.name.startswith("coinfrs-pg-")
    assert workdir.stat().st_uid == postgres_uid
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    assert pg.data_dir.stat().st_uid == postgres_uid
    assert stat.S_IMODE(private_dir.stat().st_mode) == 0o700  # ancestors are never chmod'ed
    pg.destroy()
    assert not workdir.exists()

    # A squatter's directory at the predictable fallback name is refused, not used.
    workdir.mkdir(mode=0o777)
    try:
        os.chmod(workdir, 0o777)
        with pytest.raises(RuntimeError, match="refusing to use"):
            pg._prepare_dirs(pgmod._server_user())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
