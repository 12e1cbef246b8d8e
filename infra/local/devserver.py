"""One WSGI app serving every Cloud Function target the way GCP would, for local development.

`/api/v1/<group>/...` goes to the HTTP function of that route group with the full path (as the
load balancer in front of the functions forwards it); `/functions/<target>/...` reaches any target
directly, which is where the local bus and Cloud Tasks deliver pipeline messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import functions_framework
from werkzeug.wrappers import Request, Response

from functions.api import ROUTE_GROUPS
from shared.http.routing import API_PREFIX, Router

MAIN = Path(__file__).resolve().parents[2] / "main.py"
FUNCTIONS_PREFIX = "/functions"

_NO_ROUTES = Router("none")
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def targets() -> list[str]:
    """Every target main.py exports."""
    import ast

    tree = ast.parse(MAIN.read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "TARGETS":
            return list(ast.literal_eval(node.value))
    raise RuntimeError("main.py has no TARGETS table")


class DevServer:
    """Dispatches by path to one functions-framework app per target, each created on first use."""

    def __init__(self) -> None:
        self._apps: dict[str, WsgiApp] = {}
        self._targets = set(targets())

    def app_for(self, target: str) -> WsgiApp:
        if target not in self._apps:
            self._apps[target] = functions_framework.create_app(target, str(MAIN))
        return self._apps[target]

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if path.startswith(API_PREFIX + "/"):
            group = path[len(API_PREFIX) + 1 :].split("/", 1)[0]
            target = ROUTE_GROUPS.get(group)
            if target:
                return self.app_for(target)(environ, start_response)
        elif path.startswith(FUNCTIONS_PREFIX + "/"):
            target, _, rest = path[len(FUNCTIONS_PREFIX) + 1 :].partition("/")
            if target in self._targets:
                # Each function sees only its own path, as behind its own Cloud Run URL.
                environ = {
                    **environ,
                    "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + f"{FUNCTIONS_PREFIX}/{target}",
                    "PATH_INFO": "/" + rest,
                }
                return self.app_for(target)(environ, start_response)
        # Unknown routes get the same envelope, request id, CORS and access log as any other.
        response: Response = _NO_ROUTES.dispatch(Request(environ))
        return response(environ, start_response)


def build_app() -> DevServer:
    return DevServer()
