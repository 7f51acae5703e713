"""Officer commands in the chat, for every role: inside the scope they work, outside they are
refused with a plain message, audited, and nothing changes. Citizens cannot tell that officer
commands exist. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.db.models import (
    AuditLog,
    Membership,
    Officer,
    OfficerInvite,
    ParticipationEvent,
    Person,
)
from bot.engine import Engine
from bot.i18n import current_language
from bot.services import officers, orgs
from handlers.common import unknown_command
from tests import orgdata
from tests.conftest import Chat, Clock
from tests.journey import onboard

SCOPE = "nằm ngoài phạm vi"
ABOVE = "cao hơn quyền"
INVITE_ONLY = "Chỉ cán bộ quản trị cấp tỉnh"
NO_NAMES = "mới xem được tên"
REVOKED = "không còn là cán bộ"


@pytest.fixture
async def world(core: Engine) -> AsyncIterator[dict[str, int]]:
    """The orgdata tree, people and officers; returns membership ids by "person:type"."""
    await orgdata.build(core.sessionmaker, core.localities)
    async with core.sessionmaker() as s:
        rows = await s.execute(
            select(Person.display_name, Membership.org_type, Membership.id)
            .join(Membership, Membership.person_id == Person.id)
        )  # fmt: skip
        yield {f"{name.lower()}_{t}": i for name, t, i in rows}


async def snapshot(core: Engine) -> dict[str, object]:
    """What an officer command could change."""
    async with core.sessionmaker() as s:
        async def n(query: object) -> int:
            return int(await s.scalar(query) or 0)  # type: ignore[arg-type]

        return {
            "officers": await n(select(func.count()).select_from(Officer)
                                .where(Officer.revoked_at.is_(None))),
            "invites": await n(select(func.count()).select_from(OfficerInvite)),
            "memberships": await n(select(func.count()).select_from(Membership)),
            "confirmed": await n(select(func.count()).select_from(Membership)
                                 .where(Membership.confirmed_at.isnot(None))),
            "events": await n(select(func.count()).select_from(ParticipationEvent)),
            "audit": await n(select(func.count()).select_from(AuditLog)
                             .where(AuditLog.action != "refused")),
            "refused": await n(select(func.count()).select_from(AuditLog)
                               .where(AuditLog.action == "refused")),
        }  # fmt: skip


# account, command, expected text (a refusal phrase for refusals), refused?
CASES: list[tuple[str, str, str, bool]] = [
    ("p1", "/stats", "Số người đăng ký: 5", False),
    ("p1", "/stats HPN-B", "Hội LHPN xã Bắc Lý", False),
    ("p1", "/stats 13579 2026", "Xã Bắc Lý", False),
    ("p1", "/stats MTTQ-B", "Xã Bắc Lý", False),  # the Front's figures: its whole locality
    ("p1", "/stats NO-SUCH-UNIT", SCOPE, True),
    ("p1", "/stats 99999", SCOPE, True),
    ("p1", "/members HPN-A", NO_NAMES, True),
    ("p1", "/confirm {lan_hoi_phu_nu}", SCOPE, True),
    ("la", "/stats", "Số người đăng ký: 3", False),
    ("la", "/stats HPN-A-X1 2025-2027", "Chi hội Phụ nữ xóm 1", False),
    ("la", "/stats MTTQ-A", "Xã Hải Hậu", False),
    ("la", "/stats MTTQ-B", SCOPE, True),
    ("la", "/stats 13579", SCOPE, True),
    ("la", "/stats HPN-B", SCOPE, True),
    ("la", "/stats 37", SCOPE, True),
    ("la", "/members", NO_NAMES, True),
    ("la", "/grant org_admin HPN-B", SCOPE, True),
    ("la", "/grant province_admin", ABOVE, True),
    ("la", "/grant org_admin HPN-A-X1 test:someone", INVITE_ONLY, True),
    ("oa", "/stats", "Số người đăng ký: 2", False),
    ("oa", "/stats HPN-A-X1", "Chi hội Phụ nữ xóm 1", False),
    ("oa", "/stats HPN-37", SCOPE, True),
    ("oa", "/stats 14215", SCOPE, True),
    ("oa", "/stats DOAN-A", SCOPE, True),
    ("oa", "/stats MTTQ-A", SCOPE, True),
    ("oa", "/members", "Lan", False),
    ("oa", "/members HPN-B", SCOPE, True),
    ("oa", "/grant org_admin HPN-37", SCOPE, True),
    ("oa", "/grant org_admin HPN-A", SCOPE, True),
    ("oa", "/grant locality_admin 14215", ABOVE, True),
    ("oa", "/grant org_admin HPN-A-X1 test:someone", INVITE_ONLY, True),
    ("oa", "/confirm {mai_hoi_phu_nu}", SCOPE, True),
    ("oa", "/remove {lan_doan}", SCOPE, True),
    ("op", "/stats", "Số người đăng ký: 3", False),
    ("op", "/stats DOAN-A", SCOPE, True),
    ("op", "/members HPN-B", "Mai", False),
    ("ob", "/stats", "Số người đăng ký: 1", False),
    ("ob", "/stats HPN-A", SCOPE, True),
    ("ob", "/remove {lan_hoi_phu_nu}", SCOPE, True),
    ("ma", "/stats", "Số người đăng ký: 3", False),
    ("ma", "/stats DOAN-A", "Đoàn xã Hải Hậu", False),
    ("ma", "/stats HPN-B", SCOPE, True),
    ("ma", "/members", "Ủy ban MTTQ xã Hải Hậu** (0)", False),  # the Front's own members
    ("ma", "/members HPN-A", NO_NAMES, True),  # another organisation's names
    ("ma", "/grant org_admin MTTQ-37", SCOPE, True),
    # Changes last (they are checked separately below).
    ("oa", "/confirm {lan_hoi_phu_nu}", "Đã xác nhận", False),
    ("ob", "/remove {mai_hoi_phu_nu}", "Đã gỡ", False),
    ("p1", "/grant locality_admin 13579 test:newofficer", "Xong", False),
    ("la", "/grant org_admin HPN-A-X1", "/start inv_", False),
    ("oa", "/grant org_admin HPN-A-X1", "/start inv_", False),
    ("ma", "/grant org_admin HPN-A", "/start inv_", False),
]


async def test_every_officer_command_for_every_role(core: Engine,
                                                    world: dict[str, int]) -> None:
    chats = {account: Chat(core, account) for account in orgdata.OFFICERS}
    for account, command, expected, refused in CASES:
        text_in = command.format(**world)
        before = await snapshot(core)
        text = chats[account].text(await chats[account].say(text_in))
        assert expected in text, (account, text_in, text)
        after = await snapshot(core)
        if refused:
            assert after == {**before, "refused": before["refused"] + 1}, (account, text_in)
        else:
            assert after["refused"] == before["refused"], (account, text_in)
    final = await snapshot(core)
    async with core.sessionmaker() as s:
        actions = list(await s.scalars(select(AuditLog.action).where(
            AuditLog.action != "refused").order_by(AuditLog.id)))  # fmt: skip
        names = [a for a in actions if a == "view_names"]
    assert final["confirmed"] == 1 and final["memberships"] == 5 - 1  # Mai's was removed
    for action in ("membership_confirm", "membership_remove", "grant", "invite"):
        assert action in actions, action
    assert len(names) == 3  # every /members view is audited


async def test_citizens_cannot_tell_officer_commands_exist(core: Engine) -> None:
    citizen = Chat(core, "citizen")
    token = current_language.set("vi")
    try:
        for before_consent in (True, False):
            if not before_consent:
                await onboard(citizen)
            for name, arg in (("stats", ""), ("stats", "2026"), ("grant", "province_admin"),
                              ("members", ""), ("confirm", "1"), ("remove", "1")):
                replies = await citizen.say(f"/{name} {arg}".strip())
                assert replies == unknown_command(name), (name, before_consent)
            # An officer's button, pressed by a citizen: the answer to any unknown button.
            forged = citizen.text(await citizen.payload("mem:ok:1"))
            unknown = citizen.text(await citizen.payload("zzz:ok:1"))
            assert forged == unknown
    finally:
        current_language.reset(token)
    async with core.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(AuditLog)) == 0
    replies = await citizen.say("/whoami")
    assert "test:citizen" in citizen.text(replies)


async def test_done_when_seeded_province_join_and_stats(core: Engine) -> None:
    """seed-defaults builds Ninh Bình; a citizen joins through a deep link; the commune
    Women's Union's admin sees their unit only; the province admin sees everything."""
    async with core.sessionmaker() as s, s.begin():
        assert await orgs.seed_defaults(s, core.localities, actor="test") == 6 + 129 * 6
        hpn = await orgs.get_unit(s, "HPN-14215")
        assert hpn is not None
        for account, role, unit in (("womens", "org_admin", hpn), ("prov", "province_admin",
                                                                   None)):
            await officers.grant(s, channel="test", external_id=account, role=role, unit=unit,
                                 locality=None, by="test", now=orgdata.NOW,
                                 localities=core.localities)  # fmt: skip
    lan = Chat(core, "lan")
    await lan.say("/start org_HPN-14215")
    await lan.press("consent:yes")
    assert "Bạn đã tham gia Hội Liên hiệp Phụ nữ xã Hải Hậu" in lan.text(lan.history)
    other = Chat(core, "other")  # another commune's member, no deep link
    await other.say("/start")
    await other.press("consent:yes")
    await other.say("giao thuy")
    if any(p.startswith("commune:1") for _label, p in other.buttons):
        await other.press(next(p for label, p in other.buttons if label == "Xã Giao Thuỷ"))
    await other.press("gender:skip")
    await other.press("age:skip")
    await other.press("org:hoi_phu_nu")
    await other.press("org:done")
    await lan.say("hai hau")
    await lan.press(next(p for label, p in lan.buttons if label == "Xã Hải Hậu"))
    await lan.press("gender:female")
    await lan.press("age:31-45")
    # The unit of the link is already ticked; the Farmers' Union of Hải Hậu is attached too.
    assert any(label.startswith("☑") and p == "org:hoi_phu_nu" for label, p in lan.buttons)
    await lan.press("org:hoi_nong_dan")
    await lan.press("org:done")
    async with core.sessionmaker() as s:
        units = set(await s.scalars(select(Membership.unit_code)))
    assert {"HPN-14215", "HND-14215"} <= units
    womens = Chat(core, "womens")
    text = womens.text(await womens.say("/stats"))
    assert "Hội Liên hiệp Phụ nữ xã Hải Hậu" in text and "Số người đăng ký: 1" in text
    assert "Xã Giao Thuỷ" not in text
    assert womens.text(await womens.say("/stats 37")).count(SCOPE) == 1
    prov = Chat(core, "prov")
    text = prov.text(await prov.say("/stats"))
    assert "Tỉnh Ninh Bình" in text and "Số người đăng ký: 2" in text
    assert "Xã Hải Hậu: 1 đăng ký" in text and "Xã Giao Thuỷ: 1 đăng ký" in text
    assert "127 xã, phường khác" in text  # the communes with nothing yet are summed up


def invite_token(text: str) -> str:
    found = re.search(r"inv_([A-Za-z0-9_-]+)", text)
    assert found, text
    return found.group(1)


async def test_one_time_invites(core: Engine, world: dict[str, int], clock: Clock) -> None:
    oa = Chat(core, "oa")
    token = invite_token(oa.text(await oa.say("/grant org_admin HPN-A-X1")))
    newbie = Chat(core, "newbie")
    text = newbie.text(await newbie.say(f"/start inv_{token}"))
    assert "Chi hội Phụ nữ xóm 1" in text and "Đồng ý" in str(newbie.buttons)
    text = newbie.text(await newbie.say("/stats"))
    assert "Chi hội Phụ nữ xóm 1" in text
    # The same link again, by someone else: refused, nothing granted, audited.
    before = await snapshot(core)
    intruder = Chat(core, "intruder")
    assert "không còn hiệu lực" in intruder.text(await intruder.say(f"/start inv_{token}"))
    assert intruder.text(await intruder.say("/stats")).startswith("Tôi chưa biết lệnh")
    after = await snapshot(core)
    assert after["officers"] == before["officers"] and after["refused"] == before["refused"] + 1
    # A forged token, and an expired one.
    assert "không còn hiệu lực" in intruder.text(await intruder.say("/start inv_forged123"))
    token = invite_token(oa.text(await oa.say("/grant org_admin HPN-A-X1")))
    clock.advance(days=8)
    assert "không còn hiệu lực" in intruder.text(await intruder.say(f"/start inv_{token}"))
    # A link from an officer who lost the role since dies with the role.
    token = invite_token(oa.text(await oa.say("/grant org_admin HPN-A-X1")))
    async with core.sessionmaker() as s, s.begin():
        await officers.revoke(s, channel="test", external_id="oa", role=None, unit=None,
                              locality=None, by="test", now=clock())  # fmt: skip
    assert "không còn hiệu lực" in intruder.text(await intruder.say(f"/start inv_{token}"))
    async with core.sessionmaker() as s:
        granted = await s.scalar(select(func.count()).select_from(Officer).where(
            Officer.external_id == "intruder"))  # fmt: skip
    assert granted == 0


async def test_a_revoked_officer_pressing_an_old_button(core: Engine,
                                                        world: dict[str, int]) -> None:
    oa = Chat(core, "oa")
    await oa.say("/members")
    button = f"mem:ok:{world['lan_hoi_phu_nu']}"
    assert button in [p for _label, p in oa.buttons]
    async with core.sessionmaker() as s, s.begin():
        await officers.revoke(s, channel="test", external_id="oa", role=None, unit=None,
                              locality=None, by="test", now=orgdata.NOW)  # fmt: skip
    before = await snapshot(core)
    assert REVOKED in oa.text(await oa.press(button))
    assert REVOKED in oa.text(await oa.say("/stats"))
    after = await snapshot(core)
    assert after == {**before, "refused": before["refused"] + 2}
    # Forged buttons from a current officer are refused the same way as forged commands.
    op = Chat(core, "op")
    assert SCOPE in op.text(await op.payload("mem:ok:999999"))
    assert SCOPE in op.text(await op.payload(f"mem:rm:{world['lan_doan']}"))
    text = op.text(await op.payload(f"mem:ok:{world['lan_hoi_phu_nu']}"))
    assert "Đã xác nhận" in text


async def test_members_lists_only_consented_members(core: Engine,
                                                    world: dict[str, int]) -> None:
    oa = Chat(core, "oa")
    text = oa.text(await oa.say("/members"))
    assert "Lan" in text and "Chi hội Phụ nữ xóm 1" in text
    assert "Vy" not in text  # her consent was withdrawn on her identity
    assert "(1)" in text
    assert "Mai" not in text and "Tuan" not in text


async def test_whoami_and_usage(core: Engine, world: dict[str, int]) -> None:
    anyone = Chat(core, "12345")
    text = anyone.text(await anyone.say("/whoami"))
    assert "test:12345" in text
    p1 = Chat(core, "p1")
    assert "Cách dùng: /grant" in p1.text(await p1.say("/grant"))
    assert "Cách dùng: /grant" in p1.text(await p1.say("/grant org_admin"))
    assert "Cách dùng: /grant" in p1.text(await p1.say("/grant locality_admin 37"))
    assert "Năm 1999" in p1.text(await p1.say("/stats 1999"))
    assert "kết thúc trước" in p1.text(await p1.say("/stats 2027-2025"))
    assert "Cách dùng: /stats" in p1.text(await p1.say("/stats a b c"))
