"""Operations: /healthz and /metrics with real values, JSON logs, a graceful SIGTERM, SQLite
backups, and the container files."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from bot.app import Server, build_runtime, make_channels
from bot.cli import build_parser, main
from bot.db.migrate import upgrade
from bot.logs import JsonFormatter, RedactSecrets
from bot.settings import Settings
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.test_telegram_e2e import TelegramDriver, free_port

ROOT = Path(__file__).resolve().parent.parent


async def test_health_and_metrics(sqlite_url: str, tmp_path: Path) -> None:
    async with FakeTelegramAPI() as fake:
        port = free_port()
        settings = Settings(_env_file=None, database_url=sqlite_url, telegram_token=fake.token,
                            telegram_api_url=fake.base_url, web_port=port, data_dir=tmp_path)
        rt = build_runtime(settings)
        server = Server(rt, make_channels(rt))
        await server.start()
        try:
            user = TelegramDriver(fake)
            await user.say("/start")
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    body = await r.json()
                    assert r.status == 200
                    assert body == {"database": True, "channels": {"telegram": True},
                                    "scheduler": True, "ok": True}
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    text = await r.text()
                    assert r.status == 200
                assert 'hocvuso_updates_total{channel="telegram",kind="text"}' in text
                assert "hocvuso_update_seconds_bucket" in text
                assert 'hocvuso_sends_total{channel="telegram",status="sent"}' in text
                assert 'hocvuso_outbox_backlog{channel="telegram"} 0.0' in text
                # The scheduler dies: the health check says so.
                server.scheduler.shutdown(wait=False)
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    assert r.status == 503 and (await r.json())["scheduler"] is False
        finally:
            await server.stop()


async def test_health_without_database(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.web.server import make_web_app

    settings = Settings(_env_file=None, data_dir=tmp_path,
                        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none")
    rt = build_runtime(settings)
    try:
        async with TestClient(TestServer(make_web_app(rt, []))) as client:
            r = await client.get("/healthz")
            assert r.status == 503 and (await r.json())["database"] is False
    finally:
        await rt.close()


def test_json_logs_redact_secrets() -> None:
    record = logging.LogRecord("bot", logging.INFO, __file__, 1, "token %s for %s",
                               ("123:SECRET", "identity 42"), None)
    RedactSecrets(["123:SECRET"]).filter(record)
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "token *** for identity 42" and entry["level"] == "INFO"
    assert "\n" not in line


def test_sigterm_stops_within_ten_seconds(tmp_path: Path) -> None:
    import asyncio

    async def scenario() -> tuple[int, float, int]:
        async with FakeTelegramAPI() as fake:
            env = {k: v for k, v in os.environ.items() if not k.startswith("HOCVUSO_")}
            env.update({
                "HOCVUSO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db",
                "HOCVUSO_TELEGRAM_TOKEN": fake.token, "HOCVUSO_TELEGRAM_API_URL": fake.base_url,
                "HOCVUSO_WEB_PORT": str(free_port()), "HOCVUSO_DATA_DIR": str(tmp_path),
                "PYTHONPATH": str(ROOT),
            })
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "serve", env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            try:
                user = TelegramDriver(fake)
                await user.say("/start")
                fake.press_button(4242, "consent:yes")
                proc.send_signal(signal.SIGTERM)
                started = time.monotonic()
                try:
                    code = await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    code = -1
                return code, time.monotonic() - started, len(fake.messages_to(4242))
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    code, took, sent = asyncio.run(scenario())
    assert code == 0 and took < 10
    # The update in progress at the signal was finished and answered, or never taken.
    db = sqlite3.connect(tmp_path / "h.db")
    consented = db.execute("SELECT count(*) FROM persons").fetchone()[0]
    db.close()
    assert sent >= 2 or consented == 0


def test_sqlite_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "live.db"
    upgrade(f"sqlite+aiosqlite:///{db}")
    monkeypatch.setenv("HOCVUSO_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    target = tmp_path / "backups" / "copy.db"
    assert main(["db", "backup", str(target)]) == 0
    copy = sqlite3.connect(target)
    tables = {r[0] for r in copy.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    copy.close()
    assert {"persons", "participation_events", "alembic_version"} <= tables
    assert main(["db", "backup", str(target)]) == 1  # no silent overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["db", "backup", str(target), "--force"]) == 0
    monkeypatch.setenv("HOCVUSO_DATABASE_URL", "postgresql+asyncpg://u@h/db")
    assert main(["db", "backup", str(target), "--force"]) == 2
    assert "pg_dump" in capsys.readouterr().err


def test_compose_file_names_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    bot = compose["services"]["bot"]
    fields = {f"HOCVUSO_{name.upper()}" for name in Settings.model_fields}
    for key in bot["environment"]:
        assert key in fields, key
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pgdata" in compose["volumes"]


def test_dockerfile_runs_real_commands() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in text and "USER hocvuso" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    parser = build_parser()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CMD"):
            args = json.loads(line.removeprefix("CMD").strip())
            assert args[0] == "hocvuso"
            parser.parse_args(args[1:])
        if line.startswith("RUN hocvuso"):
            words = line.removeprefix("RUN hocvuso").split("&&")[0].split()
            parser.parse_args([w for w in words if w != "\\"])
