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

# The stack fixtures of the flow test: the same launcher, a stack of this module's own.
from tests.e2e.test_flow import launcher, stack  # noqa: F401
from tests.support.stack import Stack

SERVICES = ("trigger", "survey", "scoring", "alerting", "reporting")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:  # noqa: F811
    trigger = stack.urls["trigger"]
    admin = {"X-Admin-Token": stack.admin_token}
    name = f"conformance-{uuid.uuid4().hex[:6]}"
    created = httpx.post(f"{trigger}/v1/admin/tenants", json={"name": name}, headers=admin, timeout=15)
    assert created.status_code == 201, created.text
    key = httpx.post(f"{trigger}/v1/admin/tenants/{name}/api-keys", headers=admin, timeout=15)
    assert key.status_code == 201, key.text
    return str(key.json()["api_key"])


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
    stack: Stack,  # noqa: F811
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
