"""TLS and SASL to Kafka, TLS to Postgres: what the settings accept, refuse, and hand the clients.

The certificates are made here with the openssl command line (a CA and a server certificate for
``localhost``), and the TLS contexts are checked by a real handshake with a local TLS server, so a
context that silently skipped verification would fail these tests.
"""

from __future__ import annotations

import ast
import asyncio
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from libs.common.config import ServiceSettings
from libs.common.db import InvalidDatabaseUrl, engine_url_and_connect_args
from libs.common.kafka import kafka_client_options

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=nps-test-ca",
        "-days",
        "2",
        cwd=where,
    )
    (where / "server.ext").write_text("subjectAltName=DNS:localhost\n")
    for name, subject in (("server", "/CN=localhost"), ("client", "/CN=nps-client")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=where)
        extra = ["-extfile", "server.ext"] if name == "server" else []
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            *extra,
            cwd=where,
        )
    return Pki(
        where / "ca.crt",
        where / "server.crt",
        where / "server.key",
        where / "client.crt",
        where / "client.key",
    )


async def _handshake(
    client: ssl.SSLContext, pki: Pki, *, server_hostname: str, require_client_cert: bool = False
) -> str | None:
    """Connect to a local TLS server presenting a ``localhost`` certificate; the error, or None."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        server_context.verify_mode = ssl.CERT_REQUIRED
        server_context.load_verify_locations(pki.ca)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=server_hostname
        )
        greeting = await reader.read(2)
        writer.close()
        return None if greeting == b"ok" else "the server closed the connection"
    except (ssl.SSLError, ConnectionError) as error:
        return str(error)
    finally:
        server.close()
        await server.wait_closed()


# --- Kafka --------------------------------------------------------------------------------------


def test_the_default_is_plaintext_with_no_credentials() -> None:
    options = kafka_client_options(ServiceSettings())
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_hands_every_client_the_mechanism_credentials_and_a_verifying_context(pki: Pki) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers="kafka-1:9093,kafka-2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="nps-trigger",
        kafka_sasl_password="s3cret-from-the-vault",
        kafka_ssl_cafile=pki.ca,
    )
    options = kafka_client_options(settings)
    assert options["bootstrap_servers"] == "kafka-1:9093,kafka-2:9093"
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "nps-trigger"
    assert options["sasl_plain_password"] == "s3cret-from-the-vault"
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


async def test_the_kafka_tls_context_trusts_the_configured_ca_and_checks_the_name(pki: Pki) -> None:
    settings = ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca)
    context = kafka_client_options(settings)["ssl_context"]
    assert await _handshake(context, pki, server_hostname="localhost") is None
    failure = await _handshake(context, pki, server_hostname="kafka.elsewhere.example")
    assert failure is not None and "hostname" in failure.lower()
    # Without the CA file the system's CAs are used, and they do not know this test CA.
    system = kafka_client_options(ServiceSettings(kafka_security_protocol="SSL"))["ssl_context"]
    failure = await _handshake(system, pki, server_hostname="localhost")
    assert failure is not None and "certificate verify failed" in failure


async def test_mutual_tls_presents_the_client_certificate(pki: Pki) -> None:
    with_cert = ServiceSettings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.client_key,
    )
    context = kafka_client_options(with_cert)["ssl_context"]
    assert await _handshake(context, pki, server_hostname="localhost", require_client_cert=True) is None
    without = kafka_client_options(ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca))
    assert (
        await _handshake(without["ssl_context"], pki, server_hostname="localhost", require_client_cert=True)
        is not None
    )


async def test_every_aiokafka_client_accepts_the_options(pki: Pki) -> None:
    """The keyword names are aiokafka's: a typo would only show against a real secured cluster."""
    settings = ServiceSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="nps",
        kafka_sasl_password="s3cret-from-the-vault",
        kafka_ssl_cafile=pki.ca,
    )
    options = kafka_client_options(settings)
    producer = AIOKafkaProducer(**options)
    consumer = AIOKafkaConsumer("nps.purchases", group_id="g", **options)
    admin = AIOKafkaAdminClient(**options)
    assert producer.client._security_protocol == "SASL_SSL"
    assert consumer._client._sasl_mechanism == "PLAIN"
    assert admin._client._sasl_plain_username == "nps"
    await consumer._client.close()
    await producer.client.close()
    await admin._client.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "SASL_SSL needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME"),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "nps",
            },
            "needs KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_sasl_username": "nps", "kafka_sasl_password": "x"},
            "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD set but KAFKA_SECURITY_PROTOCOL=SSL sends no SASL",
        ),
        (
            {"kafka_ssl_cafile": "ca.crt"},
            "KAFKA_SSL_CAFILE set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "client.crt"},
            "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.crt"},
            "KAFKA_SSL_CAFILE=/nonexistent/ca.crt: no such file",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": __file__},
            "KAFKA_SSL_\\* files are not usable PEM files",
        ),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "GSSAPI",
                "kafka_sasl_username": "nps",
                "kafka_sasl_password": "x",
            },
            "kafka_sasl_mechanism",
        ),
        (
            {
                "nps_env": "production",
                "NPS_ADMIN_TOKEN": "k3J9-real-token-from-a-vault-Zq81",
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "nps",
                "kafka_sasl_password": "k3J9-real-password",
            },
            "sends the password in clear text",
        ),
        (
            {
                "nps_env": "production",
                "NPS_ADMIN_TOKEN": "k3J9-real-token-from-a-vault-Zq81",
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "SCRAM-SHA-256",
                "kafka_sasl_username": "nps",
                "kafka_sasl_password": "change-me",
            },
            "KAFKA_SASL_PASSWORD is a placeholder",
        ),
    ],
)
def test_contradicting_kafka_settings_are_refused_at_start_up(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServiceSettings(**settings)


def test_kafka_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "nps-survey")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "from-the-secret")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(pki.ca))
    options = kafka_client_options(ServiceSettings())
    assert options["sasl_plain_username"] == "nps-survey"
    assert options["sasl_plain_password"] == "from-the-secret"
    assert "from-the-secret" not in repr(ServiceSettings())


def _client_calls(path: Path) -> list[ast.Call]:
    names = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}
    return [
        node
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
    ]


def test_every_kafka_client_the_services_build_goes_through_the_one_helper() -> None:
    """A client built without ``**kafka_client_options(...)`` would connect without TLS or SASL.

    ``libs/devstack`` is left out: it talks only to the embedded, plaintext broker it starts."""
    sources = [*(ROOT / "libs" / "common").rglob("*.py"), *(ROOT / "services").rglob("*.py")]
    calls = [(path, call) for path in sources for call in _client_calls(path)]
    assert len(calls) >= 3, "the producer, the consumer runner and the admin client"
    for path, call in calls:
        spread = [
            keyword.value
            for keyword in call.keywords
            if keyword.arg is None
            and isinstance(keyword.value, ast.Call)
            and isinstance(keyword.value.func, ast.Name)
            and keyword.value.func.id == "kafka_client_options"
        ]
        explicit = {keyword.arg for keyword in call.keywords} & {"bootstrap_servers", "security_protocol"}
        where = f"{path.relative_to(ROOT)}:{call.lineno}"
        assert spread and not explicit, f"{where} builds a Kafka client without kafka_client_options"


# --- Postgres -----------------------------------------------------------------------------------


def test_a_url_without_tls_parameters_is_passed_through() -> None:
    url, args = engine_url_and_connect_args("postgresql+asyncpg://postgres@/nps?host=/tmp")
    assert url.query == {"host": "/tmp"} and args == {}
    url, args = engine_url_and_connect_args("postgresql+asyncpg://u:p@db:5432/nps?ssl=verify-full")
    # asyncpg's own mode string: it reads PGSSLROOTCERT or ~/.postgresql/root.crt.
    assert url.query == {} and args == {"ssl": "verify-full"}


def test_libpq_sslmode_is_accepted_as_managed_providers_print_it() -> None:
    settings = ServiceSettings(database_url="postgres://u:p@db.example.com:5432/nps?sslmode=require")
    url, args = engine_url_and_connect_args(settings.database_url)
    assert url.drivername == "postgresql+asyncpg" and args == {"ssl": "require"}


async def test_verify_full_with_a_ca_file_checks_the_chain_and_the_host_name(pki: Pki) -> None:
    url, args = engine_url_and_connect_args(
        f"postgresql+asyncpg://u:p@localhost/nps?ssl=verify-full&sslrootcert={pki.ca}"
    )
    assert url.query == {}, "asyncpg.connect() refuses sslrootcert as a keyword"
    context = args["ssl"]
    assert await _handshake(context, pki, server_hostname="localhost") is None
    failure = await _handshake(context, pki, server_hostname="db.elsewhere.example")
    assert failure is not None and "hostname" in failure.lower()


async def test_verify_ca_checks_the_chain_but_not_the_name(pki: Pki) -> None:
    _, args = engine_url_and_connect_args(
        f"postgresql+asyncpg://u:p@10.0.0.5/nps?sslmode=verify-ca&sslrootcert={pki.ca}"
    )
    assert await _handshake(args["ssl"], pki, server_hostname="10.0.0.5") is None
    _, untrusting = engine_url_and_connect_args(
        f"postgresql+asyncpg://u:p@10.0.0.5/nps?sslmode=verify-ca&sslrootcert={pki.client_cert}"
    )
    failure = await _handshake(untrusting["ssl"], pki, server_hostname="10.0.0.5")
    assert failure is not None and "certificate verify failed" in failure


async def test_a_client_certificate_is_presented(pki: Pki) -> None:
    _, args = engine_url_and_connect_args(
        f"postgresql+asyncpg://u@localhost/nps?ssl=verify-full&sslrootcert={pki.ca}"
        f"&sslcert={pki.client_cert}&sslkey={pki.client_key}"
    )
    assert await _handshake(args["ssl"], pki, server_hostname="localhost", require_client_cert=True) is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("ssl=require&sslmode=require", "give ssl or sslmode, not both"),
        ("ssl=on", "ssl=on is not one of"),
        ("ssl=require&sslrootcert={ca}", "sslrootcert is for ssl=verify-full or verify-ca, not ssl=require"),
        ("ssl=verify-full&sslrootcert=/nonexistent/ca.crt", "sslrootcert=/nonexistent/ca.crt: no such file"),
        ("ssl=verify-full&sslrootcert={ca}&sslcert={ca}", "sslcert and sslkey go together"),
        (
            "ssl=verify-full&sslrootcert=" + __file__,
            "sslrootcert, sslcert or sslkey is not a usable PEM file",
        ),
    ],
)
def test_contradicting_database_tls_is_refused_at_start_up(pki: Pki, query: str, message: str) -> None:
    url = "postgresql://u:p@db/nps?" + query.format(ca=pki.ca)
    with pytest.raises(InvalidDatabaseUrl, match=message):
        engine_url_and_connect_args(url)
    with pytest.raises(ValidationError, match="DATABASE_URL: " + message) as refused:
        ServiceSettings(database_url=url)
    assert "u:p@" not in str(refused.value), "the refusal must not print the URL's password"
