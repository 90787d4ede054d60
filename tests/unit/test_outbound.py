"""Outbound HTTP refuses private addresses: a webhook URL is a tenant's input, and it must not reach
inside the network the platform runs in, however the address is written or resolved."""

from __future__ import annotations

import json

import httpx
import pytest

from libs.common.outbound import (
    MAX_URL_LENGTH,
    OutboundError,
    UnsafeUrl,
    check_webhook_url,
    post_json,
    redact,
    resolve_public,
)

SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/sEcReTtOkEn"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://127.0.0.1/hook", "127.0.0.1 is not a public address"),
        ("https://[::1]/hook", "::1 is not a public address"),
        ("https://10.20.30.40/hook", "10.20.30.40 is not a public address"),
        ("https://172.16.0.1/hook", "172.16.0.1 is not a public address"),
        ("https://172.31.255.254/hook", "172.31.255.254 is not a public address"),
        ("https://192.168.1.1/hook", "192.168.1.1 is not a public address"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is not a public address"),
        ("https://100.64.0.1/hook", "100.64.0.1 is not a public address"),
        ("https://0.0.0.0/hook", "0.0.0.0 is not a public address"),
        ("https://224.0.0.1/hook", "224.0.0.1 is not a public address"),
        ("https://[::ffff:127.0.0.1]/hook", "is not a public address"),
        ("https://[::ffff:10.0.0.1]/hook", "is not a public address"),
        ("https://[fc00::1]/hook", "fc00::1 is not a public address"),
        ("https://[fd12:3456::1]/hook", "is not a public address"),
        ("https://[fe80::1]/hook", "fe80::1 is not a public address"),
        ("https://[2002:7f00:1::]/hook", "is not a public address"),
        ("https://[64:ff9b::a00:1]/hook", "is not a public address"),
        ("https://2130706433/hook", "non-canonical form"),
        ("https://0177.0.0.1/hook", "non-canonical form"),
        ("https://0x7f.1/hook", "non-canonical form"),
        ("https://0x7f000001/hook", "non-canonical form"),
        ("https://127.1/hook", "non-canonical form"),
        ("https://127.000.000.001/hook", "non-canonical form"),
        ("https://localhost/hook", "localhost is a local name"),
        ("https://localhost./hook", "localhost is a local name"),
        ("https://foo.localhost/hook", "foo.localhost is a local name"),
        ("https://printer.local/hook", "is a local name"),
        ("https://metadata.google.internal/hook", "is a local name"),
        ("https://intranet/hook", "has no domain"),
        ("http://hooks.slack.com/services/x", "must use https, not http"),
        ("ftp://hooks.slack.com/services/x", "must use https, not ftp"),
        ("hooks.slack.com/services/x", "must use https"),
        ("https://user@hooks.slack.com/x", "user name or password"),
        ("https://user:pw@hooks.slack.com/x", "user name or password"),
        ("https://hooks.slack.com@10.0.0.1/x", "user name or password"),
        ("https://hooks.slack.com/x\x00y", "control character"),
        ("https://hooks.slack.com\r\nHost: evil/x", "control character"),
        ("https://hooks.slack.com\\@10.0.0.1/x", "backslash"),
        ("https://hooks.slack.com/" + "a" * MAX_URL_LENGTH, f"longer than {MAX_URL_LENGTH} characters"),
        ("https:///services/x", "has no host"),
        ("https://hooks.slack.com:0/x", "port must be between 1 and 65535"),
        ("https://hooks.slack.com:99999/x", "port that is not a number"),
        ("https://hooks.slack.com:https/x", "port that is not a number"),
        ("https://[::1/x", "cannot be read"),
        ("https://hooks_slack.com/x", "is not a valid host name"),
        ("https://-hooks.slack.com/x", "is not a valid host name"),
        ("https://hooks.slack.cöm/x", "must be ASCII"),
    ],
)
def test_a_hostile_url_is_refused_with_a_message_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(UnsafeUrl) as refused:
        check_webhook_url(url)
    assert problem in str(refused.value)


def test_the_refusal_never_repeats_the_secret_path() -> None:
    with pytest.raises(UnsafeUrl) as refused:
        check_webhook_url("http://hooks.slack.com/services/T0000/B0000/sEcReTtOkEn")
    assert "sEcReTtOkEn" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        (SLACK_URL, SLACK_URL),
        ("HTTPS://Hooks.Slack.COM:443/services/x?token=1#part", "https://hooks.slack.com/services/x?token=1"),
        ("https://example.webhook.office.com", "https://example.webhook.office.com/"),
        ("https://prod-01.westeurope.logic.azure.com:8443/workflows/x", None),
        ("https://8.8.8.8/hook", "https://8.8.8.8/hook"),
        ("https://[2606:4700:4700::1111]/hook", "https://[2606:4700:4700::1111]/hook"),
        ("https://[::ffff:8.8.8.8]/hook", "https://[::ffff:808:808]/hook"),
    ],
)
def test_a_public_https_url_is_accepted_and_normalised(url: str, normalised: str | None) -> None:
    assert check_webhook_url(url) == (normalised or url)


def test_private_targets_and_plain_http_are_allowed_only_when_asked_for_local_tests() -> None:
    assert check_webhook_url("http://127.0.0.1:8080/hook", allow_private=True) == "http://127.0.0.1:8080/hook"
    assert check_webhook_url("http://localhost:8080/hook", allow_private=True) == "http://localhost:8080/hook"
    with pytest.raises(UnsafeUrl, match="non-canonical"):
        check_webhook_url("http://2130706433/hook", allow_private=True)
    with pytest.raises(UnsafeUrl, match="user name"):
        check_webhook_url("http://user@127.0.0.1/hook", allow_private=True)


async def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    # A real name, really resolved: `localhost` is 127.0.0.1 (or ::1) on every machine.
    with pytest.raises(UnsafeUrl, match=r"localhost resolves to .*, which is not a public address"):
        await resolve_public("localhost", 443)


async def test_a_private_address_is_resolved_when_allowed() -> None:
    assert await resolve_public("localhost", 443, allow_private=True) in {"127.0.0.1", "::1"}


async def test_a_name_that_does_not_resolve_is_an_outbound_error_not_worth_retrying() -> None:
    with pytest.raises(OutboundError, match="did not resolve") as failed:
        await resolve_public("no-such-host.invalid", 443)
    assert failed.value.retryable is False


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SLACK_URL, "https://hooks.slack.com/…"),
        ("https://hooks.slack.com:443/services/x?token=secret", "https://hooks.slack.com/…"),
        ("http://127.0.0.1:8080/hook/secret", "http://127.0.0.1:8080/…"),
        ("https://[2606:4700::1111]/secret", "https://[2606:4700::1111]/…"),
        ("https://user:password@hooks.slack.com/secret", "https://hooks.slack.com/…"),
        ("not a url at all", "(a URL without a readable host)"),
        ("https://[::1/secret", "(an unreadable URL)"),
    ],
)
def test_redact_hides_the_path_the_query_and_the_user_info(url: str, shown: str) -> None:
    assert redact(url) == shown


async def test_post_json_connects_to_the_checked_address_and_names_the_host_in_http_and_tls() -> None:
    seen: list[httpx.Request] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    async with httpx.AsyncClient(transport=httpx.MockTransport(webhook)) as client:
        status = await post_json(
            client, "https://localhost:8443/hook/secret", {"text": "hi"}, allow_private=True
        )

    assert status == 200
    [request] = seen
    # The address resolved and checked is the one the connection goes to; the name is only a header.
    assert request.url.host in {"127.0.0.1", "::1"}
    assert request.url.port == 8443
    assert request.url.path == "/hook/secret"
    assert request.headers["host"] == "localhost:8443"
    assert request.extensions["sni_hostname"] == "localhost"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"text": "hi"}


async def test_post_json_refuses_before_sending_anything() -> None:
    seen: list[httpx.Request] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(webhook)) as client:
        for url in ("https://localhost/hook", "https://169.254.169.254/latest", "http://localhost:8080/hook"):
            with pytest.raises(UnsafeUrl):
                await post_json(client, url, {"text": "hi"})
    assert seen == []


@pytest.mark.parametrize(
    ("status", "body", "retryable", "hint"),
    [
        (500, "", True, "answered 500"),
        (503, "", True, "answered 503"),
        (429, "", True, "answered 429"),
        (404, "no_service", False, "answered 404 (no_service)"),
        (403, "invalid_token", False, "answered 403 (invalid_token)"),
        (400, "<html>the whole page, which is not a reason</html>", False, "answered 400"),
        (302, "", False, "answered 302 (a redirect, not followed)"),
    ],
)
async def test_a_refusal_is_classified_and_shown_without_the_url_path(
    status: int, body: str, retryable: bool, hint: str
) -> None:
    def webhook(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, text=body, headers={"location": "https://10.0.0.1/"} if status == 302 else {}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(webhook)) as client:
        with pytest.raises(OutboundError) as failed:
            await post_json(client, "https://localhost/hook/sEcReT", {"text": "hi"}, allow_private=True)
    assert failed.value.retryable is retryable
    assert failed.value.status == status
    assert str(failed.value).startswith("https://localhost/…: ")
    assert str(failed.value).endswith(hint)
    assert "sEcReT" not in str(failed.value)
    assert "html" not in str(failed.value)
