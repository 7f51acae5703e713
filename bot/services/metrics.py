"""The metric definitions of DESIGN.md, computed in SQL over participation events.

One place for the definitions: /stats uses it now, reports and the dashboard reuse it.

- Time: Asia/Ho_Chi_Minh; a period includes both ends ("2025-2027" is 1 Jan 2025 00:00 to
  31 Dec 2027 24:00 local). `parse_period` is the only parser of period text.
- Attribution: an event counts for the commune and the units it carries (the person's at
  the time); moving or leaving never rewrites the past. A unit's figures include its subtree;
  a person in two units counts once in each and once in any total (every count is a
  COUNT(DISTINCT ...), never a sum of rows).
- State at a moment (registered, members) is the snapshot carried by each person's latest
  event before the period's end; erased (pseudonymised) people keep counting.

Every query takes the subject's filter and, for an officer, `policy.rows_filter` of their
reach, so nothing outside the scope is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    String,
    and_,
    case,
    distinct,
    exists,
    func,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.db.models import OrgUnit, ParticipationEvent, UnitYear
from bot.i18n import N_, TZ, _
from bot.services import orgs, policy
from bot.services.policy import Reach, Subject, UnitRef

if TYPE_CHECKING:
    from bot.localities import LocalityIndex

ACTIVE_KINDS = ("lesson_started", "quiz_answered", "lesson_completed")
EVENT_KINDS = (*ACTIVE_KINDS, "quiz_finished", "certificate_issued")
# Latest events that end a registration (consent withdrawn); erasure does not: past
# aggregates keep counting pseudonymised people.
ENDS_REGISTRATION = ("consent_withdrawn",)
STATS_ACTIVE_DAYS = 30
FIRST_YEAR, LAST_YEAR = 2000, 2100

E = ParticipationEvent.__table__

# ---------------------------------------------------------------------------- periods


class PeriodError(ValueError):
    """Period text that cannot be read. `str()` is English; `localized()` translated."""

    def __init__(self, msgid: str, **args: Any) -> None:
        super().__init__(msgid.format(**args))
        self.msgid, self.args_ = msgid, args

    def localized(self) -> str:
        return _(self.msgid).format(**self.args_)


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC, from local midnight of the first day to local midnight after the
    last day."""

    start: datetime
    end: datetime
    label: str

    @property
    def first_day(self) -> date:
        return self.start.astimezone(TZ).date()

    @property
    def last_day(self) -> date:
        return (self.end.astimezone(TZ) - timedelta(seconds=1)).date()

    @property
    def year(self) -> int:
        """The year whose official member counts apply: the period's last."""
        return self.last_day.year


def days_period(first: date, last: date, label: str | None = None) -> Period:
    start = datetime.combine(first, time(0), TZ)
    end = datetime.combine(last + timedelta(days=1), time(0), TZ)
    return Period(start.astimezone(UTC), end.astimezone(UTC),
                  label or f"{first.isoformat()}..{last.isoformat()}")  # fmt: skip


def year_period(first: int, last: int | None = None) -> Period:
    last = first if last is None else last
    label = str(first) if first == last else f"{first}-{last}"
    return days_period(date(first, 1, 1), date(last, 12, 31), label)


def last_days(now: datetime, days: int = STATS_ACTIVE_DAYS) -> Period:
    """The `days` days up to and including today (local)."""
    today = now.astimezone(TZ).date()
    return days_period(today - timedelta(days=days - 1), today)


_YEARS = re.compile(r"^(\d{4})(?:\s*-\s*(\d{4}))?$")
_DAYS = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})$")
PERIOD_HELP = N_("Write a period as 2026, 2025-2027 or 2026-01-01..2026-03-31.")


def _year(text: str) -> int:
    year = int(text)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise PeriodError(N_("The year {year} is out of range ({first}-{last})."),
                          year=year, first=FIRST_YEAR, last=LAST_YEAR)  # fmt: skip
    return year


def _day(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise PeriodError(N_("{text} is not a date (YYYY-MM-DD)."), text=text[:20]) from None
    _year(str(day.year))
    return day


def is_period(text: str) -> bool:
    """Does `text` look like a period (it may still be invalid, e.g. 2027-2025)?"""
    t = text.strip()
    return bool(_YEARS.match(t) or _DAYS.match(t))


def parse_period(text: str) -> Period:
    """'2026', '2025-2027' or 'YYYY-MM-DD..YYYY-MM-DD' (both ends included, local time)."""
    t = text.strip()
    if m := _YEARS.match(t):
        first = _year(m.group(1))
        last = _year(m.group(2)) if m.group(2) else first
        if last < first:
            raise PeriodError(N_("The period {text} ends before it starts."), text=t[:30])
        return year_period(first, last)
    if m := _DAYS.match(t):
        first_day, last_day = _day(m.group(1)), _day(m.group(2))
        if last_day < first_day:
            raise PeriodError(N_("The period {text} ends before it starts."), text=t[:30])
        return days_period(first_day, last_day)
    raise PeriodError(N_('"{text}" is not a period.'), text=t[:30])


# ---------------------------------------------------------------------------- results


@dataclass(slots=True)
class Figures:
    registered: int = 0
    members: dict[str, int] = field(default_factory=dict)  # org type -> registered members
    active: int = 0
    lessons_completed: int = 0
    quizzes_passed: int = 0
    certificates: int = 0


@dataclass(slots=True)
class Row:
    """One of the units or communes directly below the subject."""

    key: str  # unit code, or the commune code as 5 digits
    label: str
    figures: Figures
    unit: UnitRef | None = None
    own: bool = False  # the subject unit's own members, not those of a unit below


@dataclass(slots=True)
class Report:
    subject: Subject
    period: Period
    active_period: Period
    total: Figures
    rows: list[Row]
    official: dict[str, int]  # org type -> official member count entered for the year


# ---------------------------------------------------------------------------- SQL pieces


def _events(start: datetime, end: datetime, kinds: tuple[str, ...]) -> Any:
    """The events of `kinds` in [start, end), with what attribution and the measures need."""
    return (
        select(E.c.id, E.c.at, E.c.person_key, E.c.kind, E.c.lesson_id, E.c.passed,
               E.c.commune_code, E.c.unit_codes)
        .where(E.c.at >= start, E.c.at < end, E.c.kind.in_(kinds))
        .subquery("ev")
    )  # fmt: skip


def _state(end: datetime) -> Any:
    """Each registered person's snapshot as of `end` (their latest event before it)."""
    rn = func.row_number().over(partition_by=E.c.person_key, order_by=(E.c.at.desc(),
                                                                        E.c.id.desc()))
    ranked = (
        select(E.c.person_key, E.c.kind, E.c.commune_code, E.c.unit_codes, E.c.memberships,
               rn.label("rn"))
        .where(E.c.at < end)
        .subquery("ranked")
    )  # fmt: skip
    registered = select(E.c.id).where(
        E.c.kind == "registered", E.c.at < end, E.c.person_key == ranked.c.person_key
    )
    return (
        select(ranked.c.person_key, ranked.c.commune_code, ranked.c.unit_codes,
               ranked.c.memberships)
        .where(ranked.c.rn == 1, ranked.c.kind.not_in(ENDS_REGISTRATION), exists(registered))
        .subquery("state")
    )  # fmt: skip


def _subject_filter(rel: Any, subject: Subject, dialect: str) -> Any:
    if subject.unit is not None:
        ex = policy.explode(rel.c.unit_codes, dialect)
        codes = select(OrgUnit.code).where(OrgUnit.path.startswith(subject.unit.path))
        return exists(select(ex.c.value).where(ex.c.value.in_(codes)))
    return rel.c.commune_code.in_(sorted(subject.communes))


def _scope(rel: Any, reaches: tuple[Reach, ...] | None, dialect: str) -> Any:
    if reaches is None:
        return true()
    return policy.rows_filter(reaches, rel.c.commune_code, rel.c.unit_codes, dialect)


def _event_measures(ev: Any, period: Period, active: Period) -> list[Any]:
    """Active learners over `active`; lessons completed, quizzes passed (distinct person and
    lesson pairs) and certificates over `period`."""
    pair = ev.c.person_key + literal(":", String) + func.coalesce(ev.c.lesson_id, "")
    in_period = and_(ev.c.at >= period.start, ev.c.at < period.end)
    is_active = and_(ev.c.at >= active.start, ev.c.at < active.end,
                     ev.c.kind.in_(ACTIVE_KINDS))  # fmt: skip
    passed = and_(in_period, ev.c.kind == "quiz_finished", ev.c.passed.is_(True))
    lesson = and_(in_period, ev.c.kind == "lesson_completed")
    certificate = and_(in_period, ev.c.kind == "certificate_issued")
    return [
        func.count(distinct(case((is_active, ev.c.person_key)))).label("active"),
        func.count(distinct(case((lesson, pair)))).label("lessons_completed"),
        func.count(distinct(case((passed, pair)))).label("quizzes_passed"),
        func.count(distinct(case((certificate, ev.c.id)))).label("certificates"),
    ]


class _Groups:
    """How rows of a relation map to the breakdown rows: by commune, or by unit subtree.

    A group's figures are the figures of that commune or unit (subtree) itself, so they equal
    what its own officer sees; the caller picks groups inside the subject and the scope.
    """

    def __init__(self, communes: list[int] | None = None, mapping: Any = None) -> None:
        self.communes = communes
        self.mapping = mapping

    def select(self, rel: Any, measures: list[Any], dialect: str, where: list[Any]) -> Any:
        if self.communes is not None:
            key = rel.c.commune_code
            query = select(key.label("grp"), *measures).select_from(rel).where(
                key.in_(self.communes)
            )
        else:
            ex = policy.explode(rel.c.unit_codes, dialect)
            key = self.mapping.c.grp
            query = (
                select(key.label("grp"), *measures)
                .select_from(rel)
                .join(ex, true())
                .join(self.mapping, self.mapping.c.code == ex.c.value)
            )
        return query.where(*where).group_by(key)


def _unit_mapping(groups: list[OrgUnit], own: UnitRef | None) -> Any:
    """(code, grp): every unit code in each group unit's subtree -> that group's code; the
    subject unit's own code -> itself."""
    unit, group = aliased(OrgUnit), aliased(OrgUnit)
    parts: list[Any] = []
    if groups:
        parts.append(
            select(unit.code.label("code"), group.code.label("grp"))
            .select_from(unit)
            .join(group, unit.path.startswith(group.path))
            .where(group.id.in_([g.id for g in groups]))
        )
    if own is not None:
        parts.append(select(literal(own.code, String).label("code"),
                            literal(own.code, String).label("grp")))  # fmt: skip
    mapping = union_all(*parts) if len(parts) > 1 else parts[0]
    return mapping.subquery("grp_map")


# ---------------------------------------------------------------------------- computing


async def _event_figures(session: AsyncSession, subject: Subject, period: Period,
                         active: Period, reaches: tuple[Reach, ...] | None,
                         groups: _Groups | None,
                         dialect: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Active learners (over `active`), lessons, quizzes, certificates (over `period`):
    total and per group, each a COUNT(DISTINCT ...) in one scan of both windows."""
    ev = _events(min(period.start, active.start), max(period.end, active.end), EVENT_KINDS)
    measures = _event_measures(ev, period, active)
    scope = [_scope(ev, reaches, dialect)]
    total_row = (await session.execute(
        select(*measures).select_from(ev).where(_subject_filter(ev, subject, dialect), *scope)
    )).one()  # fmt: skip
    total = {k: int(v or 0) for k, v in total_row._mapping.items()}
    per: dict[str, dict[str, int]] = {}
    if groups is not None:
        for row in await session.execute(groups.select(ev, measures, dialect, scope)):
            data = dict(row._mapping)
            key = str(data.pop("grp"))
            per[key] = {k: int(v or 0) for k, v in data.items()}
    return total, per


async def _state_figures(session: AsyncSession, subject: Subject, period: Period,
                         reaches: tuple[Reach, ...] | None, groups: _Groups | None,
                         dialect: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """Registered people at the period's end: total, per org type (members), per group."""
    st = _state(period.end)
    count = func.count(distinct(st.c.person_key))
    scope = [_scope(st, reaches, dialect)]
    where = [_subject_filter(st, subject, dialect), *scope]
    total = int(await session.scalar(select(count).select_from(st).where(*where)) or 0)
    members: dict[str, int] = {}
    if subject.unit is not None:
        if total:
            members[subject.unit.type] = total
    else:
        ex = policy.explode(st.c.memberships, dialect)
        query = (
            select(ex.c.value, count).select_from(st).join(ex, true()).where(*where)
            .group_by(ex.c.value)
        )  # fmt: skip
        members = {str(t): int(n) for t, n in await session.execute(query)}
    per: dict[str, int] = {}
    if groups is not None:
        query = groups.select(st, [count.label("registered")], dialect, scope)
        per = {str(grp): int(n) for grp, n in await session.execute(query)}
    return total, members, per


async def official_members(session: AsyncSession, units: list[OrgUnit] | list[UnitRef],
                           year: int) -> dict[str, int]:  # fmt: skip
    """Official member counts entered for `year`, summed per org type over `units`."""
    ids = [u.id for u in units]
    if not ids:
        return {}
    query = (
        select(OrgUnit.type, func.sum(UnitYear.member_count))
        .join(UnitYear, UnitYear.unit_id == OrgUnit.id)
        .where(OrgUnit.id.in_(ids), UnitYear.year == year, UnitYear.member_count.isnot(None))
        .group_by(OrgUnit.type)
    )
    return {str(t): int(n) for t, n in await session.execute(query)}


async def _group_units(session: AsyncSession, subject: Subject,
                       reaches: tuple[Reach, ...] | None) -> tuple[list[OrgUnit], bool]:
    """The units directly below the subject, and whether the subject's own members get a row."""
    where = policy.units_filter(reaches) if reaches is not None else None
    if subject.unit is not None:
        return await orgs.children(session, subject.unit.id, where), True
    assert subject.locality_code is not None
    return await orgs.top_units(session, subject.locality_code, where), False


async def compute(session: AsyncSession, subject: Subject, period: Period, *,
                  active: Period | None = None, reaches: tuple[Reach, ...] | None = None,
                  localities: LocalityIndex | None = None, breakdown: bool = True) -> Report:
    """Figures for `subject` over `period`, and for the units or communes directly below it.

    `active`: the window for active learners (default: the period; /stats passes the last
    30 days). `reaches`: the asking officer's reach (None: no officer, e.g. the CLI); every
    query is filtered by it in SQL. A province is broken down by its communes, a commune by
    the units located there, a unit by the units below it (plus its own direct members).
    """
    dialect = session.bind.dialect.name
    active = active or period
    groups: _Groups | None = None
    labels: dict[str, tuple[str, UnitRef | None, bool]] = {}
    top: list[OrgUnit] = []
    if breakdown:
        multi_commune = subject.unit is None and (
            subject.locality_code is None or subject.locality_code not in subject.communes
        )
        if multi_commune:
            communes = sorted(subject.communes)
            groups = _Groups(communes=communes)
            for code in communes:
                commune = localities.get(code) if localities is not None else None
                labels[str(code)] = (commune.name if commune else f"{code:05d}", None, False)
        else:
            top, own = await _group_units(session, subject, reaches)
            own_ref = subject.unit if own else None
            if top or own_ref is not None:
                groups = _Groups(mapping=_unit_mapping(top, own_ref))
            for unit in top:
                labels[unit.code] = (unit.name, UnitRef.of(unit), False)
            if own_ref is not None:
                labels[own_ref.code] = (own_ref.name, own_ref, True)
    events, per_events = await _event_figures(session, subject, period, active, reaches,
                                              groups, dialect)  # fmt: skip
    registered, members, per_registered = await _state_figures(
        session, subject, period, reaches, groups, dialect
    )
    total = Figures(registered=registered, members=members, **events)
    rows: list[Row] = []
    for key, (label, unit, own_row) in labels.items():
        figures = Figures(registered=per_registered.get(key, 0), **per_events.get(key, {}))
        key_text = key if unit is not None else f"{int(key):05d}"
        rows.append(Row(key_text, label, figures, unit, own_row))
    if subject.unit is not None:
        official = await official_members(session, [subject.unit], period.year)
    else:
        assert subject.locality_code is not None
        where = policy.units_filter(reaches) if reaches is not None else None
        official_units = top or await orgs.top_units(session, subject.locality_code, where)
        official = await official_members(session, official_units, period.year)
    return Report(subject, period, active, total, rows, official)


def subject_of_locality(localities: LocalityIndex, code: int) -> Subject:
    """A province (all its communes) or one commune."""
    reach = policy.locality_reach(localities, code)
    return Subject(locality_code=code, communes=reach.communes)


def subject_of_unit(unit: UnitRef) -> Subject:
    return Subject(unit=unit)


def subject_of(unit: UnitRef, localities: LocalityIndex) -> Subject:
    """A unit's figures: its subtree; for the Front (MTTQ), its whole locality, since every
    organisation there works under it."""
    if unit.type == policy.MTTQ:
        return subject_of_locality(localities, unit.locality_code)
    return subject_of_unit(unit)


def default_subjects(grant: policy.Grant, localities: LocalityIndex) -> list[Subject]:
    """What /stats shows an officer without arguments: each province in scope, their
    commune, or their unit (an MTTQ officer: their unit's whole locality)."""
    if grant.role == policy.PROVINCE_ADMIN:
        return [subject_of_locality(localities, p) for p in localities.province_codes]
    if grant.role == policy.LOCALITY_ADMIN and grant.locality_code is not None:
        return [subject_of_locality(localities, grant.locality_code)]
    assert grant.unit is not None
    return [subject_of(grant.unit, localities)]


__all__ = [
    "PERIOD_HELP", "Figures", "Period", "PeriodError", "Report", "Row", "compute",
    "days_period", "default_subjects", "is_period", "last_days", "official_members",
    "parse_period", "subject_of", "subject_of_locality", "subject_of_unit", "year_period",
]  # fmt: skip
