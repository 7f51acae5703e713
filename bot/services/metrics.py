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
from collections.abc import Sequence
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
    or_,
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


# ---------------------------------------------------------------------------- indicators
#
# The criteria reports and the dashboard measure groups: a unit and its subtree ("u:CODE"),
# a commune ("c:14215") or a province ("p:37"). Definitions (DESIGN.md), for a period P:
#
# - active_learners, people_reached, people_engaged: distinct people with an event of the
#   kind in P (active: lesson_started / quiz_answered / lesson_completed; reached:
#   campaign_delivered; engaged: campaign_engaged).
# - registered, members, members_trained, learners_registered: the state at P's end (each
#   person's latest event before it, as in /stats): registered; members (a unit's
#   registered people; a locality's registered people with any membership); members with a
#   certificate_issued event before P's end (a certificate is issued the moment every lesson
#   quiz of a module is first passed, so it marks a completed module and survives erasure);
#   registered people whose first consent lies in P.
# - lessons_completed, quizzes_passed, quizzes_finished: distinct (person, lesson) pairs in P;
#   quiz_pass_rate = passed / finished (a pair passed if its best attempt in P passed).
# - certificates: certificate_issued events in P.
# - campaigns_run: distinct campaigns (a weekly campaign's runs count as one) with a delivery
#   in P. Campaign events count for the campaign's unit (detail "unit") and its locality, not
#   for the person's snapshot.
# - activities_held, attendance: activities of the group held in P; their check-ins
#   (distinct people with an activity_attended event naming the activity) plus head counts.
# - share_trained: members_trained / (the official member count for P's last year where
#   officers entered one, else members).
# - communes_covered: the share of the communes of the group's area (a unit: its locality)
#   where at least `min_active` people of the group were active in P.
#
# Learning events count for the units they carry (and every unit above) and for their
# commune and its province. Whole-year periods from 2020 to 2082 are answered from the
# incrementally refreshed rollups (bot/services/rollup.py, the same definitions folded per
# person); any other period straight from the events. Tests check both agree.

COVERED_MIN_ACTIVE = 5
CAMPAIGN_KINDS = ("campaign_delivered", "campaign_engaged")
LEARN_KINDS = (*ACTIVE_KINDS, "quiz_finished", "certificate_issued")
STATE_KINDS = ("registered", "certificate_issued")


@dataclass(frozen=True, slots=True)
class Indicator:
    id: str
    label: str  # msgid
    percent: bool = False


INDICATORS: dict[str, Indicator] = {i.id: i for i in (
    Indicator("campaigns_run", N_("Campaigns run")),
    Indicator("people_reached", N_("People reached by campaigns")),
    Indicator("people_engaged", N_("People who then started learning")),
    Indicator("activities_held", N_("In-person activities held")),
    Indicator("attendance", N_("Attendance at in-person activities")),
    Indicator("registered", N_("People registered")),
    Indicator("learners_registered", N_("Learners registered in the period")),
    Indicator("members", N_("Members registered")),
    Indicator("members_trained", N_("Members who completed at least one module")),
    Indicator("share_trained", N_("Share of members trained"), percent=True),
    Indicator("active_learners", N_("Active learners")),
    Indicator("lessons_completed", N_("Lessons completed")),
    Indicator("quizzes_passed", N_("Quizzes passed")),
    Indicator("quiz_pass_rate", N_("Quiz pass rate"), percent=True),
    Indicator("certificates", N_("Certificates issued")),
    Indicator("communes_covered", N_("Share of communes with active learners"), percent=True),
)}  # fmt: skip
DIMENSIONS = ("gender", "age_band")


@dataclass(frozen=True, slots=True)
class Group:
    """What a row of a report or dashboard measures: "u:CODE" (a unit and its subtree),
    "c:14215" (a commune) or "p:37" (a province); `area` is the communes whose coverage
    counts (a unit's: those of its locality)."""

    key: str
    unit: UnitRef | None
    locality_code: int
    area: frozenset[int]

    @property
    def is_unit(self) -> bool:
        return self.unit is not None


def area_of(localities: LocalityIndex, code: int) -> frozenset[int]:
    return policy.locality_reach(localities, code).communes


def unit_group(unit: UnitRef, localities: LocalityIndex) -> Group:
    area = area_of(localities, unit.locality_code)
    return Group(f"u:{unit.code}", unit, unit.locality_code, area)


def locality_group(localities: LocalityIndex, code: int) -> Group:
    prefix = "p" if code in localities.province_codes else "c"
    return Group(f"{prefix}:{code}", None, code, area_of(localities, code))


def group_of(subject: Subject, localities: LocalityIndex) -> Group:
    """The group of a /stats subject (an MTTQ unit's subject is already its locality)."""
    if subject.unit is not None:
        return unit_group(subject.unit, localities)
    assert subject.locality_code is not None
    return locality_group(localities, subject.locality_code)


@dataclass(slots=True)
class Values:
    """Indicator values of one group (None: undefined, e.g. a rate over nothing), and what
    the rates were computed from."""

    values: dict[str, float | int | None]
    members_base: int = 0  # the denominator of share_trained
    official: bool = False  # members_base is an official count
    target_trained: int | None = None  # the unit's own target for members trained


def year_range(period: Period) -> tuple[int, int] | None:
    """(first, last) year if the period is whole calendar years the rollups cover."""
    from bot.services import rollup

    first, last = period.first_day, period.last_day
    whole = (first.month, first.day, last.month, last.day) == (1, 1, 12, 31)
    if whole and rollup.FIRST_YEAR <= first.year <= last.year <= rollup.LAST_YEAR:
        return first.year, last.year
    return None


def _unit_map(groups: Sequence[Group]) -> Any:
    """(code, grp): every unit code in the subtree of each unit group (rollup_unit_groups,
    kept up to date by the rollup refresh: call `rollup.refresh` first)."""
    from bot.db.models import RollupUnitGroup as T

    keys = sorted({g.key for g in groups if g.unit is not None})
    return select(T.code, T.grp).where(T.grp.in_(keys)).subquery("unit_map")


def _locality_map(groups: Sequence[Group]) -> Any:
    """(code, grp): each commune -> its commune and province groups; a province code -> its
    province group (campaigns of a province-level unit or administrator)."""
    from bot.db.models import RollupPlaceGroup as T

    keys = sorted({g.key for g in groups if g.unit is None})
    return select(T.code, T.grp).where(T.grp.in_(keys)).subquery("loc_map")


def _attributed(rel: Any, unit_col: Any, loc_col: Any, cols: list[Any], umap: Any,
                lmap: Any, dialect: str, *, unit_flag: bool = False) -> Any:  # fmt: skip
    """Rows of `rel`, once per group they count for: through the units they carry (every
    code, mapped up the tree) and through their locality."""
    ex = policy.explode(unit_col, dialect)
    flag = [literal(1).label("via_unit")] if unit_flag else []
    by_unit = (
        select(umap.c.grp, *cols, *flag).select_from(rel).join(ex, true())
        .join(umap, umap.c.code == ex.c.value)
    )  # fmt: skip
    flag = [literal(0).label("via_unit")] if unit_flag else []
    by_loc = select(lmap.c.grp, *cols, *flag).select_from(rel).join(lmap, lmap.c.code == loc_col)
    return union_all(by_unit, by_loc).subquery("att")


async def _raw_learning(session: AsyncSession, groups: Sequence[Group], period: Period,
                        umap: Any, lmap: Any, dialect: str,
                        min_active: int) -> dict[str, dict[str, int]]:  # fmt: skip
    ev = (
        select(E.c.id, E.c.person_key, E.c.kind, E.c.lesson_id, E.c.passed, E.c.commune_code,
               E.c.unit_codes)
        .where(E.c.at >= period.start, E.c.at < period.end, E.c.kind.in_(LEARN_KINDS))
        .subquery("ev")
    )  # fmt: skip
    cols = [ev.c.id, ev.c.person_key, ev.c.kind, ev.c.lesson_id, ev.c.passed, ev.c.commune_code]
    att = _attributed(ev, ev.c.unit_codes, ev.c.commune_code, cols, umap, lmap, dialect)
    pair = att.c.person_key + literal(":", String) + func.coalesce(att.c.lesson_id, "")
    finished = att.c.kind == "quiz_finished"
    query = select(
        att.c.grp,
        func.count(distinct(case((att.c.kind.in_(ACTIVE_KINDS), att.c.person_key)))),
        func.count(distinct(case((att.c.kind == "lesson_completed", pair)))),
        func.count(distinct(case((and_(finished, att.c.passed.is_(True)), pair)))),
        func.count(distinct(case((finished, pair)))),
        func.count(distinct(case((att.c.kind == "certificate_issued", att.c.id)))),
    ).group_by(att.c.grp)
    out: dict[str, dict[str, int]] = {}
    for grp, active, lessons, passed, fin, certs in await session.execute(query):
        out[grp] = {"active_learners": active, "lessons_completed": lessons,
                    "quizzes_passed": passed, "quizzes_finished": fin, "certificates": certs}
    covered = (
        select(att.c.grp, att.c.commune_code)
        .where(att.c.kind.in_(ACTIVE_KINDS), att.c.commune_code.isnot(None))
        .group_by(att.c.grp, att.c.commune_code)
        .having(func.count(distinct(att.c.person_key)) >= min_active)
    )  # fmt: skip
    for grp, commune in await session.execute(covered):
        out.setdefault(grp, {}).setdefault("_covered", set()).add(int(commune))  # type: ignore[union-attr]
    return out


def _state_att(period: Period, umap: Any, lmap: Any, dialect: str) -> Any:
    """Registered people at the period's end (their latest event before it, as in /stats),
    once per group: person_key, member (1/0), cert (1/0), first_reg."""
    rn = func.row_number().over(partition_by=E.c.person_key,
                                order_by=(E.c.at.desc(), E.c.id.desc()))  # fmt: skip
    ranked = (
        select(E.c.person_key, E.c.kind, E.c.commune_code, E.c.unit_codes, E.c.memberships,
               rn.label("rn"))
        .where(E.c.at < period.end)
        .subquery("ranked")
    )  # fmt: skip
    stats = (
        select(E.c.person_key,
               func.min(case((E.c.kind == "registered", E.c.at))).label("first_reg"),
               func.max(case((E.c.kind == "certificate_issued", 1), else_=0)).label("cert"))
        .where(E.c.at < period.end, E.c.kind.in_(STATE_KINDS))
        .group_by(E.c.person_key)
        .subquery("pstats")
    )  # fmt: skip
    state = (
        select(ranked.c.person_key, ranked.c.commune_code, ranked.c.unit_codes,
               ranked.c.memberships, stats.c.first_reg, stats.c.cert)
        .join(stats, stats.c.person_key == ranked.c.person_key)
        .where(ranked.c.rn == 1, ranked.c.kind.not_in(ENDS_REGISTRATION),
               stats.c.first_reg.isnot(None))
        .subquery("state")
    )  # fmt: skip
    cols = [state.c.person_key, state.c.memberships, state.c.first_reg, state.c.cert]
    att = _attributed(state, state.c.unit_codes, state.c.commune_code, cols, umap, lmap,
                      dialect, unit_flag=True)  # fmt: skip
    member = or_(att.c.via_unit == 1, func.coalesce(att.c.memberships, "") != "")
    return select(att.c.grp, att.c.person_key, att.c.first_reg, att.c.cert,
                  case((member, 1), else_=0).label("member")).subquery("st")


async def _raw_state(session: AsyncSession, period: Period, umap: Any, lmap: Any,
                     dialect: str) -> dict[str, dict[str, int]]:  # fmt: skip
    """registered / members / members_trained / learners_registered at the period's end."""
    st = _state_att(period, umap, lmap, dialect)
    query = select(
        st.c.grp,
        func.count(distinct(st.c.person_key)),
        func.count(distinct(case((st.c.member == 1, st.c.person_key)))),
        func.count(distinct(case((and_(st.c.member == 1, st.c.cert == 1), st.c.person_key)))),
        func.count(distinct(case((st.c.first_reg >= period.start, st.c.person_key)))),
    ).group_by(st.c.grp)
    return {
        grp: {"registered": reg, "members": mem, "members_trained": trn,
              "learners_registered": new}
        for grp, reg, mem, trn, new in await session.execute(query)
    }  # fmt: skip


async def _raw_campaigns(session: AsyncSession, period: Period, umap: Any, lmap: Any,
                         dialect: str) -> dict[str, dict[str, int]]:  # fmt: skip
    unit = E.c.detail["unit"].as_string()
    ev = (
        select(E.c.person_key, E.c.kind, E.c.detail["campaign"].as_integer().label("campaign"),
               unit.label("unit"),
               func.coalesce(OrgUnit.locality_code,
                             E.c.detail["locality"].as_integer()).label("loc"))
        .select_from(E.outerjoin(OrgUnit.__table__, OrgUnit.code == unit))
        .where(E.c.at >= period.start, E.c.at < period.end, E.c.kind.in_(CAMPAIGN_KINDS))
        .subquery("cev")
    )  # fmt: skip
    cols = [ev.c.person_key, ev.c.kind, ev.c.campaign]
    att = _attributed(ev, ev.c.unit, ev.c.loc, cols, umap, lmap, dialect)
    delivered = att.c.kind == "campaign_delivered"
    query = select(
        att.c.grp,
        func.count(distinct(case((delivered, att.c.campaign)))),
        func.count(distinct(case((delivered, att.c.person_key)))),
        func.count(distinct(case((att.c.kind == "campaign_engaged", att.c.person_key)))),
    ).group_by(att.c.grp)
    return {
        grp: {"campaigns_run": run, "people_reached": reached, "people_engaged": engaged}
        for grp, run, reached, engaged in await session.execute(query)
    }


async def activity_figures(session: AsyncSession, groups: Sequence[Group],
                           period: Period) -> dict[str, dict[str, int]]:  # fmt: skip
    """activities_held and attendance (check-ins from activity_attended events, which survive
    erasure, plus entered head counts). Activities are few (hundreds): they are read with
    their unit, and credited to the groups of rollup_unit_groups / rollup_place_groups."""
    from bot.db.models import Activity, RollupPlaceGroup, RollupUnitGroup

    acts = list(await session.execute(
        select(Activity.id, Activity.head_count, OrgUnit.code, OrgUnit.locality_code)
        .join(OrgUnit, OrgUnit.id == Activity.unit_id)
        .where(Activity.held_on >= period.start, Activity.held_on < period.end)
    ))  # fmt: skip
    if not acts:
        return {}
    keys = sorted({g.key for g in groups})
    activity = func.coalesce(E.c.detail["activity"].as_integer(),
                             E.c.detail["activity_id"].as_integer())  # fmt: skip
    checkins = dict(list(await session.execute(
        select(activity, func.count(distinct(E.c.person_key)))
        .where(E.c.kind == "activity_attended").group_by(activity)
    )))  # fmt: skip
    wanted = set(keys)
    codes = sorted({unit for _a, _h, unit, _l in acts})
    places = sorted({loc for _a, _h, _u, loc in acts})
    of_unit: dict[str, list[str]] = {}
    for code, grp in await session.execute(select(RollupUnitGroup.code, RollupUnitGroup.grp)
                                           .where(RollupUnitGroup.code.in_(codes))):  # fmt: skip
        if grp in wanted:
            of_unit.setdefault(code, []).append(grp)
    of_place: dict[int, list[str]] = {}
    for code, grp in await session.execute(select(RollupPlaceGroup.code, RollupPlaceGroup.grp)
                                           .where(RollupPlaceGroup.code.in_(places))):  # fmt: skip
        if grp in wanted:
            of_place.setdefault(code, []).append(grp)
    out: dict[str, dict[str, int]] = {}
    for activity_id, head_count, unit, loc in acts:
        total = (head_count or 0) + int(checkins.get(activity_id, 0))
        for grp in {*of_unit.get(unit, ()), *of_place.get(loc, ())}:
            figures = out.setdefault(grp, {"activities_held": 0, "attendance": 0})
            figures["activities_held"] += 1
            figures["attendance"] += total
    return out


Officials = dict[str, tuple[int | None, int | None]]


async def _officials(session: AsyncSession, groups: Sequence[Group],
                     year: int) -> Officials:  # fmt: skip
    """Per unit group: (official member count, target for members trained) entered for
    `year`."""
    ids = {g.unit.id: g.key for g in groups if g.unit is not None}
    if not ids:
        return {}
    query = select(UnitYear.unit_id, UnitYear.member_count, UnitYear.target).where(
        UnitYear.unit_id.in_(list(ids)), UnitYear.year == year
    )
    return {ids[u]: (m, t) for u, m, t in await session.execute(query)}


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def finish_values(groups: Sequence[Group], raw: dict[str, dict[str, Any]],
                  officials: Officials) -> dict[str, Values]:  # fmt: skip
    """Counts per group -> every indicator, with the rates."""
    out: dict[str, Values] = {}
    for g in groups:
        r = raw.get(g.key, {})
        count = {k: int(r.get(k, 0) or 0) for k in (
            "campaigns_run", "people_reached", "people_engaged", "activities_held",
            "attendance", "registered", "learners_registered", "members", "members_trained",
            "active_learners", "lessons_completed", "quizzes_passed", "quizzes_finished",
            "certificates")}  # fmt: skip
        official, target = officials.get(g.key, (None, None))
        base = official if official else count["members"]
        covered = len(set(r.get("_covered", ())) & g.area)
        vals: dict[str, float | int | None] = {k: v for k, v in count.items()
                                               if k in INDICATORS}  # fmt: skip
        vals["share_trained"] = _ratio(count["members_trained"], base)
        vals["quiz_pass_rate"] = _ratio(count["quizzes_passed"], count["quizzes_finished"])
        vals["communes_covered"] = _ratio(covered, len(g.area))
        out[g.key] = Values(vals, base, bool(official), target)
    return out


async def indicator_values(session: AsyncSession, groups: Sequence[Group], period: Period, *,
                           min_active: int = COVERED_MIN_ACTIVE,
                           source: str = "auto") -> dict[str, Values]:  # fmt: skip
    """Every indicator for each group over `period`.

    `source`: "auto" reads the rollups for whole years (call `rollup.refresh` first, in its
    own transaction) and the events otherwise; "events" or "rollup" force one (tests).
    Callers pick groups inside the asker's scope (policy); a group's figures are its own.
    """
    from bot.services import rollup

    if not groups:
        return {}
    years = year_range(period)
    use_rollup = source == "rollup" or (source == "auto" and years is not None)
    if use_rollup:
        if years is None:
            raise ValueError(f"the rollups cover whole years only, not {period.label}")
        raw = await rollup.read(session, groups, years, min_active=min_active)
    else:
        dialect = session.bind.dialect.name
        umap, lmap = _unit_map(groups), _locality_map(groups)
        raw = await _raw_learning(session, groups, period, umap, lmap, dialect, min_active)
        for part in (await _raw_state(session, period, umap, lmap, dialect),
                     await _raw_campaigns(session, period, umap, lmap, dialect)):  # fmt: skip
            for grp, figures in part.items():
                raw.setdefault(grp, {}).update(figures)
    for grp, figures in (await activity_figures(session, groups, period)).items():
        raw.setdefault(grp, {}).update(figures)
    officials = await _officials(session, groups, period.year)
    return finish_values(groups, raw, officials)


async def breakdown(session: AsyncSession, group: Group, period: Period, dimension: str, *,
                    source: str = "auto") -> dict[str, dict[str, int]]:  # fmt: skip
    """People of one group by gender or age band (as they gave it most recently; "" = not
    given): registered at the period's end, active learners and members trained."""
    from bot.services import rollup

    if dimension not in DIMENSIONS:
        raise ValueError(dimension)
    years = year_range(period)
    if source == "rollup" or (source == "auto" and years is not None):
        if years is None:
            raise ValueError(f"the rollups cover whole years only, not {period.label}")
        return await rollup.read_breakdown(session, group, years, dimension)
    dialect = session.bind.dialect.name
    rn = func.row_number().over(partition_by=E.c.person_key,
                                order_by=(E.c.at.desc(), E.c.id.desc()))  # fmt: skip
    latest = select(E.c.person_key, E.c.gender, E.c.age_band, rn.label("rn")).subquery("lt")
    dim = (
        select(latest.c.person_key, func.coalesce(latest.c[dimension], "").label("dim"))
        .where(latest.c.rn == 1).subquery("dim")
    )  # fmt: skip
    umap, lmap = _unit_map([group]), _locality_map([group])
    out: dict[str, dict[str, int]] = {}
    ev = (
        select(E.c.person_key, E.c.commune_code, E.c.unit_codes)
        .where(E.c.at >= period.start, E.c.at < period.end, E.c.kind.in_(ACTIVE_KINDS))
        .subquery("ev")
    )  # fmt: skip
    att = _attributed(ev, ev.c.unit_codes, ev.c.commune_code, [ev.c.person_key], umap, lmap,
                      dialect)  # fmt: skip
    query = (
        select(dim.c.dim, func.count(distinct(att.c.person_key)))
        .join(dim, dim.c.person_key == att.c.person_key)
        .where(att.c.grp == group.key).group_by(dim.c.dim)
    )  # fmt: skip
    for value, n in await session.execute(query):
        out.setdefault(value, {})["active_learners"] = int(n)
    state = _state_att(period, umap, lmap, dialect)
    query = (
        select(dim.c.dim, func.count(distinct(state.c.person_key)),
               func.count(distinct(case((and_(state.c.member == 1, state.c.cert == 1),
                                         state.c.person_key)))))
        .join(dim, dim.c.person_key == state.c.person_key)
        .where(state.c.grp == group.key).group_by(dim.c.dim)
    )  # fmt: skip
    for value, reg, trained in await session.execute(query):
        out.setdefault(value, {}).update(registered=int(reg), members_trained=int(trained))
    return out


__all__ = [
    "INDICATORS", "PERIOD_HELP", "Figures", "Group", "Indicator", "Period", "PeriodError",
    "Report", "Row", "Values", "breakdown", "compute", "days_period", "default_subjects",
    "group_of", "indicator_values", "is_period", "last_days", "locality_group",
    "official_members", "parse_period", "subject_of", "subject_of_locality", "subject_of_unit",
    "unit_group", "year_period", "year_range",
]  # fmt: skip
