"""Health checks: the process, the database (reachable, schema current), the message bus."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from shared import __version__
from shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)


def liveness() -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "time": datetime.now(UTC)}


def database() -> dict[str, Any]:
    """The database answers and its schema is at the migration head."""
    from shared.db import migrate
    from shared.db.engine import get_engine, ping

    try:
        engine = get_engine()
        ping(engine)
        current = migrate.current(engine)
    except DependencyUnavailable:
        raise
    except Exception as error:
        # The driver's text can name hosts and users; log it, reply with its kind only.
        log.warning("database check failed", extra={"error_type": type(error).__name__})
        raise DependencyUnavailable(
            "database", "the database cannot be reached", {"error_type": type(error).__name__}
        ) from None
    head = migrate.head()
    if current != head:
        raise DependencyUnavailable(
            "database",
            "the database schema is not at the latest migration",
            {"current_revision": current, "expected_revision": head},
        )
    return {"status": "ok", "database": "ok", "revision": current}


def queue(bus: Any, kind: str) -> dict[str, Any]:
    """The message bus (Pub/Sub and Cloud Tasks, or the local twin) accepts work."""
    bus.check()
    return {"status": "ok", "bus": kind}
