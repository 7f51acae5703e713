"""The conversation core on real databases (SQLite; PostgreSQL when configured)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.db.models import Identity, LessonProgress, Membership, ParticipationEvent, Person
from bot.engine import Engine
from content.loader import Curriculum
from handlers.types import Kind
from tests.conftest import Chat, Clock
from tests.journey import learn_and_pass, onboard

LESSON = "vneid-cai-dat"


async def events(engine: Engine) -> list[ParticipationEvent]:
    async with engine.sessionmaker() as s:
        return list(await s.scalars(select(ParticipationEvent).order_by(ParticipationEvent.id)))


async def one(engine: Engine, model: type, *where: object) -> object:
    async with engine.sessionmaker() as s:
        return await s.scalar(select(model).where(*where))


async def count(engine: Engine, model: type) -> int:
    async with engine.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_journey_from_start_to_passed_quiz(chat: Chat, core: Engine,
                                                 curriculum: Curriculum) -> None:
    await onboard(chat)
    await learn_and_pass(chat, curriculum, LESSON)
    text = chat.text(chat.history[-3:])
    assert "Bạn trả lời đúng 5/5 câu" in text and "Bạn đã đạt bài này!" in text

    person = await one(core, Person)
    assert person.display_name == "Nguyễn Thị Lan"
    assert person.gender == "female" and person.age_band == "46-60"
    assert core.localities.get(person.commune_code).name == "Xã Hải Hậu"
    async with core.sessionmaker() as s:
        orgs = set(await s.scalars(select(Membership.org_type)))
    assert orgs == {"hoi_phu_nu", "hoi_nong_dan"}

    kinds = [e.kind for e in await events(core)]
    assert kinds[0] == "registered"
    assert kinds.count("joined_org") == 2
    assert kinds.count("quiz_answered") == len(curriculum.lessons[LESSON].quiz)
    assert kinds[-1] == "quiz_finished"
    for kind in ("lesson_started", "lesson_completed", "profile_changed"):
        assert kind in kinds
    finished = (await events(core))[-1]
    # Every event carries the commune and the memberships at the time.
    assert finished.passed is True and finished.score == finished.total == 5
    assert finished.commune_code == person.commune_code
    assert finished.memberships == "hoi_nong_dan,hoi_phu_nu"
    assert finished.person_key == person.person_key
    registered = (await events(core))[0]
    assert registered.commune_code is None  # registered before the commune was given

    row = await one(core, LessonProgress)
    assert row.quiz_passed_at is not None and row.quiz_best == 5

    replies = await chat.say("/progress")
    assert "đã đạt 1/4 bài" in chat.text(replies)


async def test_failed_quiz_offers_retry_and_records_attempt(chat: Chat, core: Engine,
                                                            curriculum: Curriculum) -> None:
    await onboard(chat)
    await learn_and_pass(chat, curriculum, LESSON, wrong=2)
    assert "Cần đúng 4 câu để đạt" in chat.text(chat.history[-1:])
    assert any(p == f"quiz:{LESSON}" for _, p in chat.buttons)
    finished = [e for e in await events(core) if e.kind == "quiz_finished"]
    assert finished[-1].passed is False and finished[-1].score == 3
    row = await one(core, LessonProgress)
    assert row.quiz_passed_at is None and row.quiz_attempts == 1


async def test_declined_consent_reads_lessons_and_keeps_nothing(chat: Chat, core: Engine,
                                                                curriculum: Curriculum) -> None:
    await chat.say("/start")
    replies = await chat.press("consent:no")
    assert "không lưu gì về bạn" in chat.text(replies)
    await learn_and_pass(chat, curriculum, LESSON)
    assert "Bạn đã đạt bài này!" in chat.text(chat.history[-3:])
    assert await count(core, Person) == 0
    assert await count(core, ParticipationEvent) == 0
    replies = await chat.say("/progress")
    assert "chưa được lưu" in chat.text(replies)


async def test_resume_at_the_same_card(chat: Chat, core: Engine,
                                       curriculum: Curriculum) -> None:
    await onboard(chat)
    await chat.press("mod:vneid")
    await chat.press(f"les:{LESSON}")
    await chat.press(f"card:{LESSON}:0")
    await chat.press(f"card:{LESSON}:1")
    await chat.say("/menu")
    replies = await chat.say("/start")
    assert chat.buttons[0][0].startswith("▶ Học tiếp")
    replies = await chat.press(f"les:{LESSON}")
    assert "trang 3/" in chat.text(replies)


async def test_stale_and_forged_buttons_change_nothing(chat: Chat, core: Engine,
                                                       curriculum: Curriculum) -> None:
    await onboard(chat)
    lesson = curriculum.lessons[LESSON]
    await chat.press("mod:vneid")
    await chat.press(f"les:{LESSON}")
    for i in range(len(lesson.cards) - 1):
        await chat.press(f"card:{LESSON}:{i}")
    # An old "next" button from card 0 re-shows the current card, it does not skip.
    replies = await chat.payload(f"card:{LESSON}:0")
    assert f"trang {len(lesson.cards)}/{len(lesson.cards)}" in chat.text(replies)
    await chat.press(f"quiz:{LESSON}")
    q1, q2 = lesson.quiz[0], lesson.quiz[1]
    await chat.press(f"ans:{LESSON}:{q1.id}:{q1.answer + 1}")
    before = await count(core, ParticipationEvent)
    # Pressing the first question's keyboard again: refused, nothing recorded.
    replies = await chat.payload(f"ans:{LESSON}:{q1.id}:{q1.answer + 1}")
    assert "đã trả lời rồi" in chat.text(replies)
    assert "Câu 2/" in chat.text(replies)
    for forged in ("ans:nope", "ans:x:y:z", "mod:does-not-exist", "les:../../etc", "zzz:1",
                   "ans:" + "x" * 500, "", ":::", "card:vneid-cai-dat:abc",
                   f"ans:{LESSON}:{q2.id}:9", "commune:99999999", "lang:fr"):
        replies = await chat.payload(forged)
        assert replies, forged
    assert await count(core, ParticipationEvent) == before
    replies = await chat.payload(f"ans:{LESSON}:{q2.id}:{q2.answer + 1}")
    assert "Đúng rồi" in chat.text(replies)


async def test_typed_numbers_and_labels_work_like_buttons(chat: Chat, core: Engine) -> None:
    await chat.say("/start")
    replies = await chat.say("1")  # "1. Đồng ý"
    assert "xã hay phường" in chat.text(replies)
    replies = await chat.say("giao thuy")
    if "Xã/phường của bạn" in chat.text(replies):  # the commune, and the old district's
        assert chat.buttons[0][0] == "Xã Giao Thuỷ"
        await chat.say("1")
    identity = await one(core, Identity)
    assert identity.consent == "given"
    person = await one(core, Person)
    assert core.localities.get(person.commune_code).short_name.startswith("Giao Thu")
    replies = await chat.say("nữ")  # a typed label, accents or not
    assert "bao nhiêu tuổi" in chat.text(replies)
    replies = await chat.say("bo qua")
    assert "tổ chức" in chat.text(replies)


async def test_commune_not_found_old_names_and_other_province(chat: Chat, core: Engine) -> None:
    await chat.say("/start")
    await chat.press("consent:yes")
    replies = await chat.say("xyzzy không có")
    assert "chưa tìm thấy" in chat.text(replies)
    replies = await chat.say("huyện Hải Hậu")
    assert "trước đây thuộc Huyện Hải Hậu" in chat.text(replies)
    assert len([p for _, p in chat.buttons if p.startswith("commune:")]) >= 3
    replies = await chat.press("commune:retry")
    replies = await chat.press("commune:other")
    assert "tỉnh khác" in chat.text(replies)
    person = await one(core, Person)
    assert person.commune_code is None


async def test_duplicate_update_changes_nothing(chat: Chat, core: Engine) -> None:
    from handlers.types import IncomingMessage

    msg = IncomingMessage(channel="test", user_id="7", chat_id="7", text="/start",
                          update_id="same")
    assert await core.handle(msg)
    consent = IncomingMessage(channel="test", user_id="7", chat_id="7", kind=Kind.BUTTON,
                              payload="consent:yes", update_id="c1")
    assert await core.handle(consent)
    assert await core.handle(consent) == []
    assert await count(core, Person) == 1
    assert await count(core, ParticipationEvent) == 1


async def test_odd_input_gets_an_answer(chat: Chat, core: Engine) -> None:
    await chat.say("/start")
    replies = await chat.say("/menu")
    assert "Đồng ý" in [b for r in replies for b in (x.label for x in r.flat_buttons)]
    await chat.press("consent:yes")
    for msg_kind, expected in ((Kind.STICKER, "chỉ đọc được chữ"),
                               (Kind.MEDIA, "chỉ đọc được chữ"),
                               (Kind.EDITED, "đã sửa")):
        replies = await chat.send(chat._msg(kind=msg_kind, text="x"))
        assert expected in chat.text(replies)
    replies = await chat.say("a" * 5000)
    assert "dài quá" in chat.text(replies)
    replies = await chat.say("/admin_stats")
    assert "chưa biết lệnh /admin_stats" in chat.text(replies)
    replies = await chat.say("/")
    assert replies
    replies = await chat.say("🙂🙂")
    assert replies  # commune step: "not found", never silence


async def test_group_chat_gets_one_notice(core: Engine) -> None:
    chat = Chat(core)
    msg = chat._msg(kind=Kind.TEXT, text="/start", is_private=False, chat_id="-100")
    first = await core.handle(msg)
    assert "trò chuyện riêng" in first[0].text
    again = await core.handle(chat._msg(kind=Kind.TEXT, text="hello", is_private=False,
                                        chat_id="-100"))
    assert again == []
    assert await count(core, Identity) == 0


async def test_deep_link_records_the_inviting_unit(chat: Chat, core: Engine) -> None:
    from bot.services import orgs

    async with core.sessionmaker() as s, s.begin():
        await orgs.add_unit(s, orgs.UnitSpec("hoi_phu_nu", "Hội LHPN xã Hải Hậu", 14215, None,
                                             "HPN-HAIHAU"), core.localities, actor="test")
    await chat.say("/start org_HPN-HAIHAU")
    await chat.press("consent:yes")
    person = await one(core, Person)
    assert person.invited_by == "HPN-HAIHAU"
    replies = await chat.say("/start org_<script>")
    assert "không đúng" in chat.text(replies)
    replies = await chat.say("/start org_NO-SUCH-UNIT")  # unknown units are refused too
    assert "không đúng" in chat.text(replies)


async def test_english_is_selectable(chat: Chat, core: Engine) -> None:
    await onboard(chat)
    await chat.say("/language")
    replies = await chat.press("lang:en")
    assert "Language: English." in chat.text(replies)
    replies = await chat.press("mod:vneid")
    assert "VNeID" in chat.text(replies)
    replies = await chat.press(f"les:{LESSON}")
    assert "card 1/" in chat.text(replies)
    replies = await chat.say("/help")
    assert "How to use hocvuso" in chat.text(replies)


async def test_two_people_do_not_share_state(core: Engine) -> None:
    a, b = Chat(core, "1"), Chat(core, "2")
    await a.say("/start")
    await b.say("/start")
    await a.press("consent:yes")
    await b.say("/language")
    await b.press("lang:en")
    replies = await a.say("hai hau")
    assert "Xã/phường của bạn" in a.text(replies)  # still Vietnamese for a
    assert await count(core, Person) == 1


async def test_unconsented_identities_are_forgotten(core: Engine, clock: Clock) -> None:
    from bot.runtime import Runtime
    from scheduler.jobs import forget_unconsented

    await Chat(core, "1").say("/start")
    consenting = Chat(core, "2")
    await consenting.say("/start")
    await consenting.press("consent:yes")
    rt = Runtime(core.settings, None, core.sessionmaker, core.curriculum,  # type: ignore[arg-type]
                 core.localities, core, clock)
    assert await forget_unconsented(rt) == 0
    clock.advance(days=31)
    assert await forget_unconsented(rt) == 1
    assert await count(core, Identity) == 1
