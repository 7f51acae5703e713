"""Criteria reports: every unit's indicators in a scope, scored against a criteria set and
ranked among its peers, plus the communes and the scope's totals, as one plain JSON-ready
dict that every export format renders (bot/reports/) and a frozen report stores.

- Scope: the provinces in scope, a province or commune (`locality`), or a unit and its
  subtree (an MTTQ unit: everything in its locality, as in /stats). With an officer's
  `reaches`, only units and communes inside them are listed (the caller checks the scope
  itself with `policy.may_view_*`).
- Scores: per indicator, result / target (at most 100%); a criterion's score is the weighted
  mean of its indicators, the total the weighted mean of the criteria, on a 100 scale.
  Targets are yearly per unit level; over several years the targets of flows (campaigns,
  people reached, ...) are multiplied by the years; figures at the period's end and rates are
  not. A unit's own target for members trained (`org set-year --target`) replaces the set's.
- Peers: units of the same level (province, commune, branch) and, below the province, of the
  same organisation type, among the units of this report. The report says scores and ranks
  are evidence for the emulation council, not a verdict.
- Freezing stores the dict (figures and the criteria set) with a checksum, who and when, so
  the report reads the same after later corrections or mergers.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import FrozenReport, OrgUnit
from bot.services import audit, metrics, policy
from bot.services.metrics import Group, Period
from bot.services.policy import Reach, UnitRef
from content import criteria as criteria_mod
from content.criteria import CriteriaSet

if TYPE_CHECKING:
    from bot.localities import LocalityIndex

FORMAT_VERSION = 1
PROVINCE, COMMUNE, BRANCH = "province", "commune", "branch"
# Shown besides the criteria: what the dashboard's overview and every report also list.
EXTRA = ("registered", "members", "active_learners", "lessons_completed", "quizzes_passed")


class ScopeError(ValueError):
    """An unknown unit or locality (English; the CLI prints it)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What a report covers: its title subject, its units and communes."""

    kind: str  # "all", "province", "commune", "unit"
    code: str
    name: str
    subjects: tuple[Group, ...]  # the totals: one per province, or the commune / unit


def _level(unit: UnitRef, localities_of: dict[int, int], provinces: frozenset[int]) -> str:
    """province, commune, or branch (a unit below another unit of the same commune)."""
    if unit.locality_code in provinces:
        return PROVINCE
    parent = localities_of.get(unit.parent_id) if unit.parent_id is not None else None
    return BRANCH if parent == unit.locality_code else COMMUNE


def years_factor(period: Period) -> float:
    """How many yearly targets the period holds: whole years counted, else days / 365."""
    found = metrics.year_range(period)
    if found is not None:
        return float(found[1] - found[0] + 1)
    return ((period.last_day - period.first_day).days + 1) / 365.0


Scores = tuple[dict[str, float], float, dict[str, Any]]
# Per criterion: (id, weight, sum of its indicators' weights, per indicator: (metric, target
# over the period, the target rounded as the report shows it, weight, is a percentage)).
Plan = tuple[tuple[str, float, float, tuple[tuple[str, float, float, float, bool], ...]], ...]


def plan(cset: CriteriaSet, level: str, factor: float) -> Plan:
    """What `score` needs of a criteria set for the units of one level, worked out once."""
    out = []
    for criterion in cset.criteria:
        specs = []
        for spec in criterion.indicators:
            target = spec.targets.get(level, 0.0)
            if spec.metric not in criteria_mod.NOT_SCALED:
                target *= factor
            specs.append((spec.metric, target, round(target, 2), spec.weight,
                          metrics.INDICATORS[spec.metric].percent))  # fmt: skip
        weights = sum(i.weight for i in criterion.indicators) or 1.0
        out.append((criterion.id, criterion.weight, weights, tuple(specs)))
    return tuple(out)


def score(values: dict[str, Any], level: str, cset: CriteriaSet, factor: float,
          target_trained: int | None, *, planned: Plan | None = None) -> Scores:  # fmt: skip
    """(score per criterion, total score, per indicator: target and achievement). `planned`:
    `plan(cset, level, factor)`, when scoring many units."""
    per_criterion: dict[str, float] = {}
    details: dict[str, Any] = {}
    total_weight = sum(c.weight for c in cset.criteria) or 1.0
    total = 0.0
    for criterion_id, weight, weights, specs in planned or plan(cset, level, factor):
        points = 0.0
        for metric, target, shown, spec_weight, percent in specs:
            if metric == "members_trained" and target_trained:
                target = float(target_trained)  # a figure at the period's end: not scaled
                shown = round(target, 2)
            value = values.get(metric)
            if value is None or target <= 0:
                achieved = 0.0
            else:
                achieved = (value * 100 if percent else value) / target
                if not achieved < 1.0:  # at most 100%
                    achieved = 1.0
            details[metric] = {"target": shown, "achieved": achieved if achieved == 0.0 or
                               achieved == 1.0 else round(achieved, 4)}  # fmt: skip
            points += achieved * spec_weight
        per_criterion[criterion_id] = round(100 * points / weights, 2)
        total += per_criterion[criterion_id] * weight
    return per_criterion, round(total / total_weight, 2), details


def _rank(rows: list[dict[str, Any]]) -> None:
    """Competition ranking ("1, 2, 2, 4") by total score within each peer group."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["peer_group"]].append(row)
    for members in groups.values():
        members.sort(key=lambda r: -r["total"])
        for i, row in enumerate(members):
            same = i > 0 and members[i - 1]["total"] == row["total"]
            row["rank"] = members[i - 1]["rank"] if same else i + 1
            row["peers"] = len(members)


async def resolve_scope(session: AsyncSession, localities: LocalityIndex, *,
                        unit: str | None = None,
                        locality: int | None = None) -> Scope:  # fmt: skip
    if unit is not None and locality is not None:
        raise ScopeError("give --unit or --locality, not both")
    if unit is not None:
        found = await session.scalar(select(OrgUnit).where(OrgUnit.code == unit))
        if found is None:
            raise ScopeError(f"unknown unit {unit[:60]!r}")
        ref = UnitRef.of(found)
        subject = metrics.subject_of(ref, localities)
        return Scope("unit", ref.code, ref.name, (metrics.group_of(subject, localities),))
    if locality is not None:
        if locality in localities.province_codes:
            name = dict(localities.provinces())[locality]
            return Scope("province", str(locality), name,
                         (metrics.locality_group(localities, locality),))  # fmt: skip
        commune = localities.get(locality)
        if commune is None:
            raise ScopeError(f"{locality} is not a province or commune in scope")
        return Scope("commune", f"{locality:05d}", commune.name,
                     (metrics.locality_group(localities, locality),))  # fmt: skip
    names = [name for _code, name in localities.provinces()]
    groups = tuple(metrics.locality_group(localities, p) for p in localities.province_codes)
    return Scope("all", ",".join(str(p) for p in localities.province_codes), ", ".join(names),
                 groups)  # fmt: skip


async def _units_in(session: AsyncSession, scope: Scope, localities: LocalityIndex,
                    reaches: tuple[Reach, ...] | None) -> list[UnitRef]:  # fmt: skip
    # The columns of a UnitRef, not ORM objects: a province has a thousand units.
    query = select(OrgUnit.id, OrgUnit.code, OrgUnit.type, OrgUnit.name, OrgUnit.path,
                   OrgUnit.locality_code, OrgUnit.province_code,
                   OrgUnit.parent_id).order_by(OrgUnit.path)  # fmt: skip
    subject = scope.subjects[0]
    if scope.kind == "unit" and subject.unit is not None:
        query = query.where(OrgUnit.path.startswith(subject.unit.path))
    elif scope.kind == "unit" or scope.kind == "commune":
        code = subject.locality_code
        query = query.where(or_(OrgUnit.locality_code == code, OrgUnit.province_code == code)
                            if code in localities.province_codes else
                            OrgUnit.locality_code == code)  # fmt: skip
    elif scope.kind == "province":
        query = query.where(OrgUnit.province_code == subject.locality_code)
    else:
        query = query.where(OrgUnit.province_code.in_(localities.province_codes))
    if reaches is not None:
        query = query.where(policy.units_filter(reaches))
    return [UnitRef(*row) for row in await session.execute(query)]


def _communes_in(scope: Scope, localities: LocalityIndex,
                 reaches: tuple[Reach, ...] | None) -> list[int]:  # fmt: skip
    area: set[int] = set()
    for group in scope.subjects:
        area |= group.area
    if reaches is not None:
        area = {c for c in area if any(r.has_locality(c) for r in reaches)}
    order = {c.code: i for i, c in enumerate(localities.communes())}
    return sorted(area, key=lambda c: order.get(c, len(order)))


def _jsonable(v: metrics.Values) -> dict[str, Any]:
    return {"values": dict(v.values), "members_base": v.members_base, "official": v.official,
            "target_trained": v.target_trained}  # fmt: skip


async def build(session: AsyncSession, localities: LocalityIndex, period: Period,
                cset: CriteriaSet, *, unit: str | None = None, locality: int | None = None,
                reaches: tuple[Reach, ...] | None = None, now: datetime,
                by: str) -> dict[str, Any]:  # fmt: skip
    """The report as a JSON-ready dict. Refresh the rollups first (`rollup.refresh`) for
    whole-year periods to be read from them."""
    scope = await resolve_scope(session, localities, unit=unit, locality=locality)
    units = await _units_in(session, scope, localities, reaches)
    parents = {i: loc for i, loc in await session.execute(
        select(OrgUnit.id, OrgUnit.locality_code))}  # fmt: skip
    provinces = frozenset(localities.province_codes)
    unit_groups = {u.id: metrics.group_of(metrics.subject_of(u, localities), localities)
                   for u in units}  # fmt: skip
    communes = _communes_in(scope, localities, reaches)
    commune_groups = [metrics.locality_group(localities, c) for c in communes]
    wanted: dict[str, Group] = {g.key: g for g in (*scope.subjects, *unit_groups.values(),
                                                   *commune_groups)}  # fmt: skip
    values = await metrics.indicator_values(session, list(wanted.values()), period,
                                            min_active=cset.min_active)  # fmt: skip
    factor = years_factor(period)
    plans = {level: plan(cset, level, factor) for level in (PROVINCE, COMMUNE, BRANCH)}
    rows: list[dict[str, Any]] = []
    for u in units:
        level = _level(u, parents, provinces)
        v = values[unit_groups[u.id].key]
        per_criterion, total, details = score(v.values, level, cset, factor, v.target_trained,
                                              planned=plans[level])  # fmt: skip
        rows.append({
            "code": u.code, "name": u.name, "type": u.type, "level": level,
            "locality": u.locality_code, "group": unit_groups[u.id].key, **_jsonable(v),
            "scores": per_criterion, "total": total, "details": details,
            "peer_group": level if level == PROVINCE else f"{level}:{u.type}",
        })  # fmt: skip
    _rank(rows)
    names = {c.code: c.name for c in localities.communes()}
    names.update(localities.provinces())
    places = {str(code): names.get(code, f"{code:05d}")
              for code in sorted({u.locality_code for u in units} | set(communes))}
    commune_rows = [{"code": c, "name": names.get(c, f"{c:05d}"), **_jsonable(values[g.key])}
                    for c, g in zip(communes, commune_groups, strict=True)]  # fmt: skip
    breakdown = {}
    if len(scope.subjects) == 1:
        for dim in metrics.DIMENSIONS:
            breakdown[dim] = await metrics.breakdown(session, scope.subjects[0], period, dim)
    return {
        "format": FORMAT_VERSION,
        "period": {"label": period.label, "first": period.first_day.isoformat(),
                   "last": period.last_day.isoformat(), "years": factor},
        "scope": {"kind": scope.kind, "code": scope.code, "name": scope.name},
        "criteria": cset.to_json(),
        "generated_at": now.isoformat(), "generated_by": by,
        "source": "rollup" if metrics.year_range(period) is not None else "events",
        "totals": [{"key": g.key, **_jsonable(values[g.key])} for g in scope.subjects],
        "units": rows, "communes": commune_rows, "places": places, "breakdown": breakdown,
        "frozen": None,
    }  # fmt: skip


def checksum(data: dict[str, Any]) -> str:
    canonical = json.dumps({k: v for k, v in data.items() if k != "frozen"}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()


async def freeze(session: AsyncSession, data: dict[str, Any], *, by: str, now: datetime,
                 title: str | None = None) -> FrozenReport:  # fmt: skip
    """Store a report as submitted; audited."""
    row = FrozenReport(period=data["period"]["label"], scope=data["scope"]["code"][:64],
                       title=(title or data["scope"]["name"])[:300],
                       criteria_version=data["criteria"]["version"][:64], data=data,
                       checksum=checksum(data), frozen_at=now, frozen_by=by[:96])  # fmt: skip
    session.add(row)
    await session.flush()
    audit.write(session, by, "report_frozen", f"report:{row.id}", at=now,
                period=row.period, scope=row.scope, checksum=row.checksum)  # fmt: skip
    return row


def frozen_data(row: FrozenReport) -> dict[str, Any]:
    """A frozen report's dict, saying when and by whom it was frozen; refuses a stored report
    whose figures no longer match their checksum."""
    data = dict(row.data)
    if checksum(data) != row.checksum:
        raise ValueError(f"frozen report {row.id} does not match its checksum")
    data["frozen"] = {"id": row.id, "at": row.frozen_at.isoformat(), "by": row.frozen_by,
                      "title": row.title, "checksum": row.checksum}  # fmt: skip
    return data


async def list_frozen(session: AsyncSession, scope: str | None = None) -> list[FrozenReport]:
    query = select(FrozenReport).order_by(FrozenReport.frozen_at.desc(), FrozenReport.id.desc())
    if scope is not None:
        query = query.where(FrozenReport.scope == scope)
    return list(await session.scalars(query))
