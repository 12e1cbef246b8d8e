"""terraform/ agrees with the code: targets, topics, queues, the daily job, least privilege."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2.utils import SerializationOptions

from functions.api import ROUTE_GROUPS
from shared.http.routing import API_PREFIX
from shared.messaging import topology

REPO = Path(__file__).resolve().parents[3]
TERRAFORM = REPO / "terraform"
MAIN_PY = REPO / "main.py"

# `${local.a.b}`, `${each.key}`, `${each.value.a}`: the references a map-driven resource uses.
REFERENCE = re.compile(r"\$\{(local|each)\.([\w.]+)\}")
# `${local.x}` or `${toset(local.x)}`: the for_each forms the tests know how to expand.
FOR_EACH_LOCAL = re.compile(r"\$\{(?:toset\()?local\.(\w+)\)?\}")
POWERFUL_ROLE = re.compile(r"^roles/(owner|editor)$|admin", re.IGNORECASE)
# `{for name, f in local.functions : name => f if f.kind == "<kind>"}`, optionally gated with
# `&& var.api_domain != null`: the filter the load-balancer tests know how to expand.
KIND_FILTER = re.compile(
    r'\$\{\{for (\w+), (\w+) in local\.functions : \1 => \2 if \2\.kind == "(?P<kind>\w+)"'
    r"(?P<gated> && var\.api_domain != null)?\}\}"
)
# `${google_compute_backend_service.api[<index>].id}`: a URL map target.
BACKEND = re.compile(r"\$\{google_compute_backend_service\.api\[(.+)\]\.id\}")
# The count of every load-balancer resource that exists once, and only with a domain.
WITH_API_DOMAIN = "${var.api_domain == null ? 0 : 1}"


class Terraform:
    """Every terraform/*.tf merged: resources by address, locals by name."""

    def __init__(self, directory: Path) -> None:
        options = SerializationOptions(
            strip_string_quotes=True, explicit_blocks=False, with_comments=False
        )
        self.resources: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        for path in sorted(directory.glob("*.tf")):
            with path.open() as f:
                parsed = hcl2.load(f, serialization_options=options)
            for block in parsed.get("locals", []):
                self.locals.update(block)
            for block in parsed.get("resource", []):
                for kind, named in block.items():
                    for name, body in named.items():
                        self.resources[f"{kind}.{name}"] = body

    def instances(self, address: str) -> dict[str, Any]:
        """each.key -> each.value of a resource whose for_each is a local map or list."""
        match = FOR_EACH_LOCAL.fullmatch(self.resources[address]["for_each"])
        assert match, f"{address}: for_each is not a local the test can expand"
        collection = self.locals[match.group(1)]
        return {item: item for item in collection} if isinstance(collection, list) else collection

    def resolve(self, value: Any, key: str | None = None, item: Any = None) -> Any:
        """The literal that local and each references in `value` stand for."""

        def lookup(root: str, path: str) -> Any:
            if root == "each":
                if path == "key":
                    return key
                target, parts = item, path.split(".")[1:]  # past "value"
            else:
                target, parts = self.locals, path.split(".")
            for part in parts:
                target = target[part]
            return target

        if not isinstance(value, str):
            return value
        if whole := REFERENCE.fullmatch(value):
            return lookup(*whole.groups())
        return REFERENCE.sub(lambda m: str(lookup(*m.groups())), value)


def exported_names(path: Path) -> set[str]:
    """The targets a module exports: its `__all__` when it has one, else its public top-level names.

    `__all__` may be a literal or `list(TABLE)` of a literal table, as in a main.py that imports
    each target lazily; without it, from-imports, defs and assignments count (not `_private` ones).
    """
    literals: dict[str, Any] = {}
    names: set[str] = set()
    declared_all: ast.expr | None = None
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in (t for t in targets if isinstance(t, ast.Name)):
                names.add(target.id)
                if target.id == "__all__":
                    declared_all = node.value
                with contextlib.suppress(ValueError):  # not a literal
                    literals[target.id] = ast.literal_eval(node.value)
    if declared_all is None:
        return {name for name in names if not name.startswith("_")}
    if "__all__" in literals:
        return set(literals["__all__"])
    table = declared_all.args[0] if isinstance(declared_all, ast.Call) else declared_all
    assert isinstance(table, ast.Name) and table.id in literals, (
        f"{path}: __all__ must be a literal or list(<literal table>)"
    )
    return set(literals[table.id])


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(TERRAFORM)


@pytest.fixture(scope="module")
def main_targets() -> set[str]:
    assert MAIN_PY.is_file(), f"{MAIN_PY} is missing: it exports every Cloud Function target"
    return exported_names(MAIN_PY)


def declared_entry_points(tf: Terraform) -> dict[str, str]:
    address = "google_cloudfunctions2_function.function"
    entry_point = tf.resources[address]["build_config"][0]["entry_point"]
    return {key: tf.resolve(entry_point, key, item) for key, item in tf.instances(address).items()}


def test_every_declared_function_runs_a_target_main_py_exports(tf, main_targets):
    unknown = {key: ep for key, ep in declared_entry_points(tf).items() if ep not in main_targets}
    assert not unknown, f"functions whose entry point main.py does not export: {unknown}"


def test_every_target_main_py_exports_is_deployed(tf, main_targets):
    missing = main_targets - set(declared_entry_points(tf).values())
    assert not missing, f"main.py targets without a function in terraform/functions.tf: {missing}"


def test_every_topic_has_a_dead_letter_topic_kept_for_a_week(tf):
    def names(address: str) -> set[str]:
        body = tf.resources[address]
        return {tf.resolve(body["name"], key) for key in tf.instances(address)}

    assert names("google_pubsub_topic.topic") == set(topology.TOPICS)
    dead_letters = {topology.dead_letter_topic(topic) for topic in topology.TOPICS}
    assert names("google_pubsub_topic.dead_letter") == dead_letters
    keeper = tf.resources["google_pubsub_subscription.dead_letter"]
    assert keeper["topic"] == "${google_pubsub_topic.dead_letter[each.key].id}"
    assert keeper["message_retention_duration"] == f"{7 * 24 * 3600}s"
    assert names("google_pubsub_subscription.dead_letter") == dead_letters


def test_queues_match_topology(tf):
    address = "google_cloud_tasks_queue.queue"
    body = tf.resources[address]
    rate, retry = body["rate_limits"][0], body["retry_config"][0]
    declared = {
        tf.resolve(body["name"], key, item): (
            tf.resolve(rate["max_dispatches_per_second"], key, item),
            tf.resolve(rate["max_concurrent_dispatches"], key, item),
        )
        for key, item in tf.instances(address).items()
    }
    expected = {
        queue.name: (queue.max_dispatches_per_second, queue.max_concurrent_dispatches)
        for queue in topology.QUEUES
    }
    assert declared == expected
    assert tf.resolve(retry["max_attempts"]) == topology.MAX_RETRIES + 1
    assert tf.resolve(retry["min_backoff"]) == f"{topology.MIN_BACKOFF_SECONDS}s"
    assert tf.resolve(retry["max_backoff"]) == f"{topology.MAX_BACKOFF_SECONDS}s"


def test_daily_job_calls_schedule_daily_at_0030_utc_with_an_oidc_token(tf):
    job = tf.resources["google_cloud_scheduler_job.daily"]
    assert (job["schedule"], job["time_zone"]) == ("30 0 * * *", "Etc/UTC")
    assert tf.locals["daily_job_target"] == "schedule_daily"
    # Declared for the target only, and only once the target is a function.
    assert "contains(keys(local.functions), local.daily_job_target)" in job["for_each"]
    assert "toset([local.daily_job_target])" in job["for_each"]
    target = job["http_target"][0]
    assert target["http_method"] == "POST"
    assert target["uri"] == "${google_cloudfunctions2_function.function[each.key].url}"
    oidc = target["oidc_token"][0]
    assert oidc["service_account_email"] == "${google_service_account.scheduler.email}"
    assert "google_service_account.scheduler" in tf.resources
    schedule_daily = tf.locals["functions"].get("schedule_daily")
    if schedule_daily is not None:
        assert "scheduler" in schedule_daily["invoked_by"]


def test_kms_key_rotates_and_each_function_has_its_own_least_privileged_account(tf):
    key = tf.resources["google_kms_crypto_key.credentials"]
    assert key["rotation_period"] == f"{90 * 24 * 3600}s"
    assert key["lifecycle"][0]["prevent_destroy"] is True

    accounts = tf.resources["google_service_account.function"]
    assert accounts["for_each"] == "${local.functions}"
    functions = tf.resources["google_cloudfunctions2_function.function"]
    assert (
        functions["service_config"][0]["service_account_email"]
        == "${google_service_account.function[each.key].email}"
    )
    # account_id is "fn-<name>", and GCP allows 6 to 30 characters.
    too_long = [name for name in tf.locals["functions"] if not 6 <= len(f"fn-{name}") <= 30]
    assert not too_long, f"function names too long for a service account id: {too_long}"

    powerful = {
        name: role
        for name, f in tf.locals["functions"].items()
        for role in f["roles"]
        if POWERFUL_ROLE.search(role)
    }
    literal_grants = {
        address: body["role"]
        for address, body in tf.resources.items()
        if "google_service_account.function[" in str(body.get("member", ""))
        and not body["role"].startswith("${")
    }
    powerful |= {a: r for a, r in literal_grants.items() if POWERFUL_ROLE.search(r)}
    assert not powerful, f"function service accounts must not hold owner/editor/admin: {powerful}"


def test_terraform_is_formatted():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        env={**os.environ, "TF_CLI_CONFIG_FILE": "", "CHECKPOINT_DISABLE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def load_balanced(tf: Terraform, address: str) -> tuple[dict[str, Any], bool]:
    """The functions a per-function load-balancer resource is declared for, and whether it waits
    for var.api_domain."""
    match = FOR_EACH_LOCAL.fullmatch(tf.resources[address]["for_each"])
    assert match, f"{address}: for_each is not a local the test can expand"
    expression = tf.locals[match.group(1)]
    kind = KIND_FILTER.fullmatch(expression) if isinstance(expression, str) else None
    assert kind, f"{address}: for_each must filter local.functions on kind, not {expression!r}"
    functions = tf.locals["functions"]
    selected = {name: f for name, f in functions.items() if f["kind"] == kind.group("kind")}
    return selected, kind.group("gated") is not None


def url_map_routes(tf: Terraform) -> tuple[dict[str, str], str]:
    """Path pattern -> function whose backend the API's URL map sends it to, for the api_domain
    host; and the function that takes every other path."""
    url_map = tf.resources["google_compute_url_map.api"]
    [host_rule] = url_map["host_rule"]
    assert host_rule["hosts"] == ["${var.api_domain}"]
    [matcher] = [m for m in url_map["path_matcher"] if m["name"] == host_rule["path_matcher"]]

    def function_of(service: str, key: str | None = None, value: str | None = None) -> str:
        match = BACKEND.fullmatch(service)
        assert match, f"{service!r} is not a google_compute_backend_service.api backend"
        index = match.group(1)
        if index in ("path_rule.key", "path_rule.value"):
            return key if index == "path_rule.key" else value
        if index.startswith("local."):
            return tf.locals[index.removeprefix("local.")]
        return index.strip('"')

    # (rule, path_rule.key, path_rule.value): literal path_rule blocks and expanded dynamic ones.
    rules: list[tuple[dict[str, Any], Any, Any]] = [
        (rule, None, None) for rule in matcher.get("path_rule", [])
    ]
    for dynamic in matcher.get("dynamic", []):
        for block, body in dynamic.items():
            assert block == "path_rule", f"unexpected dynamic block {block} in the path matcher"
            match = FOR_EACH_LOCAL.fullmatch(body["for_each"])
            assert match, "the dynamic path_rule must iterate over a local"
            collection = tf.locals[match.group(1)]
            assert isinstance(collection, dict), "the dynamic path_rule must iterate over a map"
            rules += [(body["content"][0], key, value) for key, value in collection.items()]

    routes: dict[str, str] = {}
    for rule, key, value in rules:
        function = function_of(rule["service"], key, value)
        for template in rule["paths"]:
            if key is not None:
                template = template.replace("${path_rule.key}", key)
                template = template.replace("${path_rule.value}", value)
            path = tf.resolve(template)
            assert path not in routes, f"{path} is routed twice (GCP refuses the URL map)"
            routes[path] = function
    return routes, function_of(matcher["default_service"])


def test_url_map_sends_every_route_group_to_the_function_that_serves_it(tf):
    routes, default = url_map_routes(tf)
    entry_points = declared_entry_points(tf)
    routed = {path: entry_points.get(function) for path, function in routes.items()}
    expected = {
        path: target
        for segment, target in ROUTE_GROUPS.items()
        for path in (f"{API_PREFIX}/{segment}", f"{API_PREFIX}/{segment}/*")
    }
    assert routed == expected, "URL map path -> entry point differs from functions/api ROUTE_GROUPS"
    # Other paths reach an HTTP function, whose router answers them 404 NOT_FOUND.
    behind_load_balancer, _ = load_balanced(tf, "google_compute_backend_service.api")
    assert default in behind_load_balancer
    assert set(routes.values()) <= set(behind_load_balancer)


def test_every_http_function_has_a_serverless_neg_and_a_backend_service(tf):
    http = {name for name, f in tf.locals["functions"].items() if f["kind"] == "http"}
    assert http, "local.functions has no http function"

    neg_address = "google_compute_region_network_endpoint_group.api"
    negs, _ = load_balanced(tf, neg_address)
    assert set(negs) == http, f"{neg_address} is declared for {set(negs)}, not the http functions"
    neg = tf.resources[neg_address]
    assert neg["network_endpoint_type"] == "SERVERLESS"
    assert neg["region"] == "${var.region}"
    assert neg["cloud_run"][0]["service"] == (
        "${google_cloudfunctions2_function.function[each.key].service_config[0].service}"
    )

    backend_address = "google_compute_backend_service.api"
    backends, _ = load_balanced(tf, backend_address)
    assert set(backends) == http, f"{backend_address} is declared for {set(backends)}"
    backend = tf.resources[backend_address]
    assert backend["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    groups = [b["group"] for b in backend["backend"]]
    assert groups == ["${google_compute_region_network_endpoint_group.api[each.key].id}"]


def test_load_balancer_exists_only_with_api_domain_and_redirects_http_to_https(tf):
    resources = {
        address: body
        for address, body in tf.resources.items()
        if address.startswith("google_compute_") or address == "google_project_service.compute"
    }
    ungated = []
    for address, body in resources.items():
        if "for_each" in body:
            if not load_balanced(tf, address)[1]:
                ungated.append(address)
        elif body.get("count") != WITH_API_DOMAIN:
            ungated.append(address)
    assert not ungated, f"created even without var.api_domain: {ungated}"

    https = resources["google_compute_global_forwarding_rule.https"]
    http = resources["google_compute_global_forwarding_rule.http"]
    assert (https["port_range"], http["port_range"]) == ("443", "80")
    assert https["ip_address"] == http["ip_address"] == "${google_compute_global_address.api[0].id}"
    assert https["target"] == "${google_compute_target_https_proxy.api[0].id}"
    proxy = resources["google_compute_target_https_proxy.api"]
    assert proxy["url_map"] == "${google_compute_url_map.api[0].id}"
    assert proxy["ssl_certificates"] == ["${google_compute_managed_ssl_certificate.api[0].id}"]
    certificate = resources["google_compute_managed_ssl_certificate.api"]
    assert certificate["managed"][0]["domains"] == ["${var.api_domain}"]

    assert http["target"] == "${google_compute_target_http_proxy.http_redirect[0].id}"
    redirect_proxy = resources["google_compute_target_http_proxy.http_redirect"]
    assert redirect_proxy["url_map"] == "${google_compute_url_map.http_redirect[0].id}"
    redirect = resources["google_compute_url_map.http_redirect"]["default_url_redirect"][0]
    assert redirect["https_redirect"] is True

    # HTTP functions take the ingress the deployer chooses; event functions stay internal.
    function = tf.resources["google_cloudfunctions2_function.function"]
    assert function["service_config"][0]["ingress_settings"] == (
        '${each.value.kind == "http" ? var.api_ingress : "ALLOW_INTERNAL_ONLY"}'
    )


def test_push_subscriptions_match_topology(tf):
    from shared.messaging import topology

    declared = {
        name: (spec["topic"], spec["provider"], spec["function"])
        for name, spec in tf.locals["subscriptions"].items()
    }
    expected = {s.name: (s.topic, s.provider, s.target) for s in topology.SUBSCRIPTIONS}
    assert declared == expected
    for _, _, function in declared.values():
        assert "pubsub" in tf.locals["functions"][function]["invoked_by"]


def test_task_targets_are_invocable_by_cloud_tasks(tf):
    for provider in topology_providers():
        target = f"{provider}_ingest"
        if target in tf.locals["functions"]:
            assert "tasks" in tf.locals["functions"][target]["invoked_by"]


def topology_providers() -> tuple[str, ...]:
    from shared.messaging import topology

    return topology.PROVIDERS
