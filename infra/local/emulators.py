"""Start and stop the Pub/Sub and Cloud Tasks emulators, seed them from topology, serve targets."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from shared.messaging import topology

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


class EmulatorUnavailable(RuntimeError):
    """An emulator is not installed on this machine; the message says what is missing."""


def free_port() -> int:
    """A TCP port nothing listens on right now (the usual small race is accepted)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pubsub_emulator_bin() -> Path:
    """Google's Java Pub/Sub emulator, which ships as a gcloud component."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorUnavailable("gcloud is not on PATH (the Pub/Sub emulator ships with it)")
    binary = Path(os.path.realpath(gcloud)).parent.parent / (
        "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
    )
    if not binary.exists():
        raise EmulatorUnavailable(f"the Pub/Sub emulator is not installed: {binary} is missing")
    if shutil.which("java") is None:
        raise EmulatorUnavailable("java is not on PATH (the Pub/Sub emulator needs it)")
    return binary


def tasks_emulator_bin() -> Path:
    """gcloud-tasks-emulator, in its own venv because it needs protobuf<5."""
    default = REPO / ".venv-tasks" / "bin" / "gcloud-tasks-emulator"
    binary = Path(os.environ.get("TASKS_EMULATOR_BIN") or default)
    if not binary.exists():
        raise EmulatorUnavailable(
            f"gcloud-tasks-emulator is not installed: {binary} is missing "
            "(set TASKS_EMULATOR_BIN or create .venv-tasks)"
        )
    return binary


@contextmanager
def pubsub_emulator(port: int | None = None, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run the Pub/Sub emulator on 127.0.0.1; yields its "host:port"."""
    port = port or free_port()
    argv = [str(pubsub_emulator_bin()), "--host=127.0.0.1", f"--port={port}"]
    with _process(argv, port, "Pub/Sub emulator", startup_timeout):
        yield f"127.0.0.1:{port}"


@contextmanager
def tasks_emulator(
    port: int | None = None,
    startup_timeout: float = 30.0,
    max_retries: int = topology.MAX_RETRIES,
) -> Iterator[str]:
    """Run gcloud-tasks-emulator; yields "127.0.0.1:port".

    It binds every interface (no option to narrow it), acceptable for a local test tool.
    It neither dedupes task names, sends OIDC tokens, nor backs off between retries.
    """
    port = port or free_port()
    binary = str(tasks_emulator_bin())
    argv = [binary, "start", f"--port={port}", f"--max-retries={max_retries}", "-q"]
    with _process(argv, port, "Cloud Tasks emulator", startup_timeout):
        yield f"127.0.0.1:{port}"


@contextmanager
def _process(argv: list[str], port: int, what: str, startup_timeout: float) -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="coinfrs-emulator-") as workdir:
        log_path = Path(workdir) / "emulator.log"
        with open(log_path, "wb") as log:
            # Own session = own process group: the Pub/Sub launcher script forks java, and
            # killing only the script would leave java running.
            process = subprocess.Popen(
                argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            _wait_for_port(port, process, what, startup_timeout, log_path)
            logger.info("emulator started", extra={"emulator": what, "port": port})
            yield
        finally:
            _stop(process)


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, timeout: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue


def create_pubsub_topology(
    host: str,
    project: str,
    push_base_url: str,
    subscriptions: Iterable[topology.Subscription] = topology.SUBSCRIPTIONS,
) -> None:
    """Create every topic, its dead-letter topic, and push subscriptions to `<base>/<target>/`.

    The emulator stores subscription filters but ignores them: every subscription of a topic
    receives every message, whatever its provider attribute.
    """
    import grpc
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    publisher = pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host))
    )
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host))
    )
    base = push_base_url.rstrip("/")
    requests: list[tuple[Any, dict[str, Any]]] = []
    for topic in topology.TOPICS:
        for name in (topic, topology.dead_letter_topic(topic)):
            requests.append((publisher.create_topic, {"name": f"projects/{project}/topics/{name}"}))
    for subscription in subscriptions:
        request = {
            "name": f"projects/{project}/subscriptions/{subscription.name}",
            "topic": f"projects/{project}/topics/{subscription.topic}",
            "push_config": {"push_endpoint": f"{base}/{subscription.target}/"},
            "filter": subscription.filter,
        }
        requests.append((subscriber.create_subscription, {"request": request}))
    for call, kwargs in requests:
        with suppress(AlreadyExists):
            call(**kwargs)


def create_queues(
    host: str, project: str, location: str, queues: Iterable[topology.Queue] = topology.QUEUES
) -> None:
    """Create the Cloud Tasks queues topology declares (their rate limits are ignored here)."""
    import grpc
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    client = tasks_v2.CloudTasksClient(
        transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(host))
    )
    parent = f"projects/{project}/locations/{location}"
    for queue in queues:
        with suppress(AlreadyExists):
            client.create_queue(parent=parent, queue={"name": f"{parent}/queues/{queue.name}"})


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app (e.g. functions-framework targets) on 127.0.0.1; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass(frozen=True)
class ServedFunctions:
    """functions-framework targets served over HTTP at `<base_url>/<mount>/`."""

    base_url: str
    app: Any  # the WSGI app behind base_url, for in-process delivery
    # functions-framework executes the source afresh for each target, so each mount has its
    # own module (tests read a target's recorded state there).
    modules: Mapping[str, ModuleType]


@contextmanager
def serve_functions(source: Path, mounts: Mapping[str, str]) -> Iterator[ServedFunctions]:
    """Serve `mounts` (URL segment -> target function in `source`) in one HTTP server."""
    import functions_framework
    from werkzeug.exceptions import NotFound
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    apps, modules = {}, {}
    saved_path, name = list(sys.path), Path(source).stem
    saved_module = sys.modules.get(name)
    try:
        for mount, target in mounts.items():
            apps[f"/{mount}"] = functions_framework.create_app(target, str(source))
            modules[mount] = sys.modules[name]
    finally:
        # create_app registers the source as a top-level module and appends its folder to
        # sys.path; neither should leak into the importing process.
        sys.path[:] = saved_path
        if saved_module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = saved_module
    app = DispatcherMiddleware(NotFound(), apps)
    with serve_wsgi(app) as base_url:
        yield ServedFunctions(base_url, app, modules)
