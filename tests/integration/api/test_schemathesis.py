"""Property-based requests generated from our own OpenAPI document: no route answers 5xx, and
every reply matches what the document says (status, content type, schema)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.local.devserver import build_app

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", build_app())


@pytest.fixture(scope="module")
def bearer(database_url):
    """A signed-in user, so generated requests reach past authentication."""
    from tests.conftest import SignedInUser

    return SignedInUser("schemathesis@example.com").headers


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_replies_match_the_document(case, bearer):
    case.call_and_validate(
        headers=bearer,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
