"""Campaign dispatch against the local Bot API stand-in, which enforces Telegram's limits (30
messages/s overall, 1/s per chat, 429 with retry_after) and answers 403 for chats that blocked
the bot: counts add up exactly, blocked people are left out of the next campaign, network
errors are retried, replies go first. Slow tests: kill -9 of a real `hocvuso serve` in the
middle of a campaign, and two processes dispatching one campaign on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from telegram.error import RetryAfter

from bot.app import build_runtime
from bot.channels.ratelimit import BROADCAST, REPLY, ReplyRateLimiter, SendLimiter
from bot.db.models import Campaign, Delivery, Identity, ParticipationEvent, Person
from bot.runtime import Runtime
from bot.services import campaigns, progress
from bot.settings import Settings
from content.loader import Curriculum
from scheduler.dispatch import Dispatcher, TelegramSender
from tests import campaigndata, orgdata
from tests.fakes.telegram_api import FakeTelegramAPI

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as api:
        yield api


def runtime(db_url: str, fake: FakeTelegramAPI, tmp_path: Path, rate: float = 30) -> Runtime:
    settings = Settings(_env_file=None, database_url=db_url, telegram_token=fake.token,
                        telegram_api_url=fake.base_url, data_dir=tmp_path,
                        telegram_rate=rate)  # type: ignore[call-arg]  # fmt: skip
    return build_runtime(settings)  # the real clock: retries wait real seconds


async def dispatch_all(rt: Runtime, rate: float = 30, **kw: object) -> Dispatcher:
    dispatcher = Dispatcher(rt, TelegramSender(rt, SendLimiter(rate)), **kw)  # type: ignore[arg-type]
    await dispatcher.start()
    try:
        await dispatcher.drained(timeout=60)
    finally:
        await dispatcher.stop()
    return dispatcher


def sends_to(fake: FakeTelegramAPI) -> Counter[int]:
    return Counter(m.chat_id for m in fake.sent)


async def test_counts_add_up_and_blocked_are_left_out_next_time(
        db_url: str, fake: FakeTelegramAPI, tmp_path: Path, curriculum: Curriculum) -> None:
    fake.global_rate, fake.per_chat_rate = 30, 1
    rt = runtime(db_url, fake, tmp_path)
    try:
        chats = await campaigndata.seed(rt.sessionmaker, rt.localities, 45)
        blocked = set(chats[:5])
        fake.blocked_chats |= blocked
        # Two transient failures (500, 502) and one 429 from Telegram on the first sends.
        fake.fail_next = [500, 429, 502]
        first = await campaigndata.start_campaign(rt.sessionmaker, rt.localities, curriculum)
        started = time.monotonic()
        d = await dispatch_all(rt)
        took = time.monotonic() - started
        counts = await campaigndata.statuses(rt.sessionmaker, first.id)
        assert counts == {"sent": 40, "blocked": 5}, counts
        assert sum(counts.values()) == first.audience_size == 45
        received = sends_to(fake)
        assert set(received) == set(chats) - blocked
        assert max(received.values()) == 1  # nothing repeated, despite 5xx and the 429
        assert fake.rejected_429 == 1  # only the injected one: the limiter kept to 30/s
        assert d.stats.rate_limited == 1
        assert took < 10
        async with rt.sessionmaker() as s:
            c = await s.get(Campaign, first.id)
            assert c is not None and c.status == "done"
            assert (c.sent, c.failed, c.skipped, c.blocked) == (40, 0, 0, 5)
            unreachable = await s.scalar(select(func.count()).select_from(Identity).where(
                Identity.unreachable_at.is_not(None)))
            assert unreachable == 5
            events = await s.scalar(select(func.count()).select_from(ParticipationEvent).where(
                ParticipationEvent.kind == "campaign_delivered"))
            assert events == 40
            # Each carries the person's snapshot and the campaign, as `progress.record` would.
            event = await s.scalar(select(ParticipationEvent).where(
                ParticipationEvent.kind == "campaign_delivered").limit(1))  # fmt: skip
            assert event is not None
            person = await s.scalar(select(Person).where(Person.person_key == event.person_key))
            assert person is not None
            snap = progress.snapshot(person)
            assert {k: getattr(event, k) for k in snap} == snap
            assert snap["memberships"] == "hoi_phu_nu" and snap["unit_codes"] == "HPN-A"
            assert event.detail == {"campaign": first.id, "unit": "HPN-A",
                                    "locality": first.locality_code}  # fmt: skip
            assert event.channel == "telegram"
        message = fake.sent[-1]
        assert message.plain_text and "phòng tránh lừa đảo" in message.plain_text
        assert [p for _label, p in message.buttons] == ["les:vneid-cai-dat", "camp:off"]

        # The next campaign leaves the blocked people out: its audience is 40.
        second = await campaigndata.start_campaign(rt.sessionmaker, rt.localities, curriculum,
                                                   text="Nhắc lại: học bài VNeID")
        assert second.audience_size == 40
        await dispatch_all(rt)
        assert await campaigndata.statuses(rt.sessionmaker, second.id) == {"sent": 40}
        assert all(sends_to(fake)[c] == 2 for c in chats[5:])
    finally:
        await rt.close()


async def test_network_errors_retry_then_fail_after_three_tries(
        db_url: str, fake: FakeTelegramAPI, tmp_path: Path, curriculum: Curriculum) -> None:
    rt = runtime(db_url, fake, tmp_path)
    try:
        await campaigndata.seed(rt.sessionmaker, rt.localities, 3)
        campaign = await campaigndata.start_campaign(rt.sessionmaker, rt.localities,
                                                     curriculum, button=None)
        fake.fail_next = [503] * 9  # every try of every row fails
        from scheduler import dispatch

        saved, dispatch.BACKOFF = dispatch.BACKOFF, (0.05, 0.05)
        try:
            await dispatch_all(rt)
        finally:
            dispatch.BACKOFF = saved
        counts = await campaigndata.statuses(rt.sessionmaker, campaign.id)
        assert counts == {"failed": 3}
        async with rt.sessionmaker() as s:
            attempts = set(await s.scalars(select(Delivery.attempts)))
            reasons = set(await s.scalars(select(Delivery.reason)))
        assert attempts == {3}
        assert reasons == {"Service Unavailable"}
        assert not fake.sent
    finally:
        await rt.close()


async def test_cancel_stops_a_running_campaign(
        db_url: str, fake: FakeTelegramAPI, tmp_path: Path, curriculum: Curriculum) -> None:
    fake.global_rate = 30
    rt = runtime(db_url, fake, tmp_path)
    try:
        await campaigndata.seed(rt.sessionmaker, rt.localities, 90)
        campaign = await campaigndata.start_campaign(rt.sessionmaker, rt.localities, curriculum)
        d = Dispatcher(rt, TelegramSender(rt, SendLimiter(30)))
        await d.start()
        try:
            await fake.wait_for_sent(20, timeout=10)
            async with rt.sessionmaker() as s, s.begin():
                row = await s.get(Campaign, campaign.id)
                assert row is not None
                assert await campaigns.cancel(s, row, by="test:officer", now=orgdata.NOW)
            at_cancel = len(fake.sent)
            await asyncio.sleep(1.5)
            await d.drained(timeout=10)
        finally:
            await d.stop()
        # At most the sends in flight at the cancel went out after it (and those granted
        # before the dispatcher noticed, within a quarter of a second).
        assert len(fake.sent) - at_cancel <= d.workers + 30 * 0.3
        counts = await campaigndata.statuses(rt.sessionmaker, campaign.id)
        assert sum(counts.values()) == 90
        assert counts["sent"] == len(fake.sent)
        assert counts["skipped"] == 90 - len(fake.sent)
        async with rt.sessionmaker() as s:
            row = await s.get(Campaign, campaign.id)
            assert row is not None and row.status == "cancelled"
            # A cancelled campaign cannot be started again.
            assert await campaigns._move(s, campaign.id, (campaigns.DRAFT,),
                                         status=campaigns.SENDING) is False
    finally:
        await rt.close()


async def test_replies_go_first() -> None:
    """A broadcast saturates the budget; a reply still gets a slot at once, and no window of
    one second ever holds more sends than the budget."""
    limiter = SendLimiter(20, margin=0.005)
    granted: list[tuple[float, int]] = []

    async def send(chat: str, lane: int) -> None:
        await limiter.acquire(chat, lane)
        granted.append((time.monotonic(), lane))

    broadcast = [asyncio.create_task(send(f"b{i}", BROADCAST)) for i in range(60)]
    await asyncio.sleep(1.2)  # the broadcast has filled the window
    waits = []
    for i in range(5):
        t = time.monotonic()
        await send(f"r{i}", REPLY)
        waits.append(time.monotonic() - t)
        await asyncio.sleep(0.25)
    await asyncio.gather(*broadcast)
    assert max(waits) < 0.06, waits
    times = sorted(t for t, _lane in granted)
    assert all(times[i + 20] - times[i] >= 1.0 for i in range(len(times) - 20))
    # One chat gets broadcasts at most once a second; replies may burst a little.
    chat = SendLimiter(100, chat_burst=3)
    t0 = time.monotonic()
    await chat.acquire("c", BROADCAST)
    await chat.acquire("c", BROADCAST)
    assert time.monotonic() - t0 >= 1.0
    t0 = time.monotonic()
    for _ in range(3):
        await chat.acquire("d", REPLY)
    assert time.monotonic() - t0 < 0.05


async def test_limiter_reply_lane_per_chat_and_broadcast_share() -> None:
    """Replies to one chat may burst until a 429 right after a burst shows the API's per-chat
    limit; from then on they keep to it and wait (instead of drawing a 429 that would cost a
    second and stop the broadcast), without holding up other chats' replies. Broadcasts alone
    never fill the last slot of the window, which a reply then finds at once."""
    limiter = SendLimiter(30, margin=0.005)
    assert not limiter.learn_chat_burst("lone")  # a 429 out of the blue teaches nothing
    replies = ReplyRateLimiter(limiter)
    calls: list[float] = []

    async def post() -> bool:  # Telegram: at most 3 messages a second to chat "a"
        calls.append(time.monotonic())
        if len(calls) == 4:
            raise RetryAfter(timedelta(seconds=0.2))
        return True

    for _ in range(4):  # no limit known yet: replies burst; the 4th draws a 429
        await replies.process_request(post, (), {}, "sendMessage", {"chat_id": "a"}, None)
    assert limiter.chat_burst == 3 and len(calls) == 5
    assert calls[4] - calls[0] >= 1.0  # sent again once "a" had room
    t0 = time.monotonic()
    for _ in range(3):
        await limiter.acquire("c", REPLY)
    assert time.monotonic() - t0 < 0.05
    fourth = asyncio.create_task(limiter.acquire("c", REPLY))
    await asyncio.sleep(0.05)
    assert not fourth.done()
    t1 = time.monotonic()
    await limiter.acquire("other", REPLY)  # not behind the chat that has to wait
    assert time.monotonic() - t1 < 0.05
    await fourth
    assert time.monotonic() - t0 >= 1.0

    small = SendLimiter(5, margin=0.005, chat_interval=0.0)
    broadcast = [asyncio.create_task(small.acquire(f"b{i}", BROADCAST)) for i in range(8)]
    await asyncio.sleep(0.95)  # four granted (paced), the fifth slot is kept for replies
    assert small.granted[BROADCAST] == 4 and len(small._sent) == 4
    t2 = time.monotonic()
    await small.acquire("r", REPLY)
    assert time.monotonic() - t2 < 0.02
    assert len(small._sent) == 5
    for task in broadcast:
        task.cancel()
    await asyncio.gather(*broadcast, return_exceptions=True)


async def test_limiter_dates_a_send_when_its_sender_resumes() -> None:
    """A granted send whose task resumes late is counted from when it actually goes out, so
    the event loop's lag does not eat the window's margin."""
    now = [0.0]
    limiter = SendLimiter(2, margin=0.0, chat_interval=0.0, clock=lambda: now[0])
    await limiter.acquire("a", REPLY)
    await limiter.acquire("b", REPLY)
    waiting = asyncio.create_task(limiter.acquire("c", REPLY))
    await asyncio.sleep(0)
    assert not waiting.done()
    now[0] = 1.5
    limiter._wake()  # the slot is granted at 1.5 ...
    now[0] = 1.7  # ... and the task gets to run at 1.7
    await waiting
    assert limiter._sent[-1][0] == 1.7


# ---------------------------------------------------------------------------- processes


def serve(db_url: str, fake: FakeTelegramAPI, tmp_path: Path, name: str, rate: int,
          webhook: bool = False) -> subprocess.Popen[bytes]:  # fmt: skip
    from tests.test_telegram_e2e import free_port

    port = free_port()
    env = {**os.environ, "HOCVUSO_DATABASE_URL": db_url, "HOCVUSO_TELEGRAM_TOKEN": fake.token,
           "HOCVUSO_TELEGRAM_API_URL": fake.base_url, "HOCVUSO_WEB_PORT": str(port),
           "HOCVUSO_DATA_DIR": str(tmp_path / name), "HOCVUSO_TELEGRAM_RATE": str(rate),
           "HOCVUSO_LOG_LEVEL": "WARNING"}  # fmt: skip
    if webhook:
        env.update(HOCVUSO_TELEGRAM_WEBHOOK="on", HOCVUSO_PUBLIC_URL=f"http://127.0.0.1:{port}",
                   HOCVUSO_WEBHOOK_SECRET=f"secret-{name}")
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


async def wait_sent(fake: FakeTelegramAPI, n: int, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while len(fake.sent) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(fake.sent)} sent, waiting for {n}")
        await asyncio.sleep(0.02)


async def wait_done(rt: Runtime, campaign_id: int, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with rt.sessionmaker() as s:
            status = await s.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        if status == "done":
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"campaign {campaign_id} not done")


@pytest.mark.slow
async def test_kill_9_twice_mid_campaign_loses_no_one(
        sqlite_url: str, fake: FakeTelegramAPI, tmp_path: Path, curriculum: Curriculum) -> None:
    rate = 150
    fake.global_rate, fake.per_chat_rate = rate, 1
    rt = runtime(sqlite_url, fake, tmp_path)
    try:
        chats = await campaigndata.seed(rt.sessionmaker, rt.localities, 2000)
        campaign = await campaigndata.start_campaign(rt.sessionmaker, rt.localities, curriculum)
        marks = []
        for stop_at in (500, 1200):
            proc = serve(sqlite_url, fake, tmp_path, "bot", rate)
            try:
                await wait_sent(fake, stop_at, timeout=60)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            marks.append(len(fake.sent))
        proc = serve(sqlite_url, fake, tmp_path, "bot", rate)
        try:
            await wait_done(rt, campaign.id, timeout=90)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        received = sends_to(fake)
        assert set(received) == set(chats)  # every recipient got it
        duplicates = sum(n - 1 for n in received.values())
        in_flight = int(min(400, max(8, rate / 3))) + 100  # workers + one batch of outcomes
        assert duplicates <= 2 * in_flight, (duplicates, marks)
        counts = await campaigndata.statuses(rt.sessionmaker, campaign.id)
        assert counts == {"sent": 2000}
        # The bot runs at exactly the stand-in's limit: network jitter beyond the limiter's
        # margin (a loaded machine) may draw a rare 429, which is waited out and loses nothing.
        assert fake.rejected_429 <= 3
        print(f"kill -9 at {marks} sends: duplicates {duplicates}, 429s {fake.rejected_429}")
    finally:
        await rt.close()


@pytest.mark.slow
@pytest.mark.pg
async def test_two_processes_on_postgresql_send_each_message_once(
        pg_database: str, fake: FakeTelegramAPI, tmp_path: Path, curriculum: Curriculum) -> None:
    from tests.conftest import _truncate_pg

    await _truncate_pg(pg_database)
    rt = runtime(pg_database, fake, tmp_path)
    try:
        chats = await campaigndata.seed(rt.sessionmaker, rt.localities, 1000)
        campaign = await campaigndata.start_campaign(rt.sessionmaker, rt.localities, curriculum)
        procs = [serve(pg_database, fake, tmp_path, f"bot{i}", 100, webhook=True)
                 for i in range(2)]
        try:
            await wait_done(rt, campaign.id, timeout=90)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(20)
        received = sends_to(fake)
        assert set(received) == set(chats)
        assert max(received.values()) == 1  # no message sent twice
        assert await campaigndata.statuses(rt.sessionmaker, campaign.id) == {"sent": 1000}
        # Both processes took part: together they beat one process's 100/s.
        times = sorted(m.time for m in fake.sent)
        assert (times[-1] - times[0]) < 1000 / 100
    finally:
        await rt.close()


async def test_zalo_oa_outside_the_window_is_skipped_with_the_reason(
        db_url: str, curriculum: Curriculum) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import update

    from bot.app import Server, make_channels
    from tests.fakes.zalo_oa_api import FakeZaloOA
    from tests.test_zalo_oa import oa_settings

    async with FakeZaloOA() as oa_api:
        settings = oa_settings(oa_api, db_url)
        rt = build_runtime(settings)
        chats = await campaigndata.seed(rt.sessionmaker, rt.localities, 4, channel="zalo-oa")
        now = datetime.now(UTC)
        recent = [str(c) for c in chats[:2]]
        async with rt.sessionmaker() as s, s.begin():
            await s.execute(update(Identity).where(Identity.external_id.in_(recent))
                            .values(last_inbound_at=now))
        for user in recent:
            oa_api.last_interaction[user] = now
        server = Server(rt, make_channels(rt))
        await server.start()
        try:
            campaign = await campaigndata.start_campaign(rt.sessionmaker, rt.localities,
                                                         curriculum, channel="zalo-oa")
            dispatcher = server.dispatch.by_channel("zalo-oa")  # type: ignore[union-attr]
            assert dispatcher is not None
            dispatcher.wake()
            await dispatcher.drained(timeout=20)
            async with rt.sessionmaker() as s:
                rows = (await s.execute(select(Identity.external_id, Delivery.status,
                                               Delivery.reason).join(
                    Identity, Identity.id == Delivery.identity_id)
                    .where(Delivery.campaign_id == campaign.id))).all()
        finally:
            await server.stop()
    by_user = {user: (status, reason) for user, status, reason in rows}
    assert {u: by_user[u][0] for u in recent} == {u: "sent" for u in recent}
    for user in (str(c) for c in chats[2:]):
        status, reason = by_user[user]
        assert status == "skipped" and reason and "outside the messaging window" in reason
    assert sorted(m.user_id for m in oa_api.sent) == sorted(recent)
    assert all(any(p.endswith("camp:off") for _t, p in m.buttons) for m in oa_api.sent)
