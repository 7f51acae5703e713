"""Many citizens at once for the campaign and dispatch tests (bulk inserts, not the chat), and
a campaign started the way the wizard starts one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Campaign, Delivery, Identity, Membership, Person
from bot.localities import LocalityIndex
from bot.services import campaigns, orgs, policy
from content.loader import Curriculum
from tests import orgdata

OFFICER = "officer-1"  # the province administrator who sends the test campaigns
FIRST_CHAT = 500_000


async def seed(sessionmaker: async_sessionmaker[AsyncSession], localities: LocalityIndex,
               n: int, *, channel: str = "telegram", unit: str | None = "HPN-A",
               commune: int = orgdata.A, now: datetime = orgdata.NOW,
               first_chat: int = FIRST_CHAT) -> list[int]:  # fmt: skip
    """The orgdata units, a province admin on `channel`, and `n` consenting citizens of
    `commune`, members of `unit`, each with one identity on `channel` (chat ids from
    `first_chat`). Returns the chat ids."""
    async with sessionmaker() as session, session.begin():
        if await orgs.get_unit(session, "HPN-A") is None:
            await orgdata.add_units(session, localities)
        from bot.services import officers

        await officers.grant(session, channel=channel, external_id=OFFICER,
                             role=policy.PROVINCE_ADMIN, unit=None, locality=None, by="test",
                             now=now, localities=localities)  # fmt: skip
        start = int(await session.scalar(select(func.coalesce(func.max(Person.id), 0))) or 0)
        people = [{"id": start + i + 1, "person_key": f"k{start + i + 1:030d}",
                   "display_name": f"Người {i}", "commune_code": commune, "language": "vi",
                   "consent_version": "t", "consented_at": now - timedelta(days=20),
                   "created_at": now - timedelta(days=20),
                   "last_active_at": now - timedelta(days=10), "campaigns_opt_out": False}
                  for i in range(n)]  # fmt: skip
        chats = [first_chat + i for i in range(n)]
        for i in range(0, n, 500):
            await session.execute(insert(Person), people[i:i + 500])
            await session.execute(insert(Identity), [
                {"channel": channel, "external_id": str(chats[j]), "chat_id": str(chats[j]),
                 "person_id": people[j]["id"], "consent": "given", "language": "vi",
                 "state": "", "state_data": {}, "created_at": now - timedelta(days=20),
                 "last_inbound_at": now - timedelta(days=10)}
                for j in range(i, min(n, i + 500))])  # fmt: skip
            if unit is not None:
                await session.execute(insert(Membership), [
                    {"person_id": people[j]["id"], "org_type": "hoi_phu_nu", "unit_code": unit,
                     "since": now - timedelta(days=20)} for j in range(i, min(n, i + 500))])
    return chats


async def start_campaign(sessionmaker: async_sessionmaker[AsyncSession],
                         localities: LocalityIndex, curriculum: Curriculum, *,
                         channel: str = "telegram", audience: campaigns.Audience | None = None,
                         text: str = "Mời bạn học bài **phòng tránh lừa đảo** trước Tết.",
                         now: datetime | None = None,
                         button: tuple[str, str] | None = ("les", "vneid-cai-dat")
                         ) -> Campaign:  # fmt: skip
    """A campaign of the province admin, confirmed to be sent now (outbox written)."""
    audience = audience or campaigns.Audience(unit="HPN-A")
    now = now or datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        actor = await policy.load_actor(session, channel, OFFICER, localities)
        unit, locality = await campaigns.resolve_target(session, actor, audience, localities)
        draft = campaigns.new_draft(actor, audience, unit, locality, text=text, button=button,
                                    schedule="now", send_at=None, weekly_days=None,
                                    weekly_time=None, now=now)  # fmt: skip
        session.add(draft)
        await session.flush()
        outcome = await campaigns.confirm(session, draft, actor, localities=localities,
                                          curriculum=curriculum, channels=(channel,),
                                          now=now)  # fmt: skip
        assert outcome == campaigns.SENDING, outcome
        return draft


async def statuses(sessionmaker: async_sessionmaker[AsyncSession],
                   campaign_id: int) -> dict[str, int]:  # fmt: skip
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status))  # fmt: skip
        return {status: n for status, n in rows}
