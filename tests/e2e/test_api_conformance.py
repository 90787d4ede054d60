"""End to end: every service's answers conform to its own OpenAPI document.

Schemathesis reads each service's ``/openapi.json`` from the running stack and sends generated
requests, valid and invalid, with a tenant's API key. The run is bounded (a fixed seed and a few
examples per operation) so that all five services finish in about two minutes. A server error,
an undocumented status code or content type, or a body that does not match its declared schema
fails the test, with schemathesis' report.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import eventually
from tests.e2e.test_flow import _key_works_everywhere
from tests.support.stack import Stack

SERVICES = ("trigger", "survey", "scoring", "alerting", "reporting")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    # The session's shared stack (tests/e2e/conftest.py): the generated requests carry this
    # module's own tenant's key, so they reach no other test's data.
    return shared_stack


@pytest.fixture(scope="module")
async def api_key(stack: Stack) -> str:
    trigger = stack.urls["trigger"]
    admin = {"X-Admin-Token": stack.admin_token}
    name = f"conformance-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=15) as client:
        created = await client.post(f"{trigger}/v1/admin/tenants", json={"name": name}, headers=admin)
        assert created.status_code == 201, created.text
        key = await client.post(f"{trigger}/v1/admin/tenants/{name}/api-keys", headers=admin)
        assert key.status_code == 201, key.text
        api_key = str(key.json()["api_key"])
        # The other services hear of the key over Kafka. Until they have, the trigger's export (which
        # asks each of them with the caller's key, and is told 401) answers 503: a server error
        # schemathesis reports, of a key minted a moment ago rather than of the API.
        auth = {"Authorization": f"Bearer {api_key}"}
        await eventually(lambda: _key_works_everywhere(client, stack, auth), within=30)
    return api_key


def run_schemathesis(base_url: str, api_key: str, workdir: Path) -> tuple[int, str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261201",
        # One worker: hypothesis' lambda descriptions are not thread-safe on Python 3.11.
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {api_key}",
        "--warnings",
        "off",
        "--no-color",
    ]
    # Its working directory: schemathesis keeps a cache folder there.
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=workdir)
    return done.returncode, done.stdout + done.stderr


def figures(report: str) -> dict[str, int]:
    """Cases run, 5xx found and other violations found, from schemathesis' summary."""
    cases = re.search(r"(\d+) generated", report)
    found = {
        name: int(count)
        for name, count in re.findall(r"❌ (ST\d+ [^:\n]+): (\d+)", report.split("SUMMARY")[-1])
    }
    server_errors = sum(count for name, count in found.items() if "Server error" in name)
    return {
        "cases": int(cases.group(1)) if cases else 0,
        "server_errors": server_errors,
        "violations": sum(found.values()) - server_errors,
    }


@pytest.mark.parametrize("service", SERVICES)
def test_service_answers_as_its_openapi_document_says(
    stack: Stack,
    api_key: str,
    service: str,
    tmp_path: Path,
) -> None:
    status, report = run_schemathesis(stack.urls[service], api_key, tmp_path)
    found = figures(report)
    print(f"{service}: {found}")
    assert found["cases"] > 0, report[-4000:]
    assert status == 0 and found["server_errors"] == found["violations"] == 0, (
        f"{service}: {found}\n{report[-12000:]}"
    )
