"""Metric definitions (bot.services.metrics) on a small hand-made data set whose right answers
are worked out here, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import ParticipationEvent
from bot.db.session import make_engine, make_sessionmaker
from bot.localities import LocalityIndex
from bot.services import metrics, orgs, policy
from bot.services.metrics import PeriodError, parse_period
from tests import orgdata
from tests.orgdata import A, B


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ev(key: str, kind: str, at: datetime, commune: int | None, units: str = "",
       types: str = "", **fields: object) -> ParticipationEvent:  # fmt: skip
    return ParticipationEvent(person_key=key, kind=kind, at=at, commune_code=commune,
                              unit_codes=units or None, memberships=types or None,
                              **fields)  # fmt: skip


LAN = ("HPN-A-X1,DOAN-A", "doan,hoi_phu_nu")  # two memberships


def events() -> list[ParticipationEvent]:
    """Every person's events, new objects each time; no `persons` rows at all: aggregates
    never need them (k3 stands for someone erased since, whose events still count)."""
    return [
        # k1 Lan, commune A, two memberships.
        ev("k1", "registered", utc(2025, 12, 20), A, *LAN),
        ev("k1", "lesson_completed", utc(2025, 12, 31, 17, 30), A, *LAN, lesson_id="L9"),  # 1 Jan
        ev("k1", "lesson_completed", utc(2026, 2, 1), A, *LAN, lesson_id="L1"),
        ev("k1", "lesson_completed", utc(2026, 2, 3), A, *LAN, lesson_id="L1"),  # same pair again
        ev("k1", "lesson_completed", utc(2026, 2, 5), A, *LAN, lesson_id="L2"),
        ev("k1", "quiz_finished", utc(2026, 2, 1), A, *LAN, lesson_id="L1", passed=True),
        ev("k1", "quiz_finished", utc(2026, 2, 5), A, *LAN, lesson_id="L2", passed=False),
        ev("k1", "certificate_issued", utc(2026, 2, 10), A, *LAN, module_id="m1"),
        ev("k1", "certificate_issued", utc(2026, 3, 10), A, *LAN, module_id="m2"),
        ev("k1", "lesson_completed", utc(2026, 12, 31, 17, 30), A, *LAN, lesson_id="L8"),  # 2027
        # k2 Minh moved from A to B in January 2026; no membership.
        ev("k2", "registered", utc(2025, 6, 1), A),
        ev("k2", "lesson_completed", utc(2025, 7, 1), A, lesson_id="L1"),
        ev("k2", "profile_changed", utc(2026, 1, 15), B),
        ev("k2", "lesson_completed", utc(2026, 2, 1), B, lesson_id="L2"),
        ev("k2", "lesson_started", utc(2026, 2, 20), B, lesson_id="L3"),
        # k3, erased since: commune B, HPN-B.
        ev("k3", "registered", utc(2026, 1, 5), B, "HPN-B", "hoi_phu_nu"),
        ev("k3", "lesson_completed", utc(2026, 1, 6), B, "HPN-B", "hoi_phu_nu", lesson_id="L1"),
        # k4 registers only in 2027.
        ev("k4", "registered", utc(2027, 1, 2), A, "HPN-A", "hoi_phu_nu"),
        # k5 lives in B and is a direct member of the province union.
        ev("k5", "registered", utc(2026, 3, 1), B, "HPN-37", "hoi_phu_nu"),
        # k6 lives in A and is a member of the commune union itself (no chi hội).
        ev("k6", "registered", utc(2026, 1, 20), A, "HPN-A", "hoi_phu_nu"),
        ev("k6", "lesson_completed", utc(2026, 2, 2), A, "HPN-A", "hoi_phu_nu", lesson_id="L1"),
    ]
Y2026 = metrics.year_period(2026)


@pytest.fixture
async def db(db_url: str, localities: LocalityIndex) -> AsyncIterator[
        async_sessionmaker[AsyncSession]]:  # fmt: skip
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as s, s.begin():
        await orgdata.add_units(s, localities)
        s.add_all(events())
    yield sessionmaker
    await engine.dispose()


async def unit(s: AsyncSession, code: str) -> policy.UnitRef:
    found = await orgs.get_unit(s, code)
    assert found is not None
    return policy.UnitRef.of(found)


def by_key(report: metrics.Report) -> dict[str, metrics.Figures]:
    return {row.key: row.figures for row in report.rows}


async def test_a_unit_tree_adds_up(db: async_sessionmaker[AsyncSession],
                                   localities: LocalityIndex) -> None:
    async with db() as s:
        report = await metrics.compute(s, metrics.subject_of_unit(await unit(s, "HPN-37")),
                                       Y2026, localities=localities)  # fmt: skip
    t = report.total
    # Registered members at the end of 2026: k1 (via chi hội X1), k3, k5 (direct), k6.
    assert t.registered == 4 and t.members == {"hoi_phu_nu": 4}
    # Lessons: k1 L9 (1 Jan local), L1 (twice, once), L2; k3 L1; k6 L1. L8 is 2027 locally.
    assert t.lessons_completed == 5
    assert t.quizzes_passed == 1 and t.certificates == 2
    assert t.active == 3  # k1, k3, k6
    rows = by_key(report)
    assert set(rows) == {"HPN-A", "HPN-B", "HPN-37"}  # the units below, and its own members
    assert rows["HPN-A"].registered == 2 and rows["HPN-A"].lessons_completed == 4
    assert rows["HPN-B"].registered == 1 and rows["HPN-B"].lessons_completed == 1
    assert rows["HPN-37"].registered == 1 and rows["HPN-37"].lessons_completed == 0
    # The province unit's figures are its communes' plus its own direct members'.
    assert sum(r.registered for r in rows.values()) == t.registered
    assert sum(r.lessons_completed for r in rows.values()) == t.lessons_completed
    own = [r for r in report.rows if r.own]
    assert [r.key for r in own] == ["HPN-37"]


async def test_the_province_by_commune_and_a_person_who_moved(
    db: async_sessionmaker[AsyncSession], localities: LocalityIndex
) -> None:
    async with db() as s:
        report = await metrics.compute(s, metrics.subject_of_locality(localities, 37), Y2026,
                                       localities=localities)  # fmt: skip
        before = await metrics.compute(s, metrics.subject_of_locality(localities, 37),
                                       metrics.year_period(2025), localities=localities)
    t = report.total
    assert t.registered == 5  # k1 k2 k3 k5 k6; k4 only in 2027
    assert t.members == {"hoi_phu_nu": 4, "doan": 1}
    assert t.lessons_completed == 6 and t.active == 4
    rows = by_key(report)
    assert len(rows) == 129  # every commune of Ninh Bình is a row
    a, b = rows[f"{A:05d}"], rows[f"{B:05d}"]
    # k2 counts in B at the end of 2026 (moved), his 2026 lesson in B.
    assert (a.registered, b.registered) == (2, 3)
    assert (a.lessons_completed, b.lessons_completed) == (4, 2)
    assert (a.active, b.active) == (2, 2)
    assert sum(f.registered for f in rows.values()) == t.registered
    # In 2025 he lived in A, and his 2025 lesson stays with A: moving never rewrites the past.
    past = by_key(before)
    assert before.total.registered == 2  # k1 (20 Dec 2025) and k2
    assert past[f"{A:05d}"].registered == 2 and past[f"{B:05d}"].registered == 0
    assert past[f"{A:05d}"].lessons_completed == 1


async def test_a_person_in_two_units_counts_once_in_each_and_once_in_the_total(
    db: async_sessionmaker[AsyncSession], localities: LocalityIndex
) -> None:
    async with db() as s:
        commune = await metrics.compute(s, metrics.subject_of_locality(localities, A), Y2026,
                                        localities=localities)  # fmt: skip
        youth = await metrics.compute(s, metrics.subject_of_unit(await unit(s, "DOAN-37")),
                                      Y2026, localities=localities)  # fmt: skip
    rows = by_key(commune)
    # Commune A is broken down by the units located there (the top one of each tree).
    assert set(rows) == {"HPN-A", "DOAN-A", "MTTQ-A"}
    assert rows["HPN-A"].registered == 2 and rows["DOAN-A"].registered == 1
    assert rows["HPN-A"].lessons_completed == 4 and rows["DOAN-A"].lessons_completed == 3
    assert commune.total.registered == 2  # k1 once, k6
    assert commune.total.lessons_completed == 4  # k1's 3 pairs counted once, k6's one
    assert youth.total.registered == 1 and youth.total.members == {"doan": 1}
    assert by_key(youth)["DOAN-A"].registered == 1


async def test_an_officers_reach_filters_every_query(db: async_sessionmaker[AsyncSession],
                                                     localities: LocalityIndex) -> None:
    reach = (policy.locality_reach(localities, A),)
    async with db() as s:
        report = await metrics.compute(s, metrics.subject_of_locality(localities, 37), Y2026,
                                       reaches=reach, localities=localities)  # fmt: skip
    assert report.total.registered == 2 and report.total.lessons_completed == 4
    rows = by_key(report)
    assert rows[f"{B:05d}"] == metrics.Figures()


async def test_active_window_and_official_counts(db: async_sessionmaker[AsyncSession],
                                                 localities: LocalityIndex) -> None:
    async with db() as s, s.begin():
        hpn_a = await orgs.get_unit(s, "HPN-A")
        assert hpn_a is not None
        await orgs.set_unit_year(s, hpn_a, 2026, member_count=340, target=200, actor="test")
    last_30 = metrics.last_days(utc(2026, 2, 25, 3), 30)  # 27 Jan .. 25 Feb local
    async with db() as s:
        report = await metrics.compute(s, metrics.subject_of_unit(await unit(s, "HPN-A")),
                                       Y2026, active=last_30, localities=localities)
        commune = await metrics.compute(s, metrics.subject_of_locality(localities, A), Y2026,
                                        localities=localities)  # fmt: skip
    assert report.total.active == 2  # k1 and k6 learned in February; k3 is not in HPN-A
    assert report.total.lessons_completed == 4  # the period still counts the whole year
    assert report.official == {"hoi_phu_nu": 340}
    assert commune.official == {"hoi_phu_nu": 340}
    assert by_key(report)["HPN-A-X1"].registered == 1


PERIODS = [
    ("2026", date(2026, 1, 1), date(2026, 12, 31)),
    ("2025-2027", date(2025, 1, 1), date(2027, 12, 31)),
    ("2025 - 2030", date(2025, 1, 1), date(2030, 12, 31)),
    ("2026-02-01..2026-02-28", date(2026, 2, 1), date(2026, 2, 28)),
    ("2026-03-05..2026-03-05", date(2026, 3, 5), date(2026, 3, 5)),
]
BAD_PERIODS = ["2027-2025", "1999", "2026-02-30..2026-03-01", "2026-03-02..2026-03-01",
               "năm nay", "", "2026-1", "20260"]  # fmt: skip


def test_periods_are_local_days_with_both_ends_included() -> None:
    for text, first, last in PERIODS:
        period = parse_period(text)
        assert (period.first_day, period.last_day) == (first, last), text
    p = parse_period("2026")
    assert p.start == utc(2025, 12, 31, 17) and p.end == utc(2026, 12, 31, 17)
    for text in BAD_PERIODS:
        with pytest.raises(PeriodError) as err:
            parse_period(text)
        assert str(err.value) and err.value.localized()
    with pytest.raises(PeriodError, match="2027-2025 ends before it starts"):
        parse_period("2027-2025")
