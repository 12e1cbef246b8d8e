"""Apply and inspect Alembic migrations (`make migrate`, `make serve` and the tests use it)."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database of `engine` to `revision`."""
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def main(argv: list[str]) -> int:
    """CLI: `python -m shared.db.migrate [upgrade|current|head]`."""
    from shared.db.engine import get_engine

    action = argv[0] if argv else "upgrade"
    if action == "upgrade":
        upgrade(get_engine())
        print(f"database at {current(get_engine())}")
    elif action == "current":
        print(current(get_engine()))
    elif action == "head":
        print(head())
    else:
        print(f"unknown action {action!r}; use upgrade, current or head", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
