"""Every right from the chat over the real channels: Telegram sends the export as a document,
the Zalo bot (no files) as a one-time link; /correct, /withdraw and /delete work the same."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from bot.app import Server, build_runtime, make_channels
from bot.db.models import Identity, Person
from bot.settings import Settings
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.zalo_bot_api import FakeZaloBotAPI
from tests.journey import onboard
from tests.test_telegram_e2e import USER, TelegramDriver, free_port
from tests.zalo_drivers import ZaloBotDriver


async def count(server: Server, model: type) -> int:
    async with server.rt.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_rights_over_telegram(sqlite_url: str, tmp_path: Path) -> None:
    async with FakeTelegramAPI() as fake:
        port = free_port()
        settings = Settings(_env_file=None, database_url=sqlite_url, telegram_token=fake.token,
                            telegram_api_url=fake.base_url, web_port=port, data_dir=tmp_path,
                            flood_messages=100_000)  # type: ignore[call-arg]
        rt = build_runtime(settings)
        server = Server(rt, make_channels(rt))
        await server.start()
        try:
            user = TelegramDriver(fake)
            await onboard(user)
            replies = await user.say("/mydata")
            document = next(m for m in replies if m.method == "sendDocument")
            data = json.loads(document.document.data)
            assert data["identities"][0] == {**data["identities"][0], "channel": "telegram",
                                             "user_id": str(USER)}
            assert document.document.filename.endswith(".json")
            await user.say("/correct")
            await user.press("fix:name")
            replies = await user.say("Lan Nguyễn")
            assert "Đã lưu: Lan Nguyễn." in replies[0].plain_text
            await user.say("/delete")
            replies = await user.press("confirm:delete")
            assert "đã được xóa" in replies[0].plain_text
            assert await count(server, Person) == 0 and await count(server, Identity) == 0
        finally:
            await server.stop()


async def test_rights_over_zalo_bot(sqlite_url: str, tmp_path: Path) -> None:
    async with FakeZaloBotAPI() as fake:
        port = free_port()
        settings = Settings(
            _env_file=None, database_url=sqlite_url, zalo_bot_token=fake.token,
            zalo_bot_api_url=fake.base_url, zalo_bot_send_interval=0, web_port=port,
            public_url=f"http://127.0.0.1:{port}", data_dir=tmp_path, flood_messages=100_000,
        )  # type: ignore[call-arg]  # fmt: skip
        rt = build_runtime(settings)
        server = Server(rt, make_channels(rt))
        await server.start()
        try:
            user = ZaloBotDriver(fake, rt.sessionmaker)
            await onboard(user)
            replies = await user.say("/mydata")
            text = "\n".join(m.body for m in replies)
            links = [w for w in text.split() if w.startswith(f"http://127.0.0.1:{port}/")]
            assert links, text
            async with aiohttp.ClientSession() as http:
                for link in links:
                    async with http.get(link) as r:
                        if r.status == 200 and "json" in r.content_type:
                            data = json.loads(await r.read())
                            assert data["identities"][0]["channel"] == "zalo-bot"
                            break
                else:
                    raise AssertionError(f"no export among {links}")
            await user.say("/withdraw")
            replies = await user.press("confirm:withdraw")
            assert "rút lại" in replies[0].body
            assert await count(server, Person) == 0
            replies = await user.say("/progress")
            assert "chưa được lưu" in replies[0].body
        finally:
            await server.stop()
