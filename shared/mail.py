"""Outgoing mail: the Mailer port, its SMTP adapter, and the messages Coinfrs sends."""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Protocol

from shared.auth.otp import CODE_LIFETIME
from shared.config import Settings
from shared.errors import DependencyUnavailable

log = logging.getLogger("coinfrs.mail")

SMTP_TIMEOUT_SECONDS = 10


class Mailer(Protocol):
    """Sends one message; raises DependencyUnavailable("smtp", ...) when it cannot."""

    def send(self, to: str, subject: str, text: str, html: str) -> None: ...


class SmtpMailer:
    """Mail over SMTP: a relay in production, the local sink (infra/local/smtp_sink.py) locally."""

    def __init__(self, settings: Settings) -> None:
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._sender = settings.smtp_from
        self._starttls = settings.smtp_starttls
        self._username = settings.smtp_username
        self._password = settings.smtp_password

    def send(self, to: str, subject: str, text: str, html: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        # An explicit domain: make_msgid would otherwise resolve this host's FQDN (a DNS lookup).
        domain = parseaddr(self._sender)[1].rpartition("@")[2] or "coinfrs.local"
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        try:
            with smtplib.SMTP(self._host, self._port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            # The server's reply can quote the login or the recipient: only the error's type is
            # logged, and the caller gets a message of our own.
            log.warning(
                "mail could not be sent",
                extra={
                    "dependency": "smtp",
                    "smtp_host": self._host,
                    "smtp_port": self._port,
                    "error_type": type(error).__name__,
                },
            )
            raise DependencyUnavailable("smtp", "the mail server could not be reached") from None


@dataclass(frozen=True)
class Mail:
    """One message's content: a subject, a plain-text body and its HTML alternative."""

    subject: str
    text: str
    html: str


def sign_in_code_mail(code: str) -> Mail:
    """The email carrying a sign-in code (identical whether or not the address has an account)."""
    minutes = int(CODE_LIFETIME.total_seconds() // 60)
    text = (
        f"Your Coinfrs sign-in code is {code}\n\n"
        f"It is valid for {minutes} minutes and can be used once.\n\n"
        "If you did not ask to sign in to Coinfrs, you can ignore this email: "
        "nobody can sign in without the code.\n"
    )
    shown = html.escape(code)
    body = (
        '<!doctype html><html><body style="font-family: sans-serif">'
        "<p>Your Coinfrs sign-in code is</p>"
        f'<p style="font-size: 28px; font-weight: bold; letter-spacing: 4px">{shown}</p>'
        f"<p>It is valid for {minutes} minutes and can be used once.</p>"
        "<p>If you did not ask to sign in to Coinfrs, you can ignore this email: "
        "nobody can sign in without the code.</p>"
        "</body></html>"
    )
    return Mail(subject="Your Coinfrs sign-in code", text=text, html=body)
