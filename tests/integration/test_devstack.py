"""The embedded dev servers themselves: what `make run` and the test fixtures stand on."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from libs.common.db import make_engine
from libs.devstack.kafka import EmbeddedKafka, ensure_topics
from libs.devstack.pg import EmbeddedPostgres, PasswordPostgres
from libs.devstack.ports import free_port, wait_for_port
from libs.devstack.run import Stack, StackConfig
from libs.devstack.smtp_sink import SmtpSink, messages_to, read_headers, read_messages
from services.survey.config import MIN_TOKEN_SECRET_LENGTH, SurveySettings

pytestmark = pytest.mark.integration


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_embedded_postgres_keeps_data_across_restarts(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    await asyncio.to_thread(server.start)
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(server.url))
        try:
            assert await connection.fetchval("SELECT current_database()") == "nps"
            await connection.execute("CREATE TABLE survey (id text PRIMARY KEY)")
            await connection.execute("INSERT INTO survey VALUES ('kept')")
        finally:
            await connection.close()
    finally:
        await asyncio.to_thread(server.stop)

    restarted = EmbeddedPostgres(tmp_path / "pg")
    await asyncio.to_thread(restarted.start)
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(restarted.url))
        try:
            assert await connection.fetchval("SELECT id FROM survey") == "kept"
        finally:
            await connection.close()
    finally:
        await asyncio.to_thread(restarted.stop)


async def test_embedded_postgres_adopts_a_server_left_running(tmp_path: Path) -> None:
    first = EmbeddedPostgres(tmp_path / "pg")
    await asyncio.to_thread(first.start)
    # A second handle (a supervisor restarted after being killed) must reuse the running server.
    second = EmbeddedPostgres(tmp_path / "pg")
    await asyncio.to_thread(second.start)
    try:
        assert second.url == first.url
        connection = await asyncpg.connect(_asyncpg_dsn(second.url))
        await connection.close()
    finally:
        await asyncio.to_thread(second.stop)
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


async def test_embedded_postgres_socket_falls_back_for_deep_data_dirs(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "pg"
    server = EmbeddedPostgres(deep)
    await asyncio.to_thread(server.start)
    socket_dir = server.socket_dir
    try:
        assert socket_dir != server.data_dir
        connection = await asyncpg.connect(_asyncpg_dsn(server.url))
        try:
            assert await connection.fetchval("SELECT 1") == 1
        finally:
            await connection.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert not socket_dir.exists()


async def test_password_postgres_accepts_the_password_and_refuses_others(tmp_path: Path) -> None:
    server = PasswordPostgres(tmp_path / "pg-tcp", port=free_port())
    await asyncio.to_thread(server.start)
    try:
        assert server.url.startswith(
            f"postgresql+asyncpg://nps:{server.password}@127.0.0.1:{server.port}/nps"
        )
        connection = await asyncpg.connect(_asyncpg_dsn(server.url))
        try:
            assert await connection.fetchval("SELECT current_user || '@' || current_database()") == "nps@nps"
        finally:
            await connection.close()

        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host="127.0.0.1", port=server.port, user="nps", password="wrong", database="nps"
            )
    finally:
        await asyncio.to_thread(server.stop, remove_data=True)
    assert not server.data_dir.exists()


async def test_smtp_sink_stores_each_message_as_eml(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    sink = SmtpSink(mail_dir)
    sink.start()
    try:
        message = EmailMessage()
        message["From"] = "surveys@nps.example"
        message["To"] = "customer@shop.example"
        message["Subject"] = "How likely are you to recommend us? ✓"
        message.set_content("Answer on a scale from 0 to 10.")
        await aiosmtplib.send(message, hostname=sink.host, port=sink.port)
    finally:
        sink.stop()

    [received] = read_messages(mail_dir)
    assert received["Subject"] == "How likely are you to recommend us? ✓"
    assert received["To"] == "customer@shop.example"
    assert "scale from 0 to 10" in received.get_content()
    assert [path.suffix for path in mail_dir.iterdir()] == [".eml"]
    # What tests poll and count with: one person's mail, and every message's headers.
    assert [m["Subject"] for m in messages_to(mail_dir, "customer@shop.example")] == [received["Subject"]]
    assert messages_to(mail_dir, "someone-else@shop.example") == []
    [headers] = read_headers(mail_dir)
    assert (headers["To"], headers["Subject"]) == (received["To"], received["Subject"])


async def test_smtp_sink_process_stores_mail_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    sink = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "libs.devstack.smtp_sink",
        "--dir",
        str(tmp_path / "mail"),
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for_port(port, within=15, alive=lambda: sink.returncode is None)
        await aiosmtplib.send(
            "Subject: Thanks for your feedback\r\n\r\nWe read every answer.\r\n",
            sender="surveys@nps.example",
            recipients=["promoter@shop.example"],
            hostname="127.0.0.1",
            port=port,
        )
    finally:
        sink.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(sink.wait(), timeout=15) == 0

    [received] = read_messages(tmp_path / "mail")
    assert received["Subject"] == "Thanks for your feedback"


async def test_tansu_creates_topics_and_round_trips_a_message(tmp_path: Path) -> None:
    broker = EmbeddedKafka(free_port(), tmp_path)
    await broker.start()
    try:
        topic = f"devstack-{uuid.uuid4().hex[:8]}"
        topics = {topic: 3, f"{topic}.dlq": 1}
        await ensure_topics(broker.bootstrap, topics)
        await ensure_topics(broker.bootstrap, topics)  # a second run finds them and changes nothing

        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
            assert len(described["partitions"]) == 3
            assert f"{topic}.dlq" in await admin.list_topics()
        finally:
            await admin.close()

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"promoter", key=b"customer-1")
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=f"devstack-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
        finally:
            await consumer.stop()
        assert (record.key, record.value) == (b"customer-1", b"promoter")
    finally:
        await broker.stop()
    assert not broker.is_running()


async def test_a_database_error_never_shows_the_statement_parameters(pg_url: str) -> None:
    """A traceback once printed customers' addresses into trigger.log from the SQL parameters."""
    engine = make_engine(pg_url, pool_size=1)
    table = f"contacts_{uuid.uuid4().hex[:8]}"
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, email text)"))
            insert = text(f"INSERT INTO {table} VALUES (:id, :email)")
            await connection.execute(insert, {"id": 1, "email": "jane@example.com"})
            with pytest.raises(IntegrityError) as raised:
                await connection.execute(insert, {"id": 1, "email": "john@example.com"})
        message = str(raised.value)
        assert "duplicate key" in message and "INSERT INTO" in message
        assert "john@example.com" not in message and "parameters hidden" in message
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await engine.dispose()


def test_make_run_gives_each_data_dir_its_own_survey_token_secret(tmp_path: Path) -> None:
    """Survey links are HMACs of ids: with the fixed development key anyone could forge one."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    environ = {"PATH": "/usr/bin:/bin"}
    first = Stack(StackConfig(data_dir=data_dir), environ)._service_env()["SURVEY_TOKEN_SECRET"]
    secret_file = data_dir / "survey_token_secret"
    assert first == secret_file.read_text().strip()
    assert (
        len(first) >= MIN_TOKEN_SECRET_LENGTH
        and first != SurveySettings().survey_token_secret.get_secret_value()
    )
    assert secret_file.stat().st_mode & 0o777 == 0o600
    # The next run keeps it, so the links already sent keep working ...
    assert Stack(StackConfig(data_dir=data_dir), environ)._service_env()["SURVEY_TOKEN_SECRET"] == first
    # ... another data dir gets its own, and the environment wins over the file.
    (tmp_path / "other").mkdir()
    other = Stack(StackConfig(data_dir=tmp_path / "other"), environ)._service_env()["SURVEY_TOKEN_SECRET"]
    assert other != first
    given = {**environ, "SURVEY_TOKEN_SECRET": "k" * 40}
    assert Stack(StackConfig(data_dir=data_dir), given)._service_env()["SURVEY_TOKEN_SECRET"] == "k" * 40
