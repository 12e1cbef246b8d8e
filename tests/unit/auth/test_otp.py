"""The pure parts of email OTP: codes, their keyed hash, usability, the rate decision, the mail."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from shared.auth import otp
from shared.mail import sign_in_code_mail

KEY = otp.code_key("unit-test-secret-" + "s" * 32)
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_codes_are_six_digits_uniformly_spread_leading_zeros_kept():
    codes = [otp.generate_code() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9]{6}", code) for code in codes)
    first_digits = Counter(code[0] for code in codes)
    # ~1000 per digit; bounds 6 standard deviations wide, so chance alone never fails this.
    assert set(first_digits) == set("0123456789")
    assert all(820 <= count <= 1180 for count in first_digits.values())
    assert len(set(codes)) > 9_000


def test_codes_come_from_the_csprng(monkeypatch):
    calls = []

    def randbelow(limit: int) -> int:
        calls.append(limit)
        return 42

    monkeypatch.setattr(otp.secrets, "randbelow", randbelow)
    assert otp.generate_code() == "000042"
    assert calls == [1_000_000]


def test_the_hash_binds_the_address_and_the_key():
    stored = otp.hash_code(KEY, "alice@example.com", "123456")
    assert otp.code_matches(KEY, "alice@example.com", "123456", stored)
    assert not otp.code_matches(KEY, "bob@example.com", "123456", stored)
    assert not otp.code_matches(KEY, "alice@example.com", "123457", stored)
    assert not otp.code_matches(otp.code_key("x" * 40), "alice@example.com", "123456", stored)
    # Not a plain digest: a million guesses offline must not find the code without the key.
    assert stored != hashlib.sha256(b"alice@example.com:123456").hexdigest()
    assert "123456" not in stored and len(stored) == 64


def test_the_comparison_is_constant_time(monkeypatch):
    compared = []
    real = otp.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(otp.hmac, "compare_digest", spy)
    stored = otp.hash_code(KEY, "a@example.com", "000001")
    assert otp.code_matches(KEY, "a@example.com", "000001", stored)
    assert compared == [(stored, stored)]


def test_the_log_fingerprint_is_stable_and_hides_the_address():
    first = otp.email_fingerprint("k" * 40, "alice@example.com")
    assert first == otp.email_fingerprint("k" * 40, "alice@example.com")
    assert first != otp.email_fingerprint("k" * 40, "bob@example.com")
    assert "alice" not in first


def _state(
    expires_in: timedelta = timedelta(minutes=5), failed: int = 0, consumed: bool = False
) -> otp.CodeState:
    return otp.CodeState(NOW + expires_in, failed, NOW if consumed else None)


@pytest.mark.parametrize(
    ("state", "rejection"),
    [
        (_state(), None),
        (_state(expires_in=timedelta(microseconds=1)), None),
        (_state(expires_in=timedelta(0)), otp.Rejection.EXPIRED),
        (_state(expires_in=-timedelta(seconds=1)), otp.Rejection.EXPIRED),
        (_state(failed=4), None),
        (_state(failed=5), otp.Rejection.ATTEMPTS_EXHAUSTED),
        (_state(consumed=True), otp.Rejection.CONSUMED),
        (None, otp.Rejection.NO_CODE),
    ],
)
def test_which_codes_can_still_be_tried(state, rejection):
    assert otp.unusable(state, NOW) is rejection


def test_the_constants_of_the_contract():
    limits = {
        "lifetime": otp.CODE_LIFETIME,
        "attempts": otp.MAX_FAILED_ATTEMPTS,
        "window": otp.RATE_WINDOW,
        "per_address": otp.MAX_REQUESTS_PER_EMAIL,
        "per_ip": otp.MAX_REQUESTS_PER_IP,
    }
    assert limits == {
        "lifetime": timedelta(minutes=5),
        "attempts": 5,
        "window": timedelta(minutes=15),
        "per_address": 5,
        "per_ip": 100,
    }


def _window(count: int, age: timedelta | None = timedelta(minutes=10)) -> otp.Window:
    return otp.Window(count, None if age is None else NOW - age)


@pytest.mark.parametrize(
    ("address", "ip", "wait"),
    [
        (_window(0, None), _window(0, None), None),
        (_window(4), _window(99), None),
        (_window(5), _window(0, None), 300),
        (_window(0, None), _window(100), 300),
        (_window(5, timedelta(minutes=14, seconds=59.5)), _window(0, None), 1),
        (_window(5, timedelta(seconds=1)), _window(0, None), 899),
        # Both over: the caller must wait for the later of the two.
        (_window(5, timedelta(minutes=14)), _window(100, timedelta(minutes=5)), 600),
    ],
)
def test_the_rate_decision(address, ip, wait):
    assert otp.request_retry_after(address, ip, NOW) == wait


def test_retry_after_is_never_zero():
    assert otp.retry_after(_window(5, timedelta(minutes=15)), 5, NOW) == 1
    assert otp.retry_after(otp.Window(5, None), 5, NOW) == 900


def test_the_mail_states_code_lifetime_single_use_and_ignore():
    mail = sign_in_code_mail("012345")
    assert mail.subject == "Your Coinfrs sign-in code"
    for body in (mail.text, mail.html):
        assert "012345" in body
        assert "5 minutes" in body and "used once" in body and "ignore" in body


def test_the_mail_escapes_what_it_interpolates():
    assert "<b>" not in sign_in_code_mail("<b>1</b>").html
    assert "&lt;b&gt;" in sign_in_code_mail("<b>1</b>").html
