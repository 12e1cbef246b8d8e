"""A local SMTP server that keeps every message it receives (and can print sign-in codes).

The local stack runs one on SMTP_PORT so a developer can sign in with the code printed on the
console; the tests run one per test on a free port and read the codes from `.messages`.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import socket
import threading
import time
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

CODE = re.compile(r"\b(\d{6})\b")


class _Controller(Controller):
    """aiosmtpd's threaded controller, able to listen on port 0 (a free port)."""

    def _trigger_server(self) -> None:
        # The stock controller connects to `self.port` to finish starting up; with port 0 that is
        # the port the OS picked, known only once the server is bound. (aiosmtpd 1.4 internals.)
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """An SMTP server on `host:port` (0: a free port) that accepts and keeps every message."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, echo: bool = False) -> None:
        self.host = host
        self.port = port
        self.echo = echo
        self.messages: list[EmailMessage] = []
        # When set (e.g. "554 5.7.1 refused"), every message is refused with this reply.
        self.reject_with: str | None = None
        self._handed_out: set[int] = set()
        self._arrived = threading.Condition()
        self._controller: _Controller | None = None
        # aiosmtpd narrates every connection (and, at DEBUG, the data) on "mail.log".
        logging.getLogger("mail.log").setLevel(logging.WARNING)

    def start(self) -> SmtpSink:
        if self._controller is None:
            self._controller = _Controller(self, hostname=self.host, port=self.port)
            self._controller.start()
            self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: one message arrived."""
        if self.reject_with:
            return self.reject_with
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        if self.echo:
            for recipient in envelope.rcpt_tos:
                codes = self._codes(message)
                what = f"sign-in code {codes[0]}" if codes else f"“{message['Subject']}”"
                print(f"mail to {recipient}: {what}", flush=True)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """Every message received for `address`, oldest first."""
        wanted = address.lower()
        return [
            message
            for message in list(self.messages)
            if any(a.addr_spec.lower() == wanted for a in message["To"].addresses)
        ]

    def wait_for(self, to: str, timeout: float = 5.0) -> EmailMessage:
        """The next message for `to` that wait_for has not returned before, waiting if needed."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for message in self.to(to):
                    if id(message) not in self._handed_out:
                        self._handed_out.add(id(message))
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no new mail for {to} within {timeout:.1f}s")
                self._arrived.wait(remaining)

    def codes_for(self, to: str) -> list[str]:
        """The 6-digit codes of every message for `to`, oldest first."""
        return [code for message in self.to(to) for code in self._codes(message)[:1]]

    @staticmethod
    def _codes(message: EmailMessage) -> list[str]:
        part = message.get_body(preferencelist=("plain",))
        return CODE.findall(part.get_content()) if part is not None else []


def listening(host: str, port: int) -> bool:
    """Whether something already accepts connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
