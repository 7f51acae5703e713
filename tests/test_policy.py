"""The policy module: for each role, what it reaches, in Python and in SQL (SQLite and
PostgreSQL): inside the scope it works, outside it is refused, and queries return only
in-scope rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Membership, OrgUnit, ParticipationEvent, Person
from bot.db.session import make_engine, make_sessionmaker
from bot.localities import LocalityIndex
from bot.services import policy
from bot.services.policy import Refusal
from tests import orgdata
from tests.orgdata import A, B

# account -> units it reaches, people it reaches, people whose names it may see
EXPECTED: dict[str, tuple[set[str], set[str], set[str]]] = {
    "p1": (orgdata.ALL_UNITS, {"lan", "mai", "hoa", "tuan", "vy"}, set()),
    "la": ({"HPN-A", "HPN-A-X1", "DOAN-A", "MTTQ-A"}, {"lan", "hoa", "tuan", "vy"}, set()),
    "oa": ({"HPN-A", "HPN-A-X1"}, {"lan", "vy"}, {"lan"}),
    "op": ({"HPN-37", "HPN-A", "HPN-A-X1", "HPN-B"}, {"lan", "mai", "vy"}, {"lan", "mai"}),
    "ob": ({"HPN-B"}, {"mai"}, {"mai"}),
    # MTTQ of commune A: every organisation's units and every citizen of commune A.
    "ma": ({"HPN-A", "HPN-A-X1", "DOAN-A", "MTTQ-A"}, {"lan", "hoa", "tuan", "vy"}, set()),
}


@pytest.fixture
async def db(db_url: str, localities: LocalityIndex) -> AsyncIterator[
        async_sessionmaker[AsyncSession]]:  # fmt: skip
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    await orgdata.build(sessionmaker, localities)
    yield sessionmaker
    await engine.dispose()


async def actor(session: AsyncSession, account: str, localities: LocalityIndex) -> policy.Actor:
    return await policy.load_actor(session, "test", account, localities)


async def units(session: AsyncSession) -> dict[str, policy.UnitRef]:
    return {u.code: policy.UnitRef.of(u) for u in await session.scalars(select(OrgUnit))}


async def test_each_role_reaches_exactly_its_scope_in_sql(
    db: async_sessionmaker[AsyncSession], localities: LocalityIndex
) -> None:
    async with db() as s:
        dialect = s.bind.dialect.name
        names = {p.person_key: p.display_name.lower() for p in await s.scalars(select(Person))}
        for account, (want_units, want_people, want_names) in EXPECTED.items():
            who = await actor(s, account, localities)
            got_units = set(await s.scalars(
                select(OrgUnit.code).where(policy.units_filter(who.reaches))))  # fmt: skip
            assert got_units == want_units, account
            got_people = {
                n.lower() for n in await s.scalars(
                    select(Person.display_name).where(policy.persons_filter(who.reaches)))
            }  # fmt: skip
            assert got_people == want_people, account
            keys = set(await s.scalars(select(ParticipationEvent.person_key).where(
                policy.events_filter(who.reaches, dialect))))  # fmt: skip
            assert {names[k] for k in keys} == want_people, account
            member_rows = await s.execute(
                select(Person.display_name).join(Membership, Membership.person_id == Person.id)
                .where(policy.names_filter(who), policy.consented_filter())
            )  # fmt: skip
            assert {n.lower() for (n,) in member_rows} == want_names, account
            memberships = set(await s.scalars(
                select(Membership.unit_code).where(policy.memberships_filter(who.reaches))))
            communes = {"p1": {A, B}, "la": {A}, "ma": {A}}.get(account, set())
            expected_memberships = {
                code for commune, codes, _consent in orgdata.PEOPLE.values()
                for code in codes.values() if code in want_units or commune in communes
            }
            assert memberships == expected_memberships, account


async def test_python_checks_agree_with_the_sql(db: async_sessionmaker[AsyncSession],
                                                localities: LocalityIndex) -> None:
    async with db() as s:
        all_units = await units(s)
        for account, (want_units, _people, _names) in EXPECTED.items():
            who = await actor(s, account, localities)
            for code, unit in all_units.items():
                assert policy.may_view_unit(who, unit) == (code in want_units), (account, code)
        p1, la, oa, ma = [await actor(s, a, localities) for a in ("p1", "la", "oa", "ma")]
        assert policy.may_view_locality(p1, 37) and policy.may_view_locality(p1, B)
        assert policy.may_view_locality(la, A) and not policy.may_view_locality(la, B)
        assert not policy.may_view_locality(la, 37)
        assert not policy.may_view_locality(oa, A)  # an org admin sees units, not communes
        assert policy.may_view_locality(ma, A) and not policy.may_view_locality(ma, B)
        # Names: the unit's own org admin and those above, in the same organisation only.
        op = await actor(s, "op", localities)
        assert policy.may_see_names(oa, all_units["HPN-A-X1"])
        assert policy.may_see_names(op, all_units["HPN-A-X1"])
        assert not policy.may_see_names(oa, all_units["HPN-37"])
        assert not policy.may_see_names(oa, all_units["DOAN-A"])
        assert not policy.may_see_names(p1, all_units["HPN-A"])
        assert not policy.may_see_names(la, all_units["HPN-A"])
        assert not policy.may_see_names(ma, all_units["HPN-A"])
        citizen = await actor(s, "citizen-lan", localities)
        assert not citizen.is_officer and not citizen.revoked
        assert not policy.may_view_unit(citizen, all_units["HPN-A"])


GRANTS = [
    # (account, role, unit, locality, direct, expected refusal)
    ("p1", "province_admin", None, None, True, None),
    ("p1", "locality_admin", None, A, True, None),
    ("p1", "org_admin", "HPN-B", None, True, None),
    ("la", "org_admin", "HPN-A-X1", None, False, None),
    ("la", "org_admin", "HPN-A-X1", None, True, Refusal.INVITE_ONLY),
    ("la", "org_admin", "HPN-B", None, False, Refusal.OUT_OF_SCOPE),
    ("la", "locality_admin", None, A, False, Refusal.OUT_OF_SCOPE),
    ("la", "province_admin", None, None, False, Refusal.ABOVE_ROLE),
    ("oa", "org_admin", "HPN-A-X1", None, False, None),
    ("oa", "org_admin", "HPN-A-X1", None, True, Refusal.INVITE_ONLY),
    ("oa", "org_admin", "HPN-A", None, False, Refusal.OUT_OF_SCOPE),  # their own unit
    ("oa", "org_admin", "HPN-37", None, False, Refusal.OUT_OF_SCOPE),  # above them
    ("oa", "org_admin", "DOAN-A", None, False, Refusal.OUT_OF_SCOPE),  # another organisation
    ("oa", "locality_admin", None, A, False, Refusal.ABOVE_ROLE),
    ("oa", "province_admin", None, None, False, Refusal.ABOVE_ROLE),
    ("op", "org_admin", "HPN-B", None, False, None),
    ("ma", "org_admin", "HPN-A", None, False, None),  # the Front covers every organisation
    ("ma", "org_admin", "MTTQ-37", None, False, Refusal.OUT_OF_SCOPE),
    ("ma", "org_admin", "HPN-B", None, False, Refusal.OUT_OF_SCOPE),
    ("citizen-lan", "org_admin", "HPN-A-X1", None, False, Refusal.NOT_OFFICER),
]


async def test_who_may_grant_what(db: async_sessionmaker[AsyncSession],
                                  localities: LocalityIndex) -> None:
    async with db() as s:
        all_units = await units(s)
        for account, role, code, locality, direct, expected in GRANTS:
            who = await actor(s, account, localities)
            unit = all_units[code] if code else None
            got = policy.may_grant(who, role, unit=unit, locality=locality, direct=direct)
            assert got == expected, (account, role, code, locality, direct)


async def test_a_revoked_officer_reaches_nothing(db: async_sessionmaker[AsyncSession],
                                                 localities: LocalityIndex) -> None:
    from bot.services import officers

    async with db() as s, s.begin():
        await officers.revoke(s, channel="test", external_id="oa", role=None, unit=None,
                              locality=None, by="test", now=orgdata.NOW)  # fmt: skip
    async with db() as s:
        who = await actor(s, "oa", localities)
        assert who.revoked and not who.is_officer
        assert not list(await s.scalars(select(OrgUnit).where(policy.units_filter(who.reaches))))
        assert not list(await s.scalars(select(Person).where(policy.persons_filter(who.reaches))))
        assert policy.may_grant(who, "org_admin", unit=(await units(s))["HPN-A-X1"]) == (
            Refusal.REVOKED
        )


def test_role_targets_are_checked(localities: LocalityIndex) -> None:
    unit = policy.UnitRef(1, "U", "doan", "U", "/1/", A, 37)
    check = policy.check_role_target
    assert check("province_admin", None, None, localities) is None
    assert check("province_admin", unit, None, localities)
    assert check("org_admin", None, None, localities)
    assert check("org_admin", unit, A, localities)
    assert check("org_admin", unit, None, localities) is None
    assert check("locality_admin", None, 37, localities)  # a province is not a commune
    assert check("locality_admin", None, 99999, localities)
    assert check("locality_admin", None, A, localities) is None
    assert check("root", None, None, localities)
