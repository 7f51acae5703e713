"""Configuration errors, the command line and the console chat."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.channels.console import run_console
from bot.engine import Engine
from bot.settings import SettingsError, load_settings

TOKEN = "123456:SECRET-token-value"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HOCVUSO_"):
            monkeypatch.delenv(key)
    s = load_settings(_env_file=None)
    assert s.database_url == "sqlite+aiosqlite:///./data/hocvuso.db"
    assert s.provinces == (37,) and s.web_port == 8080 and not s.telegram_webhook
    assert s.telegram_api_url == "https://api.telegram.org/bot"


@pytest.mark.parametrize(("env", "value", "expected"), [
    ("HOCVUSO_WEB_PORT", "eighty", "HOCVUSO_WEB_PORT"),
    ("HOCVUSO_WEB_PORT", "70000", "HOCVUSO_WEB_PORT"),
    ("HOCVUSO_PROVINCES", "37,abc", "HOCVUSO_PROVINCES"),
    ("HOCVUSO_PROVINCES", "99", "unknown province code"),
    ("HOCVUSO_DATABASE_URL", "mysql://x", "HOCVUSO_DATABASE_URL"),
    ("HOCVUSO_TELEGRAM_TOKEN", "not a token", "HOCVUSO_TELEGRAM_TOKEN"),
    ("HOCVUSO_WEBHOOK_SECRET", "has spaces!", "HOCVUSO_WEBHOOK_SECRET"),
    ("HOCVUSO_TELEGRAM_WEBHOOK", "maybe", "HOCVUSO_TELEGRAM_WEBHOOK"),
    ("HOCVUSO_PUBLIC_URL", "ftp://x", "HOCVUSO_PUBLIC_URL"),
    ("HOCVUSO_EVENT_LOOP", "trio", "HOCVUSO_EVENT_LOOP"),
])
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: str, value: str,
                                      expected: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_secrets_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOCVUSO_TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("HOCVUSO_WEB_PORT", "nope")
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert TOKEN not in str(err.value)
    monkeypatch.setenv("HOCVUSO_WEB_PORT", "8080")
    s = load_settings(_env_file=None)
    assert TOKEN not in repr(s) and TOKEN not in str(s.model_dump())
    assert TOKEN in s.secrets()


def test_log_lines_redact_secrets(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from bot.logs import RedactSecrets

    logger = logging.getLogger("hocvuso-test")
    logger.addFilter(RedactSecrets([TOKEN]))
    with caplog.at_level(logging.INFO, logger="hocvuso-test"):
        logger.info("POST https://api.telegram.org/bot%s/getMe", TOKEN)
    assert TOKEN not in caplog.text and "bot***/getMe" in caplog.text


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str = "",
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOCVUSO_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, text=True,
                          capture_output=True, env=full_env, timeout=120, cwd=cwd)


def test_cli_configuration_error_is_one_line(tmp_path: Path) -> None:
    result = run_cli("db", "upgrade", env={"HOCVUSO_WEB_PORT": "x", "PYTHONPATH": os.getcwd()},
                     cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "HOCVUSO_WEB_PORT" in result.stderr and "Traceback" not in result.stderr


def test_serve_without_token_starts_the_console(tmp_path: Path) -> None:
    env = {"HOCVUSO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db",
           "HOCVUSO_DATA_DIR": str(tmp_path), "PYTHONPATH": os.getcwd()}
    result = run_cli("serve", env=env, stdin="1\nhai hau\n/quit\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HOCVUSO_TELEGRAM_TOKEN" in result.stderr
    assert "Xin chào" in result.stdout and "1. Đồng ý" in result.stdout
    assert "Xã Hải Hậu" in result.stdout
    assert "Tạm biệt" in result.stdout


def test_cli_usage_errors() -> None:
    result = run_cli("nonsense", env={"PYTHONPATH": os.getcwd()})
    assert result.returncode == 2 and "usage" in result.stderr


async def test_console_chat_journey(core: Engine) -> None:
    stdin = io.StringIO("1\ngiao thuy\n1\n1\n1\n/menu\n2\n/quit\n")
    stdout = io.StringIO()
    await run_console(core, stdin=stdin, stdout=stdout)
    out = stdout.getvalue()
    assert "1. Đồng ý" in out and "2. Không đồng ý" in out
    assert "Đã lưu: Xã Giao Thuỷ" in out
    assert "Mời bạn chọn chủ đề" in out
    assert "**" not in out  # markup rendered, not shown
