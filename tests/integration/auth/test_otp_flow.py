"""Email OTP sign-in through the `auth` function, real PostgreSQL and a local SMTP sink."""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from shared.config import get_settings
from shared.db.models import OtpCode, User
from shared.observability import CloudLoggingFormatter
from tests.conftest import function_client

REQUEST = "/api/v1/auth/otp/request"
VERIFY = "/api/v1/auth/otp/verify"
REFUSED = "the code is wrong or has expired; request a new one"
COOKIE = "coinfrs_refresh"
# Every run has a database of its own, so distinct addresses within the run are enough.
_CLIENT_IPS = (f"10.9.{n // 256}.{n % 256}" for n in itertools.count(1))


@pytest.fixture
def auth():
    """The `auth` function, called from an IP of its own so per-IP counts never cross tests."""
    client = function_client("auth")
    client.environ_base["REMOTE_ADDR"] = next(_CLIENT_IPS)
    return client


@pytest.fixture
def address() -> str:
    return f"otp-{uuid.uuid4().hex[:12]}@example.com"


def _request(client, email: str):
    return client.post(REQUEST, json={"data": {"email": email}})


def _verify(client, email: str, code: str):
    return client.post(VERIFY, json={"data": {"email": email, "code": code}})


def _code(sink, email: str) -> str:
    """The code of the next mail to `email`."""
    sink.wait_for(email)
    return sink.codes_for(email)[-1]


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _refresh_cookie(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))


def _rows(engine, email: str) -> list:
    with engine.connect() as connection:
        return connection.execute(
            select(OtpCode).where(OtpCode.email == email).order_by(OtpCode.created_at)
        ).all()


def _refused(response) -> None:
    body = response.get_json()
    assert response.status_code == 401
    assert body["error"]["code"] == "AUTHENTICATION_ERROR"
    assert body["error"]["message"] == REFUSED


def test_sign_in_with_an_emailed_code(auth, smtp_sink, address, engine):
    response = _request(auth, address)
    body = response.get_json()
    assert response.status_code == 202
    assert body["success"] is True and body["data"] == {"status": "accepted"}

    mail = smtp_sink.wait_for(address)
    assert mail["Subject"] == "Your Coinfrs sign-in code"
    assert mail["From"] == get_settings().smtp_from
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    code = smtp_sink.codes_for(address)[0]
    for part in (plain.get_content(), html.get_content()):
        assert code in part and "5 minutes" in part and "ignore" in part

    signed_in = _verify(auth, address, code)
    data = signed_in.get_json()["data"]
    assert signed_in.status_code == 200
    assert data["token_type"] == "Bearer" and data["expires_in"] == 900 and data["access_token"]
    assert data["user"]["email"] == address
    cookie = _refresh_cookie(signed_in)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/api/v1/auth" in cookie
    with engine.connect() as connection:
        assert (
            connection.execute(
                select(func.count()).select_from(User).where(User.email == address)
            ).scalar_one()
            == 1
        )

    _request(auth, address)
    again = _verify(auth, address, _code(smtp_sink, address))
    assert again.status_code == 200
    assert again.get_json()["data"]["user"]["id"] == data["user"]["id"]


def test_the_address_is_normalised(auth, smtp_sink, address):
    assert _request(auth, f"  {address.upper()} ").status_code == 202
    code = _code(smtp_sink, address)
    assert _verify(auth, address.title(), code).get_json()["data"]["user"]["email"] == address


def test_an_expired_code_is_refused(auth, smtp_sink, address, engine):
    _request(auth, address)
    code = _code(smtp_sink, address)
    with engine.begin() as connection:
        connection.execute(
            update(OtpCode)
            .where(OtpCode.email == address)
            .values(expires_at=func.now() - timedelta(seconds=1))
        )
    _refused(_verify(auth, address, code))


def test_a_code_works_once(auth, smtp_sink, address):
    _request(auth, address)
    code = _code(smtp_sink, address)
    assert _verify(auth, address, code).status_code == 200
    _refused(_verify(auth, address, code))


def test_five_wrong_codes_kill_the_code(auth, smtp_sink, address, engine):
    _request(auth, address)
    code = _code(smtp_sink, address)
    for _ in range(5):
        _refused(_verify(auth, address, _wrong(code)))
    # Each failure was committed although its call failed.
    assert _rows(engine, address)[-1].failed_attempts == 5
    _refused(_verify(auth, address, code))


def test_four_wrong_codes_leave_the_code_usable(auth, smtp_sink, address):
    _request(auth, address)
    code = _code(smtp_sink, address)
    for _ in range(4):
        _refused(_verify(auth, address, _wrong(code)))
    assert _verify(auth, address, code).status_code == 200


def test_a_new_code_supersedes_the_old_one(auth, smtp_sink, address):
    _request(auth, address)
    first = _code(smtp_sink, address)
    second = first
    while second == first:  # two equal random codes would prove nothing
        _request(auth, address)
        second = _code(smtp_sink, address)
    _refused(_verify(auth, address, first))
    assert _verify(auth, address, second).status_code == 200


def test_a_code_only_opens_its_own_address(auth, smtp_sink, address):
    other = "other-" + address
    _request(auth, address)
    _request(auth, other)
    code = _code(smtp_sink, address)
    if code != _code(smtp_sink, other):
        _refused(_verify(auth, other, code))


def test_the_sixth_request_for_an_address_is_rate_limited(auth, smtp_sink, address, engine):
    for _ in range(5):
        assert _request(auth, address).status_code == 202
    limited = _request(auth, address)
    body = limited.get_json()
    assert limited.status_code == 429
    assert body["error"]["code"] == "RATE_LIMIT_ERROR"
    assert 895 <= int(limited.headers["Retry-After"]) <= 900
    assert len(_rows(engine, address)) == 5 and len(smtp_sink.to(address)) == 5

    # Retry-After counts down to the moment the oldest request leaves the 15-minute window.
    oldest = _rows(engine, address)[0].id
    with engine.begin() as connection:
        connection.execute(
            update(OtpCode)
            .where(OtpCode.id == oldest)
            .values(created_at=func.now() - timedelta(minutes=14))
        )
    assert 55 <= int(_request(auth, address).headers["Retry-After"]) <= 60
    with engine.begin() as connection:
        connection.execute(
            update(OtpCode)
            .where(OtpCode.id == oldest)
            .values(created_at=func.now() - timedelta(minutes=15, seconds=1))
        )
    assert _request(auth, address).status_code == 202


def test_requests_per_ip_are_limited(auth, smtp_sink, address, engine):
    ip = auth.environ_base["REMOTE_ADDR"]
    with engine.begin() as connection:
        connection.execute(
            insert(OtpCode),
            [
                {
                    "email": f"{n}-{address}",
                    "code_hash": "0" * 64,
                    "requested_ip": ip,
                    "expires_at": datetime.now(UTC),
                }
                for n in range(100)
            ],
        )
    limited = _request(auth, address)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "RATE_LIMIT_ERROR"
    assert int(limited.headers["Retry-After"]) > 0
    assert smtp_sink.to(address) == []
    # The same address from another IP is fine: it was the IP that was over its limit.
    auth.environ_base["REMOTE_ADDR"] = "192.0.2.1"
    assert _request(auth, address).status_code == 202


def test_known_and_unknown_addresses_get_the_same_reply(auth, smtp_sink, address, engine):
    unknown = "nobody-" + address
    with engine.begin() as connection:
        connection.execute(insert(User).values(email=address))
    known_reply, unknown_reply = _request(auth, address), _request(auth, unknown)
    assert known_reply.status_code == unknown_reply.status_code == 202

    def without_meta(response) -> bytes:
        body = json.loads(response.get_data())
        body.pop("meta")
        return json.dumps(body).encode()

    assert without_meta(known_reply) == without_meta(unknown_reply)
    known_mail, unknown_mail = smtp_sink.wait_for(address), smtp_sink.wait_for(unknown)
    assert known_mail["Subject"] == unknown_mail["Subject"]
    known_text = known_mail.get_body(("plain",)).get_content()
    unknown_text = unknown_mail.get_body(("plain",)).get_content()
    assert known_text.replace(smtp_sink.codes_for(address)[0], "") == unknown_text.replace(
        smtp_sink.codes_for(unknown)[0], ""
    )


def test_smtp_down_is_503_and_keeps_nothing(auth, smtp_sink, address, engine):
    smtp_sink.stop()
    response = _request(auth, address)
    body = response.get_json()
    assert response.status_code == 503
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["error"]["details"]["dependency"] == "smtp"
    assert body["error"]["message"] == "the sign-in email could not be sent; try again"
    assert _rows(engine, address) == []


def test_a_refused_mail_is_503_and_the_previous_code_still_works(auth, smtp_sink, address, engine):
    _request(auth, address)
    code = _code(smtp_sink, address)
    smtp_sink.reject_with = "554 5.7.1 relay-secret-detail for smtp-user"
    response = _request(auth, address)
    assert response.status_code == 503
    assert "relay-secret-detail" not in response.get_data(as_text=True)
    assert len(_rows(engine, address)) == 1
    smtp_sink.reject_with = None
    assert _verify(auth, address, code).status_code == 200


@pytest.mark.parametrize(
    ("path", "data", "field"),
    [
        (REQUEST, {"email": "not-an-address"}, "data.email"),
        (REQUEST, {}, "data.email"),
        (VERIFY, {"email": "a@example.com", "code": "12345"}, "data.code"),
        (VERIFY, {"email": "a@example.com", "code": "1234567"}, "data.code"),
        (VERIFY, {"email": "a@example.com", "code": "12a456"}, "data.code"),
        (VERIFY, {"email": "a@example.com", "code": 123456}, "data.code"),
    ],
)
def test_malformed_bodies_are_422(auth, path, data, field):
    response = auth.post(path, json={"data": data})
    body = response.get_json()
    assert response.status_code == 422
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert field in [error["field"] for error in body["error"]["details"]["errors"]]


def test_unknown_fields_are_422_naming_them(auth):
    response = auth.post(REQUEST, json={"data": {"email": "a@example.com", "admin": True}})
    body = response.get_json()
    assert response.status_code == 422
    assert body["error"]["details"]["unknown_fields"] == ["data.admin"]


def test_concurrent_requests_cannot_pass_the_limit(address, engine):
    from shared.errors import RateLimited
    from shared.services import otp

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, to: str, subject: str, text: str, html: str) -> None:
            self.sent.append(to)

    mailer, outcomes = Recorder(), []
    start = threading.Barrier(10)

    def request() -> None:
        start.wait()
        try:
            otp.request_code(get_settings(), mailer, address, "198.51.100.9")
            outcomes.append("sent")
        except RateLimited:
            outcomes.append("limited")

    threads = [threading.Thread(target=request) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["limited"] * 5 + ["sent"] * 5
    assert len(mailer.sent) == 5 and len(_rows(engine, address)) == 5


def test_concurrent_wrong_guesses_are_all_counted(auth, smtp_sink, address, engine):
    _request(auth, address)
    code = _code(smtp_sink, address)
    start = threading.Barrier(8)
    statuses: list[int] = []

    def guess(client) -> None:
        start.wait()
        statuses.append(_verify(client, address, _wrong(code)).status_code)

    threads = [threading.Thread(target=guess, args=(function_client("auth"),)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [401] * 8
    assert _rows(engine, address)[-1].failed_attempts == 5
    _refused(_verify(auth, address, code))


def test_no_code_token_or_secret_in_the_logs(auth, smtp_sink, address, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(CloudLoggingFormatter())
    logging.getLogger().addHandler(handler)
    try:
        _request(auth, address)
        code = _code(smtp_sink, address)
        _verify(auth, address, _wrong(code))
        signed_in = _verify(auth, address, code)
        _verify(auth, address, code)
    finally:
        logging.getLogger().removeHandler(handler)
    access = signed_in.get_json()["data"]["access_token"]
    refresh = _refresh_cookie(signed_in).split(";", 1)[0].split("=", 1)[1]
    logged = caplog.text + written.getvalue() + capsys.readouterr().out
    ours = [r for r in caplog.records if r.name.startswith("coinfrs")]
    ours_text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in ours)
    assert "sign-in code sent" in ours_text and "sign-in code refused" in ours_text
    assert "wrong_code" in ours_text and "consumed" in ours_text
    # The code as a number of its own: any 6 digits of a timestamp or a hash are not a leak.
    assert not re.search(rf"(?<!\d){code}(?!\d)", logged + ours_text)
    for secret in (access, refresh, get_settings().secret_key):
        assert secret not in logged
        assert secret not in ours_text
    assert address not in ours_text
