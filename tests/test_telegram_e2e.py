"""End to end: `hocvuso serve`'s real Server and python-telegram-bot Application, talking HTTP
to a local Bot API stand-in, in polling and in webhook mode."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import Server, build_runtime, make_channels
from bot.db.models import ParticipationEvent, Person
from bot.settings import Settings
from content.loader import Curriculum
from tests.fakes.telegram_api import FakeTelegramAPI, SentMessage
from tests.journey import learn_and_pass, onboard

USER = 4242


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TelegramDriver:
    """A person in the Telegram app: types text, presses buttons, reads what arrives."""

    def __init__(self, fake: FakeTelegramAPI, user_id: int = USER) -> None:
        self.fake = fake
        self.user_id = user_id
        self.buttons: list[tuple[str, str]] = []
        self.seen = 0

    async def _replies(self) -> list[SentMessage]:
        await self.fake.wait_for_sent(self.seen + 1, chat_id=self.user_id, timeout=15)
        await self.fake.wait_idle(quiet=0.15)
        messages = self.fake.messages_to(self.user_id)
        new, self.seen = messages[self.seen :], len(messages)
        for message in new:
            if message.buttons:
                self.buttons = message.buttons
        return new

    async def say(self, text: str) -> list[SentMessage]:
        self.fake.add_text(self.user_id, text, first_name="Lan")
        return await self._replies()

    async def press(self, payload: str) -> list[SentMessage]:
        self.fake.press_button(self.user_id, payload)
        return await self._replies()


@pytest.fixture(params=["polling", "webhook"])
async def served(
    request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[tuple[FakeTelegramAPI, Server]]:
    async with FakeTelegramAPI() as fake:
        webhook = request.param == "webhook"
        port = free_port()
        settings = Settings(
            _env_file=None, database_url=sqlite_url, telegram_token=fake.token,
            telegram_api_url=fake.base_url, telegram_webhook=webhook,
            webhook_secret="s3cret-token" if webhook else None,
            public_url=f"http://127.0.0.1:{port}", web_port=port, data_dir=tmp_path,
            flood_messages=100_000,
        )  # type: ignore[call-arg]  # fmt: skip
        rt = build_runtime(settings)
        server = Server(rt, make_channels(rt))
        await server.start()
        try:
            yield fake, server
        finally:
            await server.stop()


async def test_journey_over_telegram(served: tuple[FakeTelegramAPI, Server],
                                     curriculum: Curriculum) -> None:
    fake, server = served
    user = TelegramDriver(fake)
    await onboard(user)
    await learn_and_pass(user, curriculum, "vneid-cai-dat")
    last = fake.messages_to(USER)[-1]
    assert "Bạn đã đạt bài này!" in last.plain_text
    # Bold markup is rendered as Telegram HTML.
    assert any("<b>" in m.text for m in fake.messages_to(USER) if m.text)
    async with server.rt.sessionmaker() as s:
        person = await s.scalar(select(Person))
        passed = await s.scalar(select(ParticipationEvent).where(
            ParticipationEvent.kind == "quiz_finished"))
    assert person is not None and person.display_name == "Lan"
    assert passed is not None and passed.passed
    if server.channels[0].webhook:
        assert fake.webhook_url == f"http://127.0.0.1:{server.port}/telegram/webhook"
        assert set(fake.webhook_responses) == {200}
    # Button presses get their spinner answered.
    assert fake.callback_answers


async def test_redelivered_update_changes_nothing(served: tuple[FakeTelegramAPI, Server]) -> None:
    fake, server = served
    user = TelegramDriver(fake)
    await user.say("/start")
    update = fake.press_button(USER, "consent:yes")
    await user._replies()
    sent = len(fake.messages_to(USER))
    fake.redeliver(update["update_id"])
    await fake.wait_idle(quiet=0.4)
    assert len(fake.messages_to(USER)) == sent
    async with server.rt.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Person)) == 1


async def test_odd_updates_over_telegram(served: tuple[FakeTelegramAPI, Server]) -> None:
    fake, _server = served
    user = TelegramDriver(fake)
    await user.say("/start")
    fake.add_sticker(USER)
    replies = await user._replies()
    assert "chỉ đọc được chữ" in replies[0].plain_text
    fake.add_photo(USER)
    replies = await user._replies()
    assert "chỉ đọc được chữ" in replies[0].plain_text
    fake.add_edited_text(USER, "sửa")
    replies = await user._replies()
    assert "đã sửa" in replies[0].plain_text
    replies = await user.say("x" * 4096 + "y")
    assert replies
    # A group: one notice, then silence.
    fake.add_text(USER, "/start", chat_type="group", chat_id=-5001)
    await fake.wait_for_sent(1, chat_id=-5001)
    fake.add_text(USER, "hello", chat_type="group", chat_id=-5001)
    await fake.wait_idle(quiet=0.4)
    assert len(fake.messages_to(-5001)) == 1
    assert "trò chuyện riêng" in fake.messages_to(-5001)[0].plain_text


async def test_webhook_refuses_bad_requests(sqlite_url: str) -> None:
    async with FakeTelegramAPI() as fake:
        port = free_port()
        settings = Settings(
            _env_file=None, database_url=sqlite_url, telegram_token=fake.token,
            telegram_api_url=fake.base_url, telegram_webhook=True,
            webhook_secret="right-secret", public_url=f"http://127.0.0.1:{port}", web_port=port,
        )  # type: ignore[call-arg]  # fmt: skip
        rt = build_runtime(settings)
        server = Server(rt, make_channels(rt))
        await server.start()
        url = f"http://127.0.0.1:{port}/telegram/webhook"
        good = {"X-Telegram-Bot-Api-Secret-Token": "right-secret"}
        update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "/start",
                  "chat": {"id": 9, "type": "private"}, "from": {"id": 9, "is_bot": False,
                                                                  "first_name": "A"}}}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=update) as r:
                    assert r.status == 403
                async with http.post(url, json=update, headers={
                        "X-Telegram-Bot-Api-Secret-Token": "wrong"}) as r:
                    assert r.status == 403
                async with http.post(url, data=b"not json", headers=good) as r:
                    assert r.status == 400
                async with http.post(url, data=b"[1, 2]", headers=good) as r:
                    assert r.status == 400
                async with http.post(url, data=b"x" * (2 << 20), headers=good) as r:
                    assert r.status == 413
                assert fake.messages_to(9) == []
                async with http.post(url, json=update, headers=good) as r:
                    assert r.status == 200
                assert "Xin chào" in fake.messages_to(9)[0].plain_text
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    assert r.status == 200 and (await r.json())["database"] is True
        finally:
            await server.stop()
