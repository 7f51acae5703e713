"""A small organisation tree, people and officers shared by the organisation tests.

Two communes of Ninh Bình: A = Xã Hải Hậu (14215), B = Xã Bắc Lý (13579).

    HPN-37 (Women's Union, province)      DOAN-37            MTTQ-37
      HPN-A (commune A)                     DOAN-A (A)         MTTQ-A (A)
        HPN-A-X1 (chi hội xóm 1, in A)                         MTTQ-B (B)
      HPN-B (commune B)

People (channel "test"): lan lives in A, member of HPN-A-X1 and DOAN-A (two memberships);
mai lives in B, member of HPN-B; hoa lives in A, no membership; tuan lives in B but is a
member of DOAN-A; vy is a member of HPN-A whose consent was withdrawn on her identity.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Identity, Membership, Person
from bot.localities import LocalityIndex
from bot.services import officers, orgs, progress

A, B = 14215, 13579
UNITS_CSV = f"""type,name,locality_code,parent_code,code
hoi_phu_nu,Hội LHPN tỉnh Ninh Bình,37,,HPN-37
hoi_phu_nu,Hội LHPN xã Hải Hậu,{A},HPN-37,HPN-A
hoi_phu_nu,Chi hội Phụ nữ xóm 1,{A},HPN-A,HPN-A-X1
hoi_phu_nu,Hội LHPN xã Bắc Lý,{B},HPN-37,HPN-B
doan,Tỉnh đoàn Ninh Bình,37,,DOAN-37
doan,Đoàn xã Hải Hậu,{A},DOAN-37,DOAN-A
mttq,Ủy ban MTTQ tỉnh Ninh Bình,37,,MTTQ-37
mttq,Ủy ban MTTQ xã Hải Hậu,{A},MTTQ-37,MTTQ-A
mttq,Ủy ban MTTQ xã Bắc Lý,{B},MTTQ-37,MTTQ-B
"""
ALL_UNITS = {"HPN-37", "HPN-A", "HPN-A-X1", "HPN-B", "DOAN-37", "DOAN-A", "MTTQ-37", "MTTQ-A",
             "MTTQ-B"}  # fmt: skip

# name -> (commune, {org type: unit code}, consent)
PEOPLE: dict[str, tuple[int, dict[str, str], str]] = {
    "lan": (A, {"hoi_phu_nu": "HPN-A-X1", "doan": "DOAN-A"}, "given"),
    "mai": (B, {"hoi_phu_nu": "HPN-B"}, "given"),
    "hoa": (A, {}, "given"),
    "tuan": (B, {"doan": "DOAN-A"}, "given"),
    "vy": (A, {"hoi_phu_nu": "HPN-A"}, "declined"),
}

# account -> (role, unit code, locality)
OFFICERS: dict[str, tuple[str, str | None, int | None]] = {
    "p1": ("province_admin", None, None),
    "la": ("locality_admin", None, A),
    "oa": ("org_admin", "HPN-A", None),
    "op": ("org_admin", "HPN-37", None),
    "ob": ("org_admin", "HPN-B", None),
    "ma": ("org_admin", "MTTQ-A", None),
}
NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


async def add_units(session: AsyncSession, localities: LocalityIndex) -> None:
    result = await orgs.import_csv(session, UNITS_CSV, localities, actor="test")
    assert result.ok, result.problems


async def add_people(session: AsyncSession, *, at: datetime = NOW - timedelta(days=10)) -> dict[
        str, Person]:  # fmt: skip
    """Each person registers, then does one lesson (events carry their memberships)."""
    people: dict[str, Person] = {}
    for name, (commune, units, consent) in PEOPLE.items():
        person = Person(display_name=name.title(), commune_code=commune, consent_version="t",
                        consented_at=at)  # fmt: skip
        person.memberships = [
            Membership(org_type=t, unit_code=code, since=at) for t, code in units.items()
        ]
        session.add(person)
        await session.flush()
        session.add(Identity(channel="test", external_id=f"citizen-{name}",
                             chat_id=f"citizen-{name}", consent=consent, person_id=person.id,
                             state="", state_data={}))  # fmt: skip
        progress.record(session, person, "registered", at=at)
        progress.record(session, person, "lesson_completed", at=at + timedelta(hours=1),
                        lesson_id="vneid-cai-dat", module_id="vneid")  # fmt: skip
        people[name] = person
    await session.flush()
    return people


async def add_officers(session: AsyncSession, localities: LocalityIndex) -> None:
    for account, (role, unit_code, locality) in OFFICERS.items():
        unit = await orgs.get_unit(session, unit_code) if unit_code else None
        await officers.grant(session, channel="test", external_id=account, role=role, unit=unit,
                             locality=locality, by="test", now=NOW,
                             localities=localities)  # fmt: skip


async def build(sessionmaker: async_sessionmaker[AsyncSession],
                localities: LocalityIndex) -> dict[str, Person]:  # fmt: skip
    async with sessionmaker() as session, session.begin():
        await add_units(session, localities)
        people = await add_people(session)
        await add_officers(session, localities)
    return people
