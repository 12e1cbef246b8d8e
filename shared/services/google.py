"""Google sign-in: start (state, PKCE and nonce bound server-side) and finish (verify, sign in)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, update

from shared.auth import google
from shared.auth.keys import derive, keyed_hash
from shared.auth.tokens import TokenSigner
from shared.config import Settings
from shared.db.engine import unit_of_work
from shared.db.models import OAuthState
from shared.errors import AuthenticationFailed, DependencyUnavailable, ValidationFailed
from shared.services.auth import SignedIn, sign_in

logger = logging.getLogger(__name__)

STATE_LIFETIME = timedelta(minutes=10)
PROVIDER = "google"


@dataclass(frozen=True)
class _Pending:
    """What `start` bound to a state, read back once by `finish`."""

    code_verifier: str
    nonce: str
    redirect_uri: str


def _client(settings: Settings) -> tuple[str, str]:
    if not settings.google_client_id or not settings.google_client_secret:
        raise DependencyUnavailable(PROVIDER, "Google sign-in is not configured")
    return settings.google_client_id, settings.google_client_secret


def _state_hash(settings: Settings, state: str) -> str:
    # Only a keyed hash is stored: a leaked table row cannot be replayed as a callback.
    return keyed_hash(derive(settings.secret_key, "oauth-state"), state)


def start(settings: Settings, redirect_uri: str) -> tuple[str, str]:
    """The Google authorization URL for a new sign-in, and its `state`."""
    if redirect_uri not in settings.oauth_redirect_uris:
        raise ValidationFailed(
            "redirect_uri is not allowed",
            {"redirect_uri": "must be one of OAUTH_REDIRECT_URIS"},
        )
    client_id, _ = _client(settings)
    # Before anything is stored: an unreachable Google leaves no half-started sign-in behind.
    provider = google.discover(settings.google_discovery_url)
    state = secrets.token_urlsafe(32)
    verifier = google.new_code_verifier()
    nonce = secrets.token_urlsafe(32)
    with unit_of_work() as db:
        db.add(
            OAuthState(
                state_hash=_state_hash(settings, state),
                code_verifier=verifier,
                nonce=nonce,
                redirect_uri=redirect_uri,
                expires_at=datetime.now(UTC) + STATE_LIFETIME,
            )
        )
    url = google.authorization_url(
        provider, client_id, redirect_uri, state, nonce, google.code_challenge(verifier)
    )
    logger.info("google sign-in started", extra={"event": "google_sign_in_started"})
    return url, state


def _consume(settings: Settings, state: str) -> _Pending:
    """Spend `state` for good, in its own committed transaction, so it can never be replayed even
    when the rest of the sign-in fails."""
    with unit_of_work() as db:
        row = db.execute(
            update(OAuthState)
            .where(
                OAuthState.state_hash == _state_hash(settings, state),
                OAuthState.consumed_at.is_(None),
                OAuthState.expires_at > func.now(),
            )
            .values(consumed_at=func.now())
            .returning(OAuthState.code_verifier, OAuthState.nonce, OAuthState.redirect_uri)
        ).one_or_none()
    if row is None:
        logger.info(
            "google sign-in refused",
            extra={"event": "google_sign_in_refused", "reason": "unknown, expired or used state"},
        )
        raise AuthenticationFailed("sign-in expired or was already used; start again")
    return _Pending(*row)


def finish(settings: Settings, tokens: TokenSigner, code: str, state: str) -> SignedIn:
    """Complete a sign-in begun by `start`: check `state`, redeem `code`, verify the id_token,
    then sign in the user with that verified email (linked to the Google account)."""
    # The state first: a forged callback is a 401 whatever the configuration (a live state
    # implies Google was configured when it was issued).
    pending = _consume(settings, state)
    client_id, client_secret = _client(settings)
    try:
        provider = google.discover(settings.google_discovery_url)
        id_token = google.exchange_code(
            provider, client_id, client_secret, code, pending.redirect_uri, pending.code_verifier
        )
        account = google.verify_id_token(provider, id_token, client_id, pending.nonce)
    except AuthenticationFailed as error:
        logger.info(
            "google sign-in refused",
            extra={"event": "google_sign_in_refused", "reason": error.message},
        )
        raise
    with unit_of_work() as db:
        session = sign_in(db, settings, tokens, account.email, identity=(PROVIDER, account.subject))
    logger.info(
        "google sign-in",
        extra={"event": "google_sign_in", "outcome": "signed_in", "user_id": str(session.user.id)},
    )
    return session
