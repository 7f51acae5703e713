"""Concurrent handling with per-person order: one person's updates are handled (and answered)
in the order Telegram delivered them, different people's at the same time."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from bot.channels.sequencer import KeyedSequencer
from bot.channels.telegram.channel import TelegramChannel
from handlers.types import IncomingMessage, Reply
from tests.fakes.telegram_api import FakeTelegramAPI


async def test_sequencer_keeps_order_per_key_and_overlaps_keys() -> None:
    rng = random.Random(9)
    seq = KeyedSequencer(concurrency=64)
    done: dict[str, list[int]] = {}
    running = peak = 0

    def job(key: str, n: int) -> object:
        async def run() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(rng.uniform(0, 0.01))
            running -= 1
            done.setdefault(key, []).append(n)
            return n

        return run

    futures = [seq.submit(f"k{i % 7}", job(f"k{i % 7}", i)) for i in range(140)]
    assert [await f for f in futures] == list(range(140))
    await seq.join()
    assert done == {f"k{k}": list(range(k, 140, 7)) for k in range(7)}
    assert peak == 7  # every key at once, never two jobs of one key
    assert len(seq) == 0


async def test_sequencer_errors_stay_with_their_job() -> None:
    seq = KeyedSequencer()

    async def boom() -> None:
        raise ValueError("no")

    async def fine() -> str:
        return "ok"

    first, second = seq.submit("a", boom), seq.submit("a", fine)
    with pytest.raises(ValueError):
        await first
    assert await second == "ok"


class SlowEcho:
    """An engine that answers each text with itself after a random delay (as a database under
    load would), so that only the channel can keep one person's answers in order."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(default_language="vi")
        self.rng = random.Random(7)
        self.active = self.peak = 0

    async def handle(self, msg: IncomingMessage) -> list[Reply]:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(self.rng.uniform(0.0, 0.05))
        self.active -= 1
        return [Reply(f"{msg.text} (1)"), Reply(f"{msg.text} (2)")]


@pytest.fixture
async def polling() -> AsyncIterator[tuple[FakeTelegramAPI, TelegramChannel, SlowEcho]]:
    async with FakeTelegramAPI() as fake:
        engine = SlowEcho()
        channel = TelegramChannel(engine, fake.token, api_url=fake.base_url)  # type: ignore[arg-type]
        fake.latency = 0.02
        await channel.start()
        try:
            yield fake, channel, engine
        finally:
            await channel.stop()


async def test_one_persons_answers_stay_in_order(
    polling: tuple[FakeTelegramAPI, TelegramChannel, SlowEcho],
) -> None:
    fake, _channel, engine = polling
    people = [7001 + i for i in range(12)]
    per_person = 6
    for n in range(per_person):  # interleaved, as Telegram would deliver them
        for user in people:
            fake.add_text(user, f"m{n}")
    started = time.monotonic()
    await fake.wait_for_sent(len(people) * per_person * 2, timeout=30)
    elapsed = time.monotonic() - started
    for user in people:
        texts = [m.plain_text for m in fake.messages_to(user)]
        assert texts == [f"m{n} ({part})" for n in range(per_person) for part in (1, 2)], user
    # Different people at the same time: in sequence this would take at least
    # 72 updates x 2 sends x 20 ms of latency.
    assert engine.peak > 1
    assert elapsed < len(people) * per_person * 2 * fake.latency / 2


async def test_webhook_answers_after_the_replies_and_in_parallel() -> None:
    """Telegram posts to the webhook over several connections at once: different people are
    handled at the same time, and each answer comes after that update's replies were sent."""
    from aiohttp import ClientSession, web

    from tests.test_telegram_e2e import free_port

    async with FakeTelegramAPI() as fake:
        engine = SlowEcho()
        port = free_port()
        channel = TelegramChannel(engine, fake.token, api_url=fake.base_url,  # type: ignore[arg-type]
                                  webhook=True, webhook_secret="s3cret",
                                  public_url=f"http://127.0.0.1:{port}")  # fmt: skip
        app = web.Application()
        app.add_routes(channel.routes())
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await channel.start()
        fake.latency = 0.02
        users = [8001 + i for i in range(10)]

        async def post(http: ClientSession, user: int) -> list[str | None]:
            update = {"update_id": user, "message": {
                "message_id": 1, "date": 0, "text": f"hi {user}",
                "chat": {"id": user, "type": "private"},
                "from": {"id": user, "is_bot": False, "first_name": "Lan"}}}  # fmt: skip
            async with http.post(
                f"http://127.0.0.1:{port}/telegram/webhook", json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"},
            ) as answer:  # fmt: skip
                assert answer.status == 200
                return [m.plain_text for m in fake.messages_to(user)]

        try:
            async with ClientSession() as http:
                seen = await asyncio.gather(*(post(http, user) for user in users))
        finally:
            await channel.stop()
            await runner.cleanup()
    assert seen == [[f"hi {user} (1)", f"hi {user} (2)"] for user in users]
    assert engine.peak > 1
