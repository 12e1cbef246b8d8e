"""The pure parts of Google sign-in: PKCE, the authorization URL, id_token claim checks, caches."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import KeySet

from infra.simulators.google_oidc import GoogleOidcSimulator, Identity
from shared.auth import google
from shared.errors import AuthenticationFailed, DependencyUnavailable

CLIENT_ID = "unit.apps.googleusercontent.com"
ISSUER = "https://accounts.google.com"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def simulator() -> GoogleOidcSimulator:
    return GoogleOidcSimulator(client_id=CLIENT_ID, issuer=ISSUER, clock=lambda: NOW)


@pytest.fixture(scope="module")
def keys(simulator: GoogleOidcSimulator) -> KeySet:
    return KeySet.import_key_set({"keys": [key.jwk() for key in simulator.keys]})


def token(simulator: GoogleOidcSimulator, **overrides: object) -> str:
    return simulator.id_token(
        CLIENT_ID, "the-nonce", Identity("ada@coinfrs.test"), overrides=overrides
    )


def check(simulator: GoogleOidcSimulator, keys: KeySet, now: float = NOW, **overrides: object):
    issuers = google.issuers_of(google.Provider(ISSUER, "", "", ""))
    return google.check_id_token(
        token(simulator, **overrides), keys, issuers, CLIENT_ID, "the-nonce", now=now
    )


def reason(error: pytest.ExceptionInfo[AuthenticationFailed]) -> str:
    return error.value.details["reason"]


def test_pkce_matches_rfc_7636_appendix_b():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert google.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_code_verifiers_are_long_fresh_and_unreserved():
    verifiers = {google.new_code_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
        )


def test_authorization_url_asks_for_the_code_flow_with_pkce():
    provider = google.Provider(ISSUER, "https://accounts.google.com/o/oauth2/v2/auth", "", "")
    url = google.authorization_url(provider, CLIENT_ID, "https://app/cb?x=1", "st", "no", "ch")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == provider.authorization_endpoint
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "https://app/cb?x=1",
        "scope": "openid email profile",
        "state": "st",
        "nonce": "no",
        "code_challenge": "ch",
        "code_challenge_method": "S256",
        "prompt": "select_account",
    }


def test_a_good_token_names_the_account(simulator, keys):
    account = check(simulator, keys)
    assert account == google.GoogleAccount(Identity("ada@coinfrs.test").sub, "ada@coinfrs.test")


def test_google_writes_its_issuer_two_ways(simulator, keys):
    assert check(simulator, keys, iss="accounts.google.com").email == "ada@coinfrs.test"


def test_expiry_allows_a_minute_of_clock_skew(simulator, keys):
    lifetime = 3600
    assert check(simulator, keys, now=NOW + lifetime + 59).email == "ada@coinfrs.test"
    with pytest.raises(AuthenticationFailed) as error:
        check(simulator, keys, now=NOW + lifetime + 61)
    assert reason(error) == "the id_token has expired"


def test_a_token_from_the_future_is_refused(simulator, keys):
    with pytest.raises(AuthenticationFailed) as error:
        check(simulator, keys, now=NOW - 120)
    assert reason(error) == "the id_token's iat is not valid"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"alg": "HS256"}, "the id_token is not signed with RS256"),
        ({"alg": "none"}, "the id_token is not signed with RS256"),
        ({"alg": "RS512"}, "the id_token is not signed with RS256"),
        ({"aud": [CLIENT_ID, "other"], "omit": ["azp"]}, "the id_token lacks azp"),
        ({"aud": ["other", "another"]}, "the id_token's aud is not valid"),
        ({"email_verified": "true"}, "Google has not verified this email address"),
        ({"omit": ["email_verified"]}, "Google has not verified this email address"),
        ({"omit": ["sub"]}, "the id_token lacks sub"),
        ({"omit": ["exp"]}, "the id_token lacks exp"),
        ({"omit": ["nonce"]}, "the id_token lacks nonce"),
        ({"iss": "https://accounts.google.com.evil"}, "the id_token's iss is not valid"),
    ],
)
def test_check_id_token_refuses(simulator, keys, overrides, expected):
    """check_id_token holds on its own, without verify_id_token's early alg check."""
    with pytest.raises(AuthenticationFailed) as error:
        check(simulator, keys, **overrides)
    assert reason(error) == expected
    assert "eyJ" not in error.value.message  # never the token itself


def test_several_audiences_with_our_azp_are_accepted(simulator, keys):
    assert check(simulator, keys, aud=[CLIENT_ID, "other"]).email == "ada@coinfrs.test"


def test_the_cache_forgets_after_its_ttl():
    now = [0.0]
    cache = google._TtlCache(10, clock=lambda: now[0])
    cache.put("k", "v")
    now[0] = 10
    assert cache.get("k") == "v"
    now[0] = 10.5
    assert cache.get("k") is None


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_an_unreachable_token_endpoint_is_a_dependency_failure():
    provider = google.Provider(ISSUER, "", f"{_dead_url()}/token", "")
    with pytest.raises(DependencyUnavailable) as error:
        google.exchange_code(provider, CLIENT_ID, "secret", "code", "https://app/cb", "v" * 43)
    assert error.value.dependency == "google"
    assert "secret" not in error.value.message


def test_unreachable_signing_keys_are_a_dependency_failure(simulator):
    google.clear_caches()
    provider = google.Provider(ISSUER, "", "", f"{_dead_url()}/oauth2/v3/certs")
    with pytest.raises(DependencyUnavailable):
        google.verify_id_token(provider, token(simulator), CLIENT_ID, "the-nonce")
