"""Every right from the chat, checked in the database afterwards (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text

from bot.db.models import Base, Certificate, Identity, ParticipationEvent, Person
from bot.engine import Engine
from bot.runtime import Runtime
from bot.web.server import make_web_app
from content.loader import Curriculum
from handlers.types import Kind
from scheduler.jobs import erase_inactive
from tests.conftest import Chat, Clock
from tests.journey import learn_and_pass, onboard

NAME = "Trần Văn Bình"


async def learner(core: Engine, curriculum: Curriculum, user_id: str = "5005") -> Chat:
    chat = Chat(core, user_id=user_id, name=NAME)
    await onboard(chat)
    for lesson in curriculum.module("vneid").lessons:
        await learn_and_pass(chat, curriculum, lesson.id)
    return chat


async def table_dump(core: Engine) -> str:
    """Every row of every table as text, to look for leftovers."""
    out = []
    async with core.sessionmaker() as s:
        for table in Base.metadata.sorted_tables:
            exists = True
            try:
                rows = (await s.execute(text(f"SELECT * FROM {table.name}"))).all()
            except Exception:  # a table of a feature whose migration is elsewhere
                exists = False
                await s.rollback()
            if exists:
                out.extend(f"{table.name}: {tuple(r)}" for r in rows)
    return "\n".join(out)


async def scalar(core: Engine, query: object) -> object:
    async with core.sessionmaker() as s:
        return await s.scalar(query)


async def test_privacy_page_and_export(core: Engine, curriculum: Curriculum, clock: Clock) -> None:
    chat = await learner(core, curriculum)
    replies = await chat.say("/privacy")
    body = chat.text(replies)
    assert "2026-11" in body and "/mydata" in body and "/delete" in body
    replies = await chat.say("/mydata")
    reply = replies[0]
    assert reply.document_name and reply.document_name.endswith(".json")
    data = json.loads(reply.document)
    assert data["profile"]["display_name"] == NAME
    assert data["identities"][0]["user_id"] == "5005"
    assert {m["organisation"] for m in data["memberships"]} == {"hoi_phu_nu", "hoi_nong_dan"}
    assert len(data["certificates"]) == 1 and len(data["progress"]) == 4
    assert any(e["kind"] == "quiz_finished" for e in data["events"])


async def test_download_link_is_one_time(core: Engine, curriculum: Curriculum,
                                         clock: Clock) -> None:
    core.settings = core.settings.model_copy(update={"public_url": "https://bot.example.vn"})
    chat = await learner(core, curriculum)
    replies = await chat.say("/mydata")
    link = next(w for w in replies[0].text.split() if w.startswith("https://bot.example.vn/"))
    path = link.removeprefix("https://bot.example.vn")
    rt = Runtime(core.settings, core.sessionmaker.kw["bind"], core.sessionmaker,
                 core.curriculum, core.localities, core, clock)
    async with TestClient(TestServer(make_web_app(rt, []))) as client:
        first = await client.get(path)
        assert first.status == 200
        assert (await first.json())["profile"]["display_name"] == NAME
        assert (await client.get(path)).status == 404  # used
        assert (await client.get("/download/forged-token")).status == 404
        replies = await chat.say("/mydata")
        link = next(w for w in replies[0].text.split() if w.startswith("https://"))
        clock.advance(hours=2)
        assert (await client.get(link.removeprefix("https://bot.example.vn"))).status == 404


async def test_correct_each_field(core: Engine, curriculum: Curriculum) -> None:
    chat = await learner(core, curriculum)
    await chat.say("/correct")
    await chat.press("fix:name")
    replies = await chat.say("  Bình   Trần  ")
    assert "Đã lưu: Bình Trần." in chat.text(replies)
    await chat.say("/correct")
    await chat.press("fix:commune")
    await chat.say("giao thuy")
    await chat.say("1")
    await chat.say("/correct")
    await chat.press("fix:gender")
    await chat.press("gender:male")
    await chat.say("/correct")
    await chat.press("fix:age")
    await chat.press("age:60+")
    await chat.say("/correct")
    await chat.press("fix:orgs")
    await chat.press("org:hoi_nong_dan")
    await chat.press("org:hoi_ccb")
    replies = await chat.press("org:done")
    assert "Đã lưu" in chat.text(replies)
    person = await scalar(core, select(Person))
    assert person.display_name == "Bình Trần" and person.gender == "male"
    assert person.age_band == "60+"
    assert core.localities.get(person.commune_code).name.startswith("Xã Giao Thu")
    assert {m.org_type for m in person.memberships} == {"hoi_phu_nu", "hoi_ccb"}
    # A too-long name is refused, nothing changes.
    await chat.say("/correct")
    await chat.press("fix:name")
    replies = await chat.say("x" * 80)
    assert "tối đa 64" in chat.text(replies)


async def test_withdraw_erases_personal_fields_and_keeps_lessons_open(
    core: Engine, curriculum: Curriculum
) -> None:
    chat = await learner(core, curriculum)
    before = await scalar(core, select(func.count()).select_from(ParticipationEvent))
    await chat.say("/withdraw")
    replies = await chat.press("confirm:withdraw")
    assert "rút lại" in chat.text(replies)
    assert await scalar(core, select(func.count()).select_from(Person)) == 0
    identity = await scalar(core, select(Identity))
    assert identity.consent == "declined" and identity.person_id is None
    cert = await scalar(core, select(Certificate))
    assert cert.revoked_at is not None and cert.holder_name == "—"
    # Still reads lessons; nothing more is recorded.
    await learn_and_pass(chat, curriculum, curriculum.module("lua-dao").lessons[0].id)
    after = await scalar(core, select(func.count()).select_from(ParticipationEvent))
    assert after == before + 1  # only the end of consent, so registrations stop counting
    last = await scalar(core, select(ParticipationEvent).order_by(ParticipationEvent.id.desc()))
    assert last.kind == "consent_withdrawn" and last.detail == {"erased": False}
    assert NAME not in await table_dump(core)


async def test_delete_leaves_only_pseudonymous_events(core: Engine,
                                                      curriculum: Curriculum) -> None:
    other = await learner(core, curriculum, user_id="6006")
    chat = await learner(core, curriculum)
    person = await scalar(core, select(Person).where(Person.display_name == NAME,
                                                     Person.id == select(Identity.person_id)
                                                     .where(Identity.external_id == "5005")
                                                     .scalar_subquery()))
    key, commune = person.person_key, person.commune_code
    passed_before = await scalar(core, select(func.count(func.distinct(
        ParticipationEvent.person_key))).where(ParticipationEvent.kind == "quiz_finished"))
    events_before = await scalar(core, select(func.count()).select_from(ParticipationEvent))

    await chat.say("/delete")
    replies = await chat.press("confirm:delete")
    assert "đã được xóa" in chat.text(replies)

    dump = await table_dump(core)
    assert "5005" not in dump  # no identity, no platform id anywhere
    assert await scalar(core, select(func.count()).select_from(Person).where(
        Person.person_key == key)) == 0
    # Aggregates over the past are unchanged; the events no longer lead to anyone.
    assert await scalar(core, select(func.count()).select_from(ParticipationEvent)) == (
        events_before + 1)  # the end of consent: past periods still count them
    assert await scalar(core, select(func.count(func.distinct(ParticipationEvent.person_key)))
                        .where(ParticipationEvent.kind == "quiz_finished")) == passed_before
    assert await scalar(core, select(func.count()).select_from(Person).where(
        Person.commune_code == commune)) == 1  # only the other learner
    # The bot now treats them as a stranger.
    replies = await chat.say("hello")
    assert "Đồng ý" in [b.label for r in replies for b in r.flat_buttons]
    # The other learner is untouched.
    replies = await other.say("/progress")
    assert "4/4" in other.text(replies)


async def test_confirmation_buttons_only_work_when_offered(core: Engine,
                                                           curriculum: Curriculum) -> None:
    chat = await learner(core, curriculum)
    replies = await chat.payload("confirm:delete")
    assert "không còn dùng được" in chat.text(replies)
    await chat.say("/withdraw")
    replies = await chat.payload("confirm:delete")  # the wrong confirmation
    assert "không còn dùng được" in chat.text(replies)
    await chat.say("/delete")
    replies = await chat.press("confirm:cancel")
    assert "Không có gì thay đổi" in chat.text(replies)
    assert await scalar(core, select(func.count()).select_from(Person)) == 1


async def test_stranger_privacy_requests(chat: Chat, core: Engine) -> None:
    replies = await chat.say("/privacy")
    assert "không lưu gì" in chat.text(replies).lower()
    for command in ("/mydata", "/delete", "/withdraw"):
        replies = await chat.say(command)
        assert replies


async def test_new_consent_version_asks_again(core: Engine, curriculum: Curriculum,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    chat = await learner(core, curriculum)
    import bot.domain
    import handlers.onboarding
    import handlers.privacy

    for module in (bot.domain, handlers.onboarding, handlers.privacy):
        monkeypatch.setattr(module, "CONSENT_VERSION", "2027-01")
    before = await scalar(core, select(func.count()).select_from(ParticipationEvent))
    replies = await chat.say("/menu")
    assert "cập nhật" in chat.text(replies)
    replies = await chat.payload("les:vneid-cai-dat")
    assert "Đồng ý" in [b.label for r in replies for b in r.flat_buttons]
    assert await scalar(core, select(func.count()).select_from(ParticipationEvent)) == before
    replies = await chat.press("consent:yes")
    person = await scalar(core, select(Person))
    assert person.consent_version == "2027-01"


async def test_inactive_people_are_erased_after_retention(core: Engine, curriculum: Curriculum,
                                                          clock: Clock) -> None:
    await learner(core, curriculum)
    rt = Runtime(core.settings, core.sessionmaker.kw["bind"], core.sessionmaker,
                 core.curriculum, core.localities, core, clock)
    assert await erase_inactive(rt) == 0
    clock.advance(days=3 * 365 + 1)
    assert await erase_inactive(rt) == 1
    assert await scalar(core, select(func.count()).select_from(Person)) == 0
    assert await scalar(core, select(func.count()).select_from(Identity)) == 0
    assert await scalar(core, select(func.count()).select_from(ParticipationEvent)) > 0


async def test_flood_control_slows_one_person_only(core: Engine) -> None:
    now = [0.0]
    core.flood.monotonic = lambda: now[0]
    core.flood.limit = 30
    spammer, calm = Chat(core, "7"), Chat(core, "8")
    await spammer.say("/start")
    warnings = 0
    for _ in range(40):
        now[0] += 0.1
        replies = await spammer.say("xin chào")
        warnings += sum("nhanh quá" in r.text for r in replies)
    assert warnings == 1
    replies = await calm.say("/start")
    assert "Xin chào" in calm.text(replies)
    now[0] += 11
    replies = await spammer.say("/help")
    assert "Cách dùng" in spammer.text(replies)


def test_timedelta_import_used() -> None:
    assert timedelta(days=1).days == 1


async def test_unknown_kinds_never_erase(chat: Chat, core: Engine) -> None:
    replies = await chat.send(chat._msg(kind=Kind.OTHER))
    assert replies == []
