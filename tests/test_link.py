"""One person on several apps: the same journey over Telegram, the Zalo bot and a Zalo OA
(one server, three channels), and /link joining two accounts into one person."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from bot.app import Server, build_runtime, make_channels
from bot.channels.zalo.oa_channel import ZaloOAChannel
from bot.db.models import (
    Certificate,
    Identity,
    LessonProgress,
    LinkCode,
    Membership,
    ParticipationEvent,
    Person,
)
from bot.engine import Engine
from bot.services import identity as identity_service
from bot.settings import Settings
from content.loader import Curriculum
from tests.conftest import Chat, Clock
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.zalo_bot_api import FakeZaloBotAPI
from tests.fakes.zalo_oa_api import FakeZaloOA
from tests.journey import learn_and_pass, onboard
from tests.test_telegram_e2e import TelegramDriver, free_port
from tests.zalo_drivers import ZaloBotDriver, ZaloOADriver

CODE = re.compile(r"\b(\d{4} \d{4})\b")


def code_in(replies: object) -> str:
    texts = [getattr(r, "text", None) or getattr(r, "body", None) or getattr(r, "plain_text", "")
             for r in replies]  # type: ignore[attr-defined]  # fmt: skip
    match = CODE.search("\n".join(t or "" for t in texts))
    assert match, texts
    return match.group(1)


async def kinds_by_channel(server: Server) -> dict[str, list[str]]:
    async with server.rt.sessionmaker() as s:
        rows = (await s.execute(select(ParticipationEvent.channel, ParticipationEvent.kind)
                                .order_by(ParticipationEvent.id))).all()  # fmt: skip
    out: dict[str, list[str]] = {}
    for channel, kind in rows:
        out.setdefault(channel, []).append(kind)
    return out


async def test_same_journey_on_three_apps_then_link(
    sqlite_url: str, curriculum: Curriculum
) -> None:
    async with FakeTelegramAPI() as tg, FakeZaloBotAPI() as zb, FakeZaloOA() as zo:
        settings = Settings(
            _env_file=None, database_url=sqlite_url, web_port=free_port(),
            telegram_token=tg.token, telegram_api_url=tg.base_url,
            zalo_bot_token=zb.token, zalo_bot_api_url=zb.base_url, zalo_bot_send_interval=0,
            zalo_oa_app_id=zo.app_id, zalo_oa_app_secret=zo.app_secret,
            zalo_oa_secret_key=zo.secret_key, zalo_oa_access_token="AT-initial",
            zalo_oa_refresh_token="RT-initial", zalo_oa_api_url=zo.url, zalo_oa_oauth_url=zo.url,
        )  # type: ignore[call-arg]  # fmt: skip
        rt = build_runtime(settings)
        server = Server(rt, make_channels(rt))
        await server.start()
        zo.webhook_url = f"http://127.0.0.1:{server.port}/zalo/oa/webhook"
        assert sorted(c.name for c in server.channels) == ["telegram", "zalo-bot", "zalo-oa"]
        oa_channel = next(c for c in server.channels if isinstance(c, ZaloOAChannel))
        try:
            telegram = TelegramDriver(tg)
            zalo_bot = ZaloBotDriver(zb, rt.sessionmaker)
            zalo_oa = ZaloOADriver(zo, oa_channel, rt.sessionmaker)
            for person in (telegram, zalo_bot, zalo_oa):
                await onboard(person)
                await learn_and_pass(person, curriculum, "vneid-cai-dat", wrong=1)
            kinds = await kinds_by_channel(server)
            assert kinds["telegram"] == kinds["zalo-bot"] == kinds["zalo-oa"]
            assert kinds["telegram"][0] == "registered" and "quiz_finished" in kinds["telegram"]

            # The Telegram person links their Zalo bot account: /link there, the code here.
            code = code_in(await telegram.say("/link"))
            await zalo_bot.say("/link")  # the Zalo side gets its own code and waits
            done = await zalo_bot.say(code)  # typing the other app's code alone is enough
            assert "Xong!" in done[0].body
            async with rt.sessionmaker() as s:
                assert await s.scalar(select(func.count()).select_from(Person)) == 2
                ids = {i.channel: i.person_id for i in await s.scalars(select(Identity))}
                keys = (
                    await s.execute(
                        select(
                            ParticipationEvent.channel,
                            func.count(func.distinct(ParticipationEvent.person_key)),
                        ).group_by(ParticipationEvent.channel)
                    )
                ).all()
                everyone = await s.scalar(select(func.count(func.distinct(
                    ParticipationEvent.person_key))))  # fmt: skip
            assert ids["telegram"] == ids["zalo-bot"] != ids["zalo-oa"]
            assert dict(keys) == {"telegram": 1, "zalo-bot": 1, "zalo-oa": 1}
            assert everyone == 2  # Telegram + Zalo bot now count as one person
            # Both apps go on with the one person.
            await zalo_bot.say("/progress")
            assert "1/4" in zb.messages_to(zalo_bot.user_id)[-1].body
        finally:
            await server.stop()


# ---------------------------------------------------------------------------- the core


async def test_link_merges_progress_memberships_events_and_certificates(
    core: Engine, curriculum: Curriculum, clock: Clock
) -> None:
    zalo = Chat(core, "zb-1", channel="zalo-bot", name="Lan")
    telegram = Chat(core, "tg-1", channel="telegram", name="Lan T")
    # The Zalo account registered first: it is the one kept.
    await onboard(zalo)
    await learn_and_pass(zalo, curriculum, "vneid-cai-dat", wrong=4)  # failed
    await learn_and_pass(zalo, curriculum, "vneid-muc-2")  # passed
    clock.advance(days=1)
    await onboard(telegram)
    await learn_and_pass(telegram, curriculum, "vneid-cai-dat")  # passed
    async with core.sessionmaker() as s, s.begin():
        people = {i.channel: i.person for i in await s.scalars(select(Identity))}
        keep, drop = people["zalo-bot"], people["telegram"]
        assert keep is not None and drop is not None
        drop_key = drop.person_key
        s.add(Membership(person_id=drop.id, org_type="doan", since=clock()))
        s.add_all([
            Certificate(code="HVS-AAAAA-AAAAA", person_id=keep.id, holder_name="Lan",
                        module_id="vneid", issued_at=clock() - timedelta(hours=5)),
            Certificate(code="HVS-BBBBB-BBBBB", person_id=drop.id, holder_name="Lan T",
                        module_id="vneid", issued_at=clock()),
            Certificate(code="HVS-CCCCC-CCCCC", person_id=drop.id, holder_name="Lan T",
                        module_id="dien-thoai", issued_at=clock()),
        ])  # fmt: skip
        before = await s.scalar(select(func.count()).select_from(ParticipationEvent))

    code = code_in(await telegram.say("/link"))
    replies = await zalo.say(f"/link {code}")
    assert "Xong!" in replies[0].text

    async with core.sessionmaker() as s:
        persons = list(await s.scalars(select(Person)))
        assert [p.id for p in persons] == [keep.id]
        person = persons[0]
        identities = list(await s.scalars(select(Identity)))
        assert {i.person_id for i in identities} == {keep.id}
        rows = {r.lesson_id: r for r in await s.scalars(select(LessonProgress))}
        assert set(rows) == {"vneid-cai-dat", "vneid-muc-2"}
        assert all(r.person_id == keep.id for r in rows.values())
        first = rows["vneid-cai-dat"]  # failed on Zalo, passed on Telegram: the best of both
        assert first.quiz_passed_at is not None and first.quiz_attempts == 2
        assert first.quiz_best == 5 and first.completed_at is not None
        orgs = sorted(m.org_type for m in await s.scalars(select(Membership)))
        assert orgs == ["doan", "hoi_nong_dan", "hoi_phu_nu"]  # union, no duplicates
        keys = set(await s.scalars(select(ParticipationEvent.person_key)))
        assert keys == {person.person_key} and drop_key not in keys
        after = await s.scalar(select(func.count()).select_from(ParticipationEvent))
        assert after == before + 1  # nothing lost; one profile_changed for the link
        certs = {c.code: c for c in await s.scalars(select(Certificate))}
        assert certs["HVS-AAAAA-AAAAA"].person_id == keep.id and not certs[
            "HVS-AAAAA-AAAAA"].revoked_at  # fmt: skip
        assert certs["HVS-BBBBB-BBBBB"].person_id is None  # the later duplicate
        assert certs["HVS-BBBBB-BBBBB"].revoked_at is not None
        assert certs["HVS-BBBBB-BBBBB"].holder_name == "—"
        assert certs["HVS-CCCCC-CCCCC"].person_id == keep.id
        assert await s.scalar(select(func.count()).select_from(LinkCode)) == 0
        # Reports count the person once.
        passed = await s.scalar(select(func.count(func.distinct(ParticipationEvent.person_key)))
                                .where(ParticipationEvent.kind == "quiz_finished",
                                       ParticipationEvent.passed.is_(True)))  # fmt: skip
        assert passed == 1
    # Both apps continue with the merged person.
    for app in (telegram, zalo):
        progress = app.text(await app.say("/progress"))
        assert "2/4" in progress, progress


async def test_link_needs_consent_on_both_sides(core: Engine, curriculum: Curriculum) -> None:
    lan = Chat(core, "tg-2", channel="telegram")
    await onboard(lan)
    declined = Chat(core, "zb-2", channel="zalo-bot")
    await declined.say("/start")
    await declined.press("consent:no")
    reply = declined.text(await declined.say("/link"))
    assert "/start" in reply and "đồng ý" in reply.lower()
    pending = Chat(core, "zb-3", channel="zalo-bot")
    await pending.say("/start")
    code = code_in(await lan.say("/link"))
    reply = pending.text(await pending.say(f"/link {code}"))
    assert "/start" in reply and "10 phút" in reply
    # Once they agree, the same code still works.
    await pending.say("/start")
    await pending.press("consent:yes")
    assert "Xong!" in pending.text(await pending.say(f"/link {code}"))
    async with core.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Person)) == 1
    # An account that made a code and then withdrew consent cannot be linked.
    other = Chat(core, "zb-4", channel="zalo-bot")
    await onboard(other)
    code = code_in(await lan.say("/link"))
    async with core.sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE identities SET consent = 'declined' "
                             "WHERE external_id = 'tg-2'"))  # fmt: skip
    reply = other.text(await other.say(f"/link {code}"))
    assert "chưa đồng ý" in reply


async def test_wrong_expired_and_own_codes(core: Engine, clock: Clock) -> None:
    lan = Chat(core, "tg-5", channel="telegram")
    await onboard(lan)
    guesser = Chat(core, "zb-5", channel="zalo-bot")
    await onboard(guesser)
    code = code_in(await lan.say("/link"))
    assert "mã của chính" in lan.text(await lan.say(code))  # typed in the same app
    wrong = "0000 0000" if code != "0000 0000" else "1111 1111"
    for _ in range(5):
        assert "không đúng hoặc đã hết hạn" in guesser.text(await guesser.say(f"/link {wrong}"))
    assert "Quá nhiều" in guesser.text(await guesser.say(f"/link {code}"))
    assert "8 chữ số" in guesser.text(await guesser.say("/link 12"))
    clock.advance(minutes=31)  # the limit lifts; the code has expired meanwhile
    assert "hết hạn" in guesser.text(await guesser.say(f"/link {code}"))
    code = code_in(await lan.say("/link"))
    await guesser.say("/link")
    assert "8 chữ số" in guesser.text(await guesser.say("mã đây"))
    assert "Xong!" in guesser.text(await guesser.say(code))
    code = code_in(await guesser.say("/link"))
    assert "đã được liên kết" in lan.text(await lan.say(f"/link {code}"))


async def test_a_failed_merge_changes_nothing(
    core: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    lan = Chat(core, "tg-6", channel="telegram")
    await onboard(lan)
    other = Chat(core, "zb-6", channel="zalo-bot")
    await onboard(other)
    code = code_in(await lan.say("/link"))

    async def half_then_fail(session, keep, drop, now):  # type: ignore[no-untyped-def]
        await session.execute(text("UPDATE participation_events SET person_key = 'x'"))
        raise IntegrityError("merge", {}, Exception("clash"))

    monkeypatch.setattr(identity_service, "merge_persons", half_then_fail)
    assert "không liên kết được" in other.text(await other.say(f"/link {code}"))
    async with core.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Person)) == 2
        assert "x" not in set(await s.scalars(select(ParticipationEvent.person_key)))
        assert await s.scalar(select(func.count()).select_from(LinkCode)) == 1
    assert "Tiến độ" in other.text(await other.say("/progress"))  # the chat goes on
