"""Campaigns in the chat and in SQL: the officer's wizard inside and outside the scope, bad
input refused with nothing half-sent, "send" pressed twice handled once, the audience and its
filters, scheduling that fires once, cancelling, the opt-out button and /settings, people
engaged (last touch), and /mydata and /delete. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.db.models import AuditLog, Campaign, Delivery, Identity, LessonProgress, Person
from bot.db.models import ParticipationEvent as Event
from bot.domain import CONSENT_VERSION
from bot.engine import Engine
from bot.services import campaigns, policy
from bot.services.campaigns import Audience
from handlers.common import unknown_command
from tests import orgdata
from tests.conftest import Chat, Clock

SCOPE = "nằm ngoài phạm vi"


@pytest.fixture
async def world(core: Engine) -> Engine:
    await orgdata.build(core.sessionmaker, core.localities)
    core.extras["campaign_channels"] = ("test",)
    return core


async def n_rows(core: Engine, model: type, *where: object) -> int:
    async with core.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def wizard(chat: Chat, audience: str, text: str = "Mời chị em học bài VNeID.") -> int:
    """Run the wizard to the confirmation; the draft's id."""
    await chat.say("/campaign")
    await chat.payload(audience)
    await chat.press("camp:next")
    await chat.say(text)
    await chat.press("camp:btn:m:vneid")
    replies = await chat.press("camp:btn:les:vneid-cai-dat")
    preview = replies[1]
    assert [b.payload for b in preview.flat_buttons] == ["les:vneid-cai-dat", "camp:off"]
    await chat.press("camp:when:now")
    go = next(p for _label, p in chat.buttons if p.startswith("camp:go:"))
    return int(go.rsplit(":", 1)[1])


async def test_wizard_sends_once_even_when_pressed_twice(world: Engine) -> None:
    oa, op = Chat(world, "oa"), Chat(world, "op")
    campaign_id = await wizard(oa, "camp:aud:u:HPN-A")
    assert "Hiện gửi được tới: 1 người" in oa.text(oa.history[-1:])
    assert await n_rows(world, Delivery) == 0  # a draft sends nothing
    # Two officers press "send" on the same draft at the same time: it is sent once.
    first, second = await asyncio.gather(oa.payload(f"camp:go:{campaign_id}"),
                                         op.payload(f"camp:go:{campaign_id}"))
    texts = [oa.text(first), op.text(second)]
    assert sum("đang được gửi tới 1 người" in t for t in texts) == 1, texts
    assert sum("đã được bắt đầu" in t for t in texts) == 1, texts
    assert "đã được bắt đầu" in oa.text(await oa.payload(f"camp:go:{campaign_id}"))
    async with world.sessionmaker() as s:
        rows = (await s.execute(select(Delivery.status, Identity.external_id).join(
            Identity, Identity.id == Delivery.identity_id))).all()
        campaign = await s.get(Campaign, campaign_id)
        sends = await s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "campaign_send"))
    assert rows == [("pending", "citizen-lan")]  # lan; vy withdrew her consent
    assert campaign is not None and campaign.status == "sending"
    assert campaign.audience_size == 1 and campaign.button_target == "vneid-cai-dat"
    assert sends == 1
    listing = oa.text(await oa.say("/campaigns"))
    assert f"#{campaign_id} (đang gửi)" in listing and "1 người nhận" in listing
    assert f"camp:stop:{campaign_id}" in [p for _l, p in oa.buttons]
    assert "Đã hủy chiến dịch" in oa.text(await oa.press(f"camp:stop:{campaign_id}"))
    assert await n_rows(world, Delivery, Delivery.status == "skipped") == 1
    # Cancelled: it cannot be started or cancelled again.
    assert "đã bị hủy" in oa.text(await oa.payload(f"camp:go:{campaign_id}"))
    assert "đã kết thúc" in oa.text(await oa.payload(f"camp:stop:{campaign_id}"))


@pytest.mark.parametrize(("account", "command"), [
    ("oa", "/campaign HPN-B"), ("oa", "/campaign 14215"), ("oa", "/campaign NO-SUCH"),
    ("la", "/campaign 13579"), ("la", "/campaign HPN-B"), ("ob", "/campaign 37"),
    ("ma", "/campaign 13579"),
])  # fmt: skip
async def test_audience_outside_the_scope_is_refused(world: Engine, account: str,
                                                     command: str) -> None:
    chat = Chat(world, account)
    assert SCOPE in chat.text(await chat.say(command))
    assert await n_rows(world, AuditLog, AuditLog.action == "refused") == 1
    assert await n_rows(world, Campaign) == 0


async def test_forged_buttons_and_citizens(world: Engine) -> None:
    oa = Chat(world, "oa")
    await oa.say("/campaign")
    assert SCOPE in oa.text(await oa.payload("camp:aud:u:HPN-B"))  # a forged audience
    campaign_id = await wizard(Chat(world, "op"), "camp:aud:u:HPN-B")
    # Another unit's officer cannot send or cancel it.
    assert SCOPE in oa.text(await oa.payload(f"camp:go:{campaign_id}"))
    assert SCOPE in oa.text(await oa.payload(f"camp:stop:{campaign_id}"))
    citizen = Chat(world, "citizen-lan")
    for command in ("/campaign", "/campaigns", "/activity"):
        name = command[1:]
        assert citizen.text(await citizen.say(command)) == unknown_command(name)[0].text
    assert "không còn dùng được" in citizen.text(await citizen.payload(f"camp:go:{campaign_id}"))
    async with world.sessionmaker() as s:
        assert await s.scalar(select(Campaign.status)) == "draft"
    assert await n_rows(world, Delivery) == 0


async def test_bad_input_is_refused_and_nothing_is_half_sent(world: Engine) -> None:
    oa = Chat(world, "oa")
    await oa.say("/campaign")
    await oa.press("camp:aud:u:HPN-A")
    await oa.press("camp:fl:en")  # nobody there speaks English
    assert "Hiện gửi được tới:** 0 người" in oa.text(oa.history[-1:])
    assert "Hiện không ai" in oa.text(await oa.press("camp:next"))
    await oa.press("camp:f:clear")
    await oa.press("camp:next")
    too_long = "a" * (campaigns.MAX_TEXT + 1)
    assert "dài 2.001 ký tự" in oa.text(await oa.say(too_long))
    await oa.say("Học bài phòng tránh lừa đảo")
    await oa.press("camp:btn:none")
    await oa.press("camp:when:at")
    assert "đã qua" in oa.text(await oa.say("01/01/2026 08:00"))
    assert "theo mẫu" in oa.text(await oa.say("ngày mai"))
    replies = await oa.say("05/03/2026 08:00")  # three days after the test clock's now
    assert "lúc 08:00 05/03/2026" in oa.text(replies)
    go = next(p for _l, p in oa.buttons if p.startswith("camp:go:"))
    assert "Đã hẹn gửi" in oa.text(await oa.press(go))
    assert await n_rows(world, Delivery) == 0
    async with world.sessionmaker() as s:
        c = await s.scalar(select(Campaign))
    assert c is not None and c.status == "scheduled" and c.schedule == "at"
    # A weekly campaign: days, then the time.
    await oa.say("/campaign HPN-A")
    await oa.press("camp:next")
    await oa.say("Sinh hoạt chi hội hằng tuần")
    await oa.press("camp:btn:none")
    await oa.press("camp:when:weekly")
    assert "ít nhất một ngày" in oa.text(await oa.press("camp:days:done"))
    await oa.press("camp:day:0")
    await oa.press("camp:day:3")
    await oa.press("camp:days:done")
    assert "theo mẫu: 08:30" in oa.text(await oa.say("25:00"))
    replies = await oa.say("7:30")
    assert "hằng tuần vào Thứ Hai, Thứ Năm, lúc 07:30" in oa.text(replies)
    drop = next(p for _l, p in oa.buttons if p.startswith("camp:drop:"))
    assert "Đã bỏ chiến dịch" in oa.text(await oa.press(drop))
    # A stale wizard button does nothing.
    assert "không còn dùng được" in oa.text(await oa.payload("camp:when:now"))


async def test_audience_filters_in_sql(world: Engine, clock: Clock) -> None:
    now = clock()
    channels = ("test",)
    async with world.sessionmaker() as s, s.begin():
        p1 = await policy.load_actor(s, "test", "p1", world.localities)
        la = await policy.load_actor(s, "test", "la", world.localities)

        async def size(actor: policy.Actor, **kw: object) -> int:
            return await campaigns.audience_size(s, actor, Audience(**kw),  # type: ignore[arg-type]
                                                 localities=world.localities,
                                                 curriculum=world.curriculum,
                                                 channels=channels, now=now)  # fmt: skip

        assert await size(p1, locality=37) == 4  # lan, mai, hoa, tuan (vy withdrew)
        assert await size(la, locality=orgdata.A) == 2  # lan, hoa
        assert await size(la, unit="DOAN-A") == 2  # lan, and tuan who lives in B
        assert await size(p1, unit="HPN-37") == 2  # lan, mai
        people = {p.display_name: p for p in await s.scalars(select(Person))}
        await s.execute(update(Person).values(last_active_at=now - timedelta(days=3)))
        people["Mai"].last_active_at = now - timedelta(days=40)
        people["Hoa"].language = "en"
        for lesson in world.curriculum.module("vneid").lessons:  # type: ignore[union-attr]
            s.add(LessonProgress(person_id=people["Lan"].id, lesson_id=lesson.id,
                                 module_id="vneid", quiz_passed_at=now))
        await s.flush()
        assert await size(p1, locality=37, idle_days=30) == 1  # mai
        assert await size(p1, locality=37, language="en") == 1  # hoa
        assert await size(p1, locality=37, module="vneid") == 3  # lan finished it
        people["Tuan"].campaigns_opt_out = True
        await s.execute(update(Identity).where(Identity.external_id == "citizen-mai")
                        .values(unreachable_at=now))  # she blocked the bot
        await s.flush()
        assert await size(p1, locality=37) == 2
        assert await size(p1, locality=37, module="vneid", language="vi") == 0
        with pytest.raises(campaigns.AudienceError):
            await size(la, locality=37)


async def test_scheduled_campaigns_fire_once(world: Engine, clock: Clock) -> None:
    now = clock()
    async with world.sessionmaker() as s, s.begin():
        actor = await policy.load_actor(s, "test", "oa", world.localities)
        unit, loc = await campaigns.resolve_target(s, actor, Audience(unit="HPN-A"),
                                                   world.localities)
        once = campaigns.new_draft(actor, Audience(unit="HPN-A"), unit, loc, text="Một lần",
                                   button=None, schedule="at", send_at=now + timedelta(hours=1),
                                   weekly_days=None, weekly_time=None, now=now)  # fmt: skip
        weekly = campaigns.new_draft(actor, Audience(unit="HPN-A"), unit, loc, text="Hằng tuần",
                                     button=None, schedule="weekly", send_at=None,
                                     weekly_days=[0], weekly_time="08:00", now=now)  # fmt: skip
        s.add_all([once, weekly])
        await s.flush()
        kw = {"localities": world.localities, "curriculum": world.curriculum,
              "channels": ("test",)}
        assert await campaigns.confirm(s, once, actor, now=now, **kw) == "scheduled"
        assert await campaigns.confirm(s, weekly, actor, now=now, **kw) == "scheduled"
        assert await campaigns.confirm(s, once, actor, now=now, **kw) == "gone"
        # 2026-03-02 is a Monday, 10:00 in Vietnam: the next Monday 08:00 is a week later.
        assert weekly.next_run_at == now + timedelta(days=7) - timedelta(hours=2)
        ids = (once.id, weekly.id)
    kw = {"localities": world.localities, "curriculum": world.curriculum, "channels": ("test",)}

    async def fire(at: object) -> list[int]:
        async with world.sessionmaker() as s, s.begin():
            return await campaigns.fire_due(s, now=at, **kw)  # type: ignore[arg-type]

    assert await fire(now) == []
    later = now + timedelta(days=8)
    started = await asyncio.gather(fire(later), fire(later))
    fired = sorted(i for batch in started for i in batch)
    assert len(fired) == 2 and ids[0] in fired  # once, and one run of the weekly campaign
    assert await fire(later) == []
    async with world.sessionmaker() as s:
        run = await s.scalar(select(Campaign).where(Campaign.parent_id == ids[1]))
        parent = await s.get(Campaign, ids[1])
        assert run is not None and run.status == "sending" and run.audience_size == 1
        assert parent is not None and parent.status == "scheduled"
        assert parent.next_run_at is not None and parent.next_run_at > later
        counts = await campaigns.counts(s, [ids[1]])
    assert counts[ids[1]].pending == 1
    assert await n_rows(world, Delivery) == 2


async def test_opt_out_engagement_and_privacy(world: Engine, clock: Clock) -> None:
    now = clock()
    lan = Chat(world, "citizen-lan")
    async with world.sessionmaker() as s, s.begin():
        await s.execute(update(Person).values(consent_version=CONSENT_VERSION))
        actor = await policy.load_actor(s, "test", "oa", world.localities)
        unit, loc = await campaigns.resolve_target(s, actor, Audience(unit="HPN-A"),
                                                   world.localities)
        ids = []
        for text, ago in (("Cũ", 9), ("Mới", 1)):
            c = campaigns.new_draft(actor, Audience(unit="HPN-A"), unit, loc, text=text,
                                    button=None, schedule="now", send_at=None,
                                    weekly_days=None, weekly_time=None, now=now)
            s.add(c)
            await s.flush()
            kw = {"localities": world.localities, "curriculum": world.curriculum,
                  "channels": ("test",)}
            assert await campaigns.confirm(s, c, actor, now=now, **kw) == "sending"
            await s.execute(update(Delivery).where(Delivery.campaign_id == c.id).values(
                status="sent", sent_at=now - timedelta(days=ago), delivered_at=now))
            ids.append(c.id)
    # Starting a lesson credits the latest campaign delivered within 7 days, once.
    await lan.payload("les:vneid-cai-dat")
    await lan.payload("les:scam-nhan-dien")
    async with world.sessionmaker() as s:
        engaged = list(await s.scalars(select(Event).where(Event.kind == "campaign_engaged")))
        counts = await campaigns.counts(s, ids)
    assert [e.detail for e in engaged] == [{"campaign": ids[1], "unit": "HPN-A",
                                            "locality": None}]  # fmt: skip
    assert engaged[0].unit_codes == "DOAN-A,HPN-A-X1"  # the person's snapshot, as always
    assert (counts[ids[0]].engaged, counts[ids[1]].engaged) == (0, 1)
    # The one-tap opt-out, respected by later audiences; /settings turns it back on.
    assert "không nhận tin chiến dịch" in lan.text(await lan.payload("camp:off"))
    async with world.sessionmaker() as s:
        actor = await policy.load_actor(s, "test", "oa", world.localities)
        kw = {"localities": world.localities, "curriculum": world.curriculum,
              "channels": ("test",), "now": now}
        assert await campaigns.audience_size(s, actor, Audience(unit="HPN-A"), **kw) == 0
    text = lan.text(await lan.say("/settings"))
    assert "Tin chiến dịch của các tổ chức: **tắt**" in text
    assert "nhận lại" in lan.text(await lan.press("camp:on"))
    async with world.sessionmaker() as s:
        assert await campaigns.audience_size(s, actor, Audience(unit="HPN-A"), **kw) == 1
    # /mydata lists the campaigns received; /delete leaves no delivery pointing to her.
    from bot.services import privacy

    async with world.sessionmaker() as s, s.begin():
        person = await s.scalar(select(Person).where(Person.display_name == "Lan"))
        assert person is not None
        data = await privacy.export(s, person)
        assert [c["text"] for c in data["campaigns_received"]] == ["Cũ", "Mới"]
        await s.execute(update(Delivery).where(Delivery.campaign_id == ids[1])
                        .values(status="pending"))
    await lan.say("/delete")
    await lan.press("confirm:delete")
    async with world.sessionmaker() as s:
        rows = (await s.execute(select(Delivery.identity_id, Delivery.status,
                                       Delivery.reason).order_by(Delivery.id))).all()
    assert rows == [(None, "sent", None), (None, "skipped", "erased")]
