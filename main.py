"""Every Cloud Function target, re-exported from functions/ (each deploys with entry_point=<name>).

Targets load lazily: Cloud Functions imports this file for every target, and a target must load only
its own module (a provider's cold start never pays for another provider's code).
"""

from __future__ import annotations

import importlib
from typing import Any

# target name -> module under functions/ that defines it
TARGETS: dict[str, str] = {
    "auth": "functions.api.auth",
    "users": "functions.api.users",
    "portfolios": "functions.api.portfolios",
    "entities": "functions.api.entities",
    "datasources": "functions.api.datasources",
    "health": "functions.api.health",
    "openapi": "functions.api.openapi",
    "jobs": "functions.api.jobs",
    "transactions": "functions.api.transactions",
    "positions": "functions.api.positions",
    "binance_ingest": "functions.pipeline.binance",
    "binance_etl": "functions.pipeline.binance",
    "binance_reconcile": "functions.pipeline.binance",
    "schedule_daily": "functions.pipeline.schedule",
    "reconciliation": "functions.api.reconciliation",
}

__all__ = list(TARGETS)


def __getattr__(name: str) -> Any:
    if name not in TARGETS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    target = getattr(importlib.import_module(TARGETS[name]), name)
    # The framework resolves the target inside its new app's context: give that app our error
    # envelope too, for the requests its own URL rules refuse before the target runs.
    from flask import current_app, has_app_context

    if has_app_context():
        from shared.http.routing import serve_framework_errors_as_envelopes

        serve_framework_errors_as_envelopes(current_app)
    return target
