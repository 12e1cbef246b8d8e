"""Serving a simulator (any WSGI app) over HTTP on 127.0.0.1 in a daemon thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

App = TypeVar("App")


class QuietHandler(WSGIRequestHandler):
    # The access log would print signed query strings, OAuth states and nonces into the output.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class OwnDateHandler(QuietHandler):
    # For a simulator that writes its own `Date` (its business clock): the base class would add
    # a second one, from the real clock.
    def send_response(self, code: int, message: str | None = None) -> None:
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())


@dataclass
class RunningSimulator(Generic[App]):
    """A simulator being served; `url` is its host root; `close()` (or `with`) stops it."""

    simulator: App
    server: BaseWSGIServer
    thread: threading.Thread
    url: str

    @property
    def discovery_url(self) -> str:
        """The OpenID discovery document (meaningful for the Google simulator)."""
        return f"{self.url}/.well-known/openid-configuration"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSimulator[App]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def bind(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, own_date: bool = False
) -> tuple[BaseWSGIServer, str]:
    """A server for `app` on host:port (0: a free port), not yet serving, and its URL."""
    handler = OwnDateHandler if own_date else QuietHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    return server, f"http://{host}:{server.server_port}"


def start(app: App, server: BaseWSGIServer, url: str, name: str) -> RunningSimulator[App]:
    """Serve `app` on `server` from a daemon thread named `name`."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return RunningSimulator(app, server, thread, url)
