"""Fixtures of the sign-in tests: a local SMTP server that the `auth` function mails to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.local.smtp_sink import SmtpSink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP sink on a free port; the `auth` function's mail goes there for the test."""
    import functions.api.auth as auth_function
    from shared.config import Runtime, get_settings, load_settings

    with SmtpSink() as sink, pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMTP_HOST", "127.0.0.1")
        patch.setenv("SMTP_PORT", str(sink.port))
        get_settings.cache_clear()
        # The module built its runtime (settings, mailer) at import: give it one that sees the sink.
        patch.setattr(auth_function, "runtime", Runtime(load_settings()))
        yield sink
    get_settings.cache_clear()
