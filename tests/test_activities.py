"""Offline activities: an officer records one in the chat and gets its QR code and deep link;
a citizen who opens `/start act_<code>` is checked in once (an `activity_attended` event
credited to the organising unit) and offered the matching lesson, also when they agree to the
data notice only after opening the link; head counts; scope refusals. SQLite and PostgreSQL."""

from __future__ import annotations

import re

from PIL import Image
from sqlalchemy import func, select

from bot.db.models import Activity, Attendance, AuditLog
from bot.db.models import ParticipationEvent as Event
from bot.engine import Engine
from tests import orgdata
from tests.conftest import Chat
from tests.journey import onboard

SCOPE = "nằm ngoài phạm vi"


async def record(officer: Chat, unit: str = "HPN-A") -> tuple[int, str, str]:
    """Record an activity through the chat: (id, check-in code, reply text)."""
    await officer.say(f"/activity {unit}")
    await officer.say("Lớp hướng dẫn cài VNeID")
    assert "theo mẫu" in officer.text(await officer.say("ngày mai"))
    await officer.say("10/03/2026")
    await officer.say("Nhà văn hóa xóm 1")
    assert "con số" in officer.text(await officer.say("ba mươi"))
    await officer.say("30")
    await officer.press("act:m:vneid")
    replies = await officer.press("act:les:vneid-cai-dat")
    text = officer.text(replies)
    match = re.search(r"/start act_([A-Z0-9]+)", text)
    assert match, text
    activity_id = int(re.search(r"#(\d+)", text).group(1))  # type: ignore[union-attr]
    image = replies[-1].image
    assert image is not None and image.exists()
    with Image.open(image) as png:
        assert png.format == "PNG" and png.size[0] >= 200
    return activity_id, match.group(1), text


async def test_activity_check_in_is_credited_to_the_unit(core: Engine) -> None:
    await orgdata.build(core.sessionmaker, core.localities)
    oa = Chat(core, "oa")
    activity_id, code, _text = await record(oa)
    # A newcomer scans the QR code, agrees, finishes onboarding: checked in once, after consent.
    citizen = Chat(core, "citizen-new", name="Trần Thị Hồng")
    replies = await citizen.say(f"/start act_{code}")
    assert any(p == "consent:yes" for _l, p in citizen.buttons)
    replies = await citizen.press("consent:yes")
    assert "Bạn đã điểm danh tại \"Lớp hướng dẫn cài VNeID\"" in citizen.text(replies)
    # An existing learner opens the link again: checked in once, offered the lesson.
    lan = Chat(core, "citizen-lan")
    from sqlalchemy import update

    from bot.db.models import Person
    from bot.domain import CONSENT_VERSION

    async with core.sessionmaker() as s, s.begin():
        await s.execute(update(Person).values(consent_version=CONSENT_VERSION))
    replies = await lan.say(f"/start act_{code}")
    assert "✅ Bạn đã điểm danh" in lan.text(replies)
    offered = [b.payload for r in replies for b in r.flat_buttons]
    assert "les:vneid-cai-dat" in offered  # the matching lesson
    again = lan.text(await lan.say(f"/start act_{code}"))
    assert "đã điểm danh tại" in again and "✅" not in again
    assert "không hợp lệ" in lan.text(await lan.say("/start act_NOSUCH99"))
    async with core.sessionmaker() as s:
        events = list(await s.scalars(select(Event).where(Event.kind == "activity_attended")))
        attendances = await s.scalar(select(func.count()).select_from(Attendance))
    assert len(events) == 2 and attendances == 2
    assert all(e.detail == {"activity": activity_id, "unit": "HPN-A"} for e in events)
    # Head count for people without phones; the list shows both.
    await oa.press(f"act:count:{activity_id}")
    text = oa.text(await oa.say("12"))
    assert "12 người tham gia" in text and "2 người đã điểm danh" in text
    listing = oa.text(await oa.say("/activity"))
    assert "2 người điểm danh, đếm trực tiếp 12 người" in listing
    async with core.sessionmaker() as s:
        activity = await s.get(Activity, activity_id)
        actions = set(await s.scalars(select(AuditLog.action)))
    assert activity is not None and activity.head_count == 12 and activity.planned == 30
    assert {"activity_create", "activity_head_count"} <= actions


async def test_activity_scope_and_citizens(core: Engine) -> None:
    await orgdata.build(core.sessionmaker, core.localities)
    ob = Chat(core, "ob")
    assert SCOPE in ob.text(await ob.say("/activity HPN-A"))
    oa = Chat(core, "oa")
    activity_id, _code, _text = await record(oa)
    assert SCOPE in ob.text(await ob.payload(f"act:count:{activity_id}"))
    citizen = Chat(core, "citizen-mai")
    assert "/activity" in citizen.text(await citizen.say("/activity"))  # unknown command
    assert "không còn dùng được" in citizen.text(await citizen.payload(f"act:count:{activity_id}"))
    async with core.sessionmaker() as s:
        refused = await s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "refused"))
        heads = await s.scalar(select(Activity.head_count))
    assert refused == 2 and heads == 0


async def test_onboarded_citizen_checks_in_by_deep_link(core: Engine) -> None:
    """The full journey: a person who already finished onboarding scans the code."""
    await orgdata.build(core.sessionmaker, core.localities)
    _id, code, _text = await record(Chat(core, "la"), unit="DOAN-A")
    person = Chat(core, "journey-1")
    await onboard(person, commune="bac ly")
    assert "✅" in person.text(await person.say(f"/start act_{code}"))
