"""Leader failover on PostgreSQL: two real `hocvuso serve` processes share the scheduled jobs;
the process that would run them is killed (kill -9) before a scheduled campaign is due, and
the other one still sends it, exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db.models import Campaign
from bot.services import campaigns, policy
from content.loader import Curriculum
from tests import campaigndata
from tests.conftest import _truncate_pg
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.test_dispatch import runtime, serve

pytestmark = [pytest.mark.pg, pytest.mark.slow]


async def test_scheduled_campaign_survives_the_leader(pg_database: str, tmp_path: Path,
                                                      curriculum: Curriculum) -> None:
    await _truncate_pg(pg_database)
    async with FakeTelegramAPI() as fake:
        rt = runtime(pg_database, fake, tmp_path)
        try:
            chats = await campaigndata.seed(rt.sessionmaker, rt.localities, 40)
            due = datetime.now(UTC) + timedelta(seconds=25)
            async with rt.sessionmaker() as session, session.begin():
                actor = await policy.load_actor(session, "telegram", campaigndata.OFFICER,
                                                rt.localities)
                audience = campaigns.Audience(unit="HPN-A")
                unit, locality = await campaigns.resolve_target(session, actor, audience,
                                                                rt.localities)
                draft = campaigns.new_draft(
                    actor, audience, unit, locality, text="Nhắc học bài VNeID.", button=None,
                    schedule="at", send_at=due, weekly_days=None, weekly_time=None,
                    now=datetime.now(UTC))
                session.add(draft)
                await session.flush()
                outcome = await campaigns.confirm(
                    session, draft, actor, localities=rt.localities, curriculum=curriculum,
                    channels=("telegram",), now=datetime.now(UTC))
                assert outcome == campaigns.SCHEDULED
                campaign_id = draft.id
            procs = [serve(pg_database, fake, tmp_path, f"p{i}", 100, webhook=True)
                     for i in range(2)]
            try:
                await asyncio.sleep(12)  # both up, both ticking the scheduler
                procs[0].send_signal(signal.SIGKILL)  # the would-be leader dies before it is due
                procs[0].wait(10)
                deadline = asyncio.get_running_loop().time() + 75
                status = None
                while asyncio.get_running_loop().time() < deadline:
                    async with rt.sessionmaker() as s:
                        status = await s.scalar(select(Campaign.status)
                                                .where(Campaign.id == campaign_id))
                    if status == "done":
                        break
                    await asyncio.sleep(0.5)
                assert status == "done", status
            finally:
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    proc.wait(20)
            received = Counter(m.chat_id for m in fake.sent)
            assert set(received) == set(chats)
            assert max(received.values()) == 1  # exactly once
        finally:
            await rt.close()


async def test_sigterm_during_a_campaign_loses_nothing(sqlite_url: str, tmp_path: Path,
                                                       curriculum: Curriculum) -> None:
    """SIGTERM mid-broadcast: the process stops within 10 s, the outbox stays consistent, and
    after a restart every recipient has the message; at most the sends in flight at the
    signal are repeated (a send Telegram accepted whose outcome was not yet written)."""
    import time

    from tests.test_dispatch import wait_done, wait_sent

    async with FakeTelegramAPI() as fake:
        rate = 60
        fake.global_rate, fake.per_chat_rate = rate, 1
        rt = runtime(sqlite_url, fake, tmp_path)
        try:
            chats = await campaigndata.seed(rt.sessionmaker, rt.localities, 400)
            campaign = await campaigndata.start_campaign(rt.sessionmaker, rt.localities,
                                                         curriculum)
            proc = serve(sqlite_url, fake, tmp_path, "bot", rate)
            try:
                await wait_sent(fake, 120, timeout=60)
            finally:
                proc.send_signal(signal.SIGTERM)
                started = time.monotonic()
                code = proc.wait(15)
            assert code == 0 and time.monotonic() - started < 10
            stopped_at = len(fake.sent)
            assert stopped_at < 400  # it really stopped mid-way
            proc = serve(sqlite_url, fake, tmp_path, "bot", rate)
            try:
                await wait_done(rt, campaign.id, timeout=60)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
            received = Counter(m.chat_id for m in fake.sent)
            assert set(received) == set(chats)
            duplicates = sum(n - 1 for n in received.values())
            assert duplicates <= 20, (duplicates, stopped_at)  # 20 = sends in flight at most
            assert await campaigndata.statuses(rt.sessionmaker, campaign.id) == {"sent": 400}
        finally:
            await rt.close()
