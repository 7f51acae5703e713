"""A whole module to the certificate; checking codes in the chat and on the web; reminders
with a controlled clock; the learning streak."""

from __future__ import annotations

from datetime import UTC, date, datetime
from io import BytesIO

from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import select

from bot.channels.zalo.common import SendResult
from bot.db.models import Certificate, ParticipationEvent, Person
from bot.engine import Engine
from bot.i18n import current_language, fmt_admin_date
from bot.runtime import Runtime
from bot.services.certificates import ALPHABET, new_code, normalize_code
from bot.web.server import make_web_app
from content.loader import Curriculum
from handlers.types import Reply
from scheduler.jobs import send_reminders
from tests.conftest import Chat, Clock
from tests.journey import learn_and_pass, onboard

MODULE = "vneid"


def runtime_for(core: Engine, clock: Clock) -> Runtime:
    return Runtime(core.settings, core.sessionmaker.kw["bind"], core.sessionmaker,
                   core.curriculum, core.localities, core, clock)


async def finish_module(chat: Chat, curriculum: Curriculum,
                        module_id: str = MODULE) -> list[Reply]:
    for lesson in curriculum.module(module_id).lessons:
        await learn_and_pass(chat, curriculum, lesson.id)
    return chat.history


async def test_whole_module_to_certificate_and_verification(
    chat: Chat, core: Engine, curriculum: Curriculum, clock: Clock
) -> None:
    await onboard(chat)
    history = await finish_module(chat, curriculum)
    cert_reply = next(r for r in reversed(history) if r.image is not None)
    assert "Xin chúc mừng" in cert_reply.text
    png = Image.open(BytesIO(cert_reply.image.read_bytes()))
    assert png.format == "PNG" and png.size == (1600, 1130)

    async with core.sessionmaker() as s:
        cert = await s.scalar(select(Certificate))
        issued = await s.scalar(select(ParticipationEvent).where(
            ParticipationEvent.kind == "certificate_issued"))
    assert cert.holder_name == "Nguyễn Thị Lan" and cert.module_id == MODULE
    assert cert.code in cert_reply.text
    assert issued.module_id == MODULE and issued.detail == {"code": cert.code}

    # Anyone can check the code in the chat (even someone who never consented).
    stranger = Chat(core, user_id="999")
    replies = await stranger.say(f"/verify {cert.code.lower().replace('-', ' ')}")
    text = stranger.text(replies)
    assert "hợp lệ" in text and "Nguyễn Thị Lan" in text and "VNeID" in text
    assert "02/03/2026" in text
    replies = await stranger.say("/verify HVS-22222-22222")
    assert "Không có giấy chứng nhận" in stranger.text(replies)

    # ... and on the web: name, topic and date, nothing else; unknown code -> 404.
    app = make_web_app(runtime_for(core, clock), [])
    async with TestClient(TestServer(app)) as client:
        page = await client.get(f"/verify/{cert.code}")
        body = await page.text()
        assert page.status == 200
        assert "Nguyễn Thị Lan" in body and "VNeID" in body and "02/03/2026" in body
        assert "hai-hau" not in body.lower() and "Hải Hậu" not in body
        missing = await client.get("/verify/HVS-22222-22222")
        assert missing.status == 404 and "Không có giấy chứng nhận" in await missing.text()
        forged = await client.get("/verify/<script>alert(1)</script>")
        assert "<script>alert" not in await forged.text()
        image = await client.get(f"/certificates/{cert.code}.png")
        assert image.status == 200 and image.content_type == "image/png"
        assert (await client.get("/certificates/HVS-22222-22222.png")).status == 404

    # /certificates lists it and sends it again; nobody else can fetch it by payload.
    replies = await chat.say("/certificates")
    assert cert.code in chat.text(replies)
    replies = await chat.press(f"cert:{cert.code}")
    assert replies[0].image is not None
    replies = await stranger.payload(f"cert:{cert.code}")
    assert replies[0].image is None


async def test_certificate_issued_once(chat: Chat, core: Engine, curriculum: Curriculum) -> None:
    await onboard(chat)
    await finish_module(chat, curriculum)
    # Passing a lesson of the finished module again issues nothing new.
    await learn_and_pass(chat, curriculum, curriculum.module(MODULE).lessons[0].id)
    async with core.sessionmaker() as s:
        assert len(list(await s.scalars(select(Certificate)))) == 1


def test_codes_are_random_and_typeable() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in list(codes)[:50]:
        assert code.startswith("HVS-") and len(code) == 15
        assert all(ch in ALPHABET for ch in code[4:].replace("-", ""))
        assert normalize_code(code.lower().replace("-", " ")) == code
    assert normalize_code("HVS-00000-00000") is None  # 0 is not in the alphabet
    assert normalize_code("x" * 500) is None and normalize_code("") is None


def test_administrative_date_format() -> None:
    token = current_language.set("vi")
    try:
        assert fmt_admin_date(date(2026, 11, 26)) == "ngày 26 tháng 11 năm 2026"
        # 23:30 UTC on 25 Nov is already 26 Nov in Vietnam.
        assert fmt_admin_date(datetime(2026, 11, 25, 23, 30, tzinfo=UTC)) == (
            "ngày 26 tháng 11 năm 2026")
    finally:
        current_language.reset(token)


async def test_reminders_follow_opt_in_idle_and_quiet_hours(
    core: Engine, curriculum: Curriculum, clock: Clock
) -> None:
    rt = runtime_for(core, clock)
    sent: list[tuple[str, list[Reply]]] = []

    async def collect(chat_id: str, replies: list[Reply]) -> None:
        sent.append((chat_id, replies))

    rt.senders["test"] = collect
    learner, silent = Chat(core, "11"), Chat(core, "12")
    for c in (learner, silent):
        await onboard(c)
        await learn_and_pass(c, curriculum, "vneid-cai-dat")
    await learner.say("/reminders")
    replies = await learner.press("remind:19")
    assert "19 giờ" in learner.text(replies)

    # 2026-03-02 10:00 local. Not idle yet: nothing.
    clock.now = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)  # 19:00 local next day
    assert await send_reminders(rt) == 0
    # Two and a half days idle, at their hour: one gentle nudge with the next lesson.
    clock.now = datetime(2026, 3, 5, 12, 5, tzinfo=UTC)  # 19:05 local
    assert await send_reminders(rt) == 1
    chat_id, replies = sent[0]
    assert chat_id == "11"
    assert "Bài tiếp theo" in replies[0].text
    assert [b.payload for b in replies[0].flat_buttons] == ["les:vneid-muc-2", "remind:off"]
    # At most one a day.
    clock.now = datetime(2026, 3, 5, 12, 50, tzinfo=UTC)
    assert await send_reminders(rt) == 0
    # Quiet hours: someone who chose 20:00 is never written to at 21:00-07:00.
    async with core.sessionmaker() as s, s.begin():
        for person in await s.scalars(select(Person)):
            person.reminder_hour = 20
            person.last_reminded_at = None
    clock.now = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)  # 21:30 local
    assert await send_reminders(rt) == 0
    clock.now = datetime(2026, 3, 6, 13, 0, tzinfo=UTC)  # 20:00 local: both opted in now
    assert await send_reminders(rt) == 2
    # Stopping is one tap: the button in the reminder.
    await learner.payload("remind:off")
    clock.now = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert await send_reminders(rt) == 1  # only the other one now
    assert sent[-1][0] == "12"


async def test_a_reminder_the_channel_skips_is_not_counted_nor_repeated(
    core: Engine, curriculum: Curriculum, clock: Clock
) -> None:
    """Zalo OA outside its messaging window answers `skipped`: not counted as sent, and the
    day's reminder is used up all the same (no retry every hour)."""
    rt = runtime_for(core, clock)
    attempts: list[str] = []

    async def outside_window(chat_id: str, _replies: list[Reply]) -> SendResult:
        attempts.append(chat_id)
        return SendResult("skipped", "outside the messaging window")

    rt.senders["test"] = outside_window
    learner = Chat(core, "21")
    await onboard(learner)
    await learn_and_pass(learner, curriculum, "vneid-cai-dat")
    await learner.say("/reminders")
    await learner.press("remind:19")
    clock.now = datetime(2026, 3, 5, 12, 5, tzinfo=UTC)  # 19:05 local, idle for days
    assert await send_reminders(rt) == 0
    assert attempts == ["21"]
    clock.now = datetime(2026, 3, 5, 12, 40, tzinfo=UTC)
    assert await send_reminders(rt) == 0
    assert attempts == ["21"]


async def test_streak_in_progress(chat: Chat, core: Engine, curriculum: Curriculum,
                                  clock: Clock) -> None:
    await onboard(chat)
    lessons = [lesson.id for lesson in curriculum.module(MODULE).lessons]
    await learn_and_pass(chat, curriculum, lessons[0])
    clock.advance(days=1)
    await learn_and_pass(chat, curriculum, lessons[1])
    clock.advance(days=1)
    await learn_and_pass(chat, curriculum, lessons[2])
    replies = await chat.say("/progress")
    assert "Chuỗi ngày học: 3 ngày liên tiếp" in chat.text(replies)
    clock.advance(days=3)
    replies = await chat.say("/progress")
    assert "Chuỗi ngày học" not in chat.text(replies)
