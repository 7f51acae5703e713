"""Who may see and do what: the one module that answers every officer question.

Roles:
- ``province_admin``: everything in the provinces in scope (``HOCVUSO_PROVINCES``).
- ``locality_admin``: one commune: every citizen living there and every unit located there.
- ``org_admin``: one unit and every unit below it. The socio-political organisations work
  under the Fatherland Front, so an org_admin of an MTTQ unit reaches every organisation's
  units (and every citizen) in that unit's locality subtree.

Names of individual members: only the org_admin of the member's unit or of a unit above it
in the same organisation, only for people who consented; callers write every view to the
audit log. Aggregates carry no names.

Each grant becomes a `Reach` (whole provinces, whole communes, a unit subtree). The same
reach answers two kinds of question: `may_*` for one named unit or locality (a command
argument, a deep link, a button), and SQL filters (`units_filter`, `persons_filter`,
`rows_filter`, `events_filter`, `memberships_filter`, `names_filter`) that narrow every query
an officer causes, so rows outside the scope are never loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, exists, false, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from bot.db.models import Identity, Membership, Officer, OrgUnit, ParticipationEvent, Person
from bot.i18n import N_

if TYPE_CHECKING:
    from bot.localities import LocalityIndex

PROVINCE_ADMIN, LOCALITY_ADMIN, ORG_ADMIN = "province_admin", "locality_admin", "org_admin"
ROLES = (PROVINCE_ADMIN, LOCALITY_ADMIN, ORG_ADMIN)
RANK = {ORG_ADMIN: 1, LOCALITY_ADMIN: 2, PROVINCE_ADMIN: 3}
ROLE_LABELS = {
    PROVINCE_ADMIN: N_("province administrator"),
    LOCALITY_ADMIN: N_("commune administrator"),
    ORG_ADMIN: N_("unit administrator"),
}
MTTQ = "mttq"


class Refusal(StrEnum):
    """Why something was refused; written to the audit log, mapped to a message by callers."""

    NOT_OFFICER = "not_officer"
    REVOKED = "revoked"
    OUT_OF_SCOPE = "out_of_scope"
    ABOVE_ROLE = "above_role"
    INVITE_ONLY = "invite_only"
    BAD_TARGET = "bad_target"
    NO_NAMES = "no_names"


@dataclass(frozen=True, slots=True)
class UnitRef:
    """The facts about a unit that scope decisions need (detached from the session)."""

    id: int
    code: str
    type: str
    name: str
    path: str
    locality_code: int
    province_code: int
    parent_id: int | None = None

    @classmethod
    def of(cls, unit: OrgUnit) -> UnitRef:
        return cls(unit.id, unit.code, unit.type, unit.name, unit.path, unit.locality_code,
                   unit.province_code, unit.parent_id)  # fmt: skip

    def contains(self, other: UnitRef) -> bool:
        """Is `other` this unit or below it (same organisation's tree)?"""
        return other.path.startswith(self.path)


@dataclass(frozen=True, slots=True)
class Reach:
    """The rows one grant reaches."""

    provinces: frozenset[int] = frozenset()  # whole provinces: every unit and citizen
    communes: frozenset[int] = frozenset()  # whole communes (including those of `provinces`)
    unit_path: str | None = None  # a unit subtree

    def has_unit(self, unit: UnitRef) -> bool:
        return (
            unit.province_code in self.provinces
            or unit.locality_code in self.communes
            or (self.unit_path is not None and unit.path.startswith(self.unit_path))
        )

    def has_locality(self, code: int) -> bool:
        return code in self.provinces or code in self.communes


@dataclass(frozen=True, slots=True)
class Grant:
    """One active officer role."""

    officer_id: int | None
    role: str
    unit: UnitRef | None
    locality_code: int | None
    reach: Reach


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone asking: "channel:id" and their active grants."""

    who: str
    grants: tuple[Grant, ...] = ()
    revoked: bool = False  # had roles, all revoked since

    @property
    def is_officer(self) -> bool:
        return bool(self.grants)

    @property
    def reaches(self) -> tuple[Reach, ...]:
        return tuple(g.reach for g in self.grants)

    @property
    def rank(self) -> int:
        return max((RANK[g.role] for g in self.grants), default=0)


@dataclass(frozen=True, slots=True)
class Subject:
    """What figures are about: a unit and its subtree, or a locality (a province or a
    commune) and everything in it."""

    unit: UnitRef | None = None
    locality_code: int | None = None
    communes: frozenset[int] = frozenset()

    @property
    def key(self) -> str:
        return self.unit.code if self.unit is not None else f"{self.locality_code:05d}"


# ---------------------------------------------------------------------------- building grants


def communes_of(localities: LocalityIndex, province: int) -> frozenset[int]:
    return frozenset(c.code for c in localities.communes() if c.province_code == province)


def province_of(localities: LocalityIndex, code: int) -> int | None:
    """The in-scope province a province or commune code belongs to, or None."""
    if code in localities.province_codes:
        return code
    commune = localities.get(code)
    return commune.province_code if commune is not None else None


def locality_reach(localities: LocalityIndex, code: int) -> Reach:
    """Everything in a province or commune."""
    if code in localities.province_codes:
        return Reach(provinces=frozenset({code}), communes=communes_of(localities, code))
    return Reach(communes=frozenset({code}))


def reach_of(role: str, unit: UnitRef | None, locality: int | None,
             localities: LocalityIndex) -> Reach:  # fmt: skip
    if role == PROVINCE_ADMIN:
        provinces = frozenset(localities.province_codes)
        return Reach(provinces, frozenset(c.code for c in localities.communes()))
    if role == LOCALITY_ADMIN and locality is not None:
        return Reach(communes=frozenset({locality}))
    if role == ORG_ADMIN and unit is not None:
        if unit.type == MTTQ:
            base = locality_reach(localities, unit.locality_code)
            return Reach(base.provinces, base.communes, unit.path)
        return Reach(unit_path=unit.path)
    return Reach()


def grant_of(officer: Officer, localities: LocalityIndex) -> Grant:
    unit = UnitRef.of(officer.unit) if officer.unit is not None else None
    reach = reach_of(officer.role, unit, officer.locality_code, localities)
    return Grant(officer.id, officer.role, unit, officer.locality_code, reach)


async def load_actor(session: AsyncSession, channel: str, external_id: str,
                     localities: LocalityIndex) -> Actor:  # fmt: skip
    """The asker's active grants (one indexed query; units come with them)."""
    officers = list(await session.scalars(
        select(Officer).where(Officer.channel == channel, Officer.external_id == external_id)
        .order_by(Officer.id)
    ))  # fmt: skip
    active = [o for o in officers if o.revoked_at is None]
    grants = tuple(grant_of(o, localities) for o in active)
    return Actor(f"{channel}:{external_id}", grants, revoked=bool(officers) and not active)


def check_role_target(role: str, unit: UnitRef | None, locality: int | None,
                      localities: LocalityIndex) -> str | None:  # fmt: skip
    """What is wrong with this role/target pair (English, for the CLI), or None."""
    if role not in ROLES:
        return f"unknown role {role!r} (use {', '.join(ROLES)})"
    if role == PROVINCE_ADMIN and (unit is not None or locality is not None):
        return "province_admin covers every province in scope: give no --unit or --locality"
    if role == ORG_ADMIN and (unit is None or locality is not None):
        return "org_admin needs --unit CODE (and no --locality)"
    if role == LOCALITY_ADMIN:
        if unit is not None or locality is None:
            return "locality_admin needs --locality COMMUNE_CODE (and no --unit)"
        if localities.get(locality) is None:
            return f"{locality} is not a commune of the provinces in scope"
    return None


# ---------------------------------------------------------------------------- one target


def may_view_unit(actor: Actor, unit: UnitRef) -> bool:
    return any(g.reach.has_unit(unit) for g in actor.grants)


def may_view_locality(actor: Actor, code: int) -> bool:
    return any(g.reach.has_locality(code) for g in actor.grants)


def may_see_names(actor: Actor, unit: UnitRef) -> bool:
    """Org admins of this unit or of a unit above it (the same organisation's tree)."""
    return any(
        g.role == ORG_ADMIN and g.unit is not None and g.unit.contains(unit) for g in actor.grants
    )


def may_manage_members(actor: Actor, unit: UnitRef) -> bool:
    """Confirming or removing a membership needs seeing who it is: the same rule as names."""
    return may_see_names(actor, unit)


def may_grant(actor: Actor, role: str, *, unit: UnitRef | None = None,
              locality: int | None = None, direct: bool = False) -> Refusal | None:  # fmt: skip
    """May `actor` make someone `role` for this unit/locality? None means yes.

    Province admins grant any role inside their provinces, directly or by invite. Others only
    invite (one-time link), never for a role above their own: a locality admin invites unit
    administrators for units in their commune; an org admin for units below their own (an
    MTTQ org admin: any other unit in their locality subtree, except the MTTQ units above).
    """
    if not actor.grants:
        return Refusal.REVOKED if actor.revoked else Refusal.NOT_OFFICER
    if role not in RANK:
        return Refusal.BAD_TARGET
    if RANK[role] > actor.rank:
        return Refusal.ABOVE_ROLE
    invite_ok = False
    for g in actor.grants:
        if g.role == PROVINCE_ADMIN:
            if role == PROVINCE_ADMIN:
                return None
            if unit is not None and g.reach.has_unit(unit):
                return None
            if locality is not None and g.reach.has_locality(locality):
                return None
        elif role == ORG_ADMIN and unit is not None:
            if g.role == LOCALITY_ADMIN and unit.locality_code == g.locality_code:
                invite_ok = True
            elif g.role == ORG_ADMIN and g.unit is not None and unit.id != g.unit.id:
                below = g.unit.contains(unit)
                front = (
                    g.unit.type == MTTQ and g.reach.has_unit(unit) and not unit.contains(g.unit)
                )
                invite_ok = invite_ok or below or front
    if invite_ok:
        return Refusal.INVITE_ONLY if direct else None
    return Refusal.OUT_OF_SCOPE


# ---------------------------------------------------------------------------- SQL filters


def explode(column: Any, dialect: str) -> Any:
    """A comma-separated list column as a table-valued function with one column `value`,
    correlated to the row it comes from (unit codes and types never contain quotes)."""
    if dialect == "postgresql":
        return (
            func.unnest(func.string_to_array(column, ","))
            .table_valued("value", joins_implicitly=True)
            .render_derived()
        )
    as_json = literal('["', String) + func.replace(column, ",", '","', type_=String) + '"]'
    return func.json_each(as_json).table_valued("value", joins_implicitly=True)


def _all(reaches: Iterable[Reach]) -> tuple[list[int], list[int], list[str]]:
    provinces: set[int] = set()
    communes: set[int] = set()
    paths: set[str] = set()
    for r in reaches:
        provinces |= r.provinces
        communes |= r.communes
        if r.unit_path is not None:
            paths.add(r.unit_path)
    return sorted(provinces), sorted(communes), sorted(paths)


def units_filter(reaches: Sequence[Reach], unit: type[OrgUnit] | Any = OrgUnit) -> Any:
    """`org_units` rows the reaches cover (pass an alias as `unit` to filter an alias)."""
    provinces, _communes, paths = _all(reaches)
    # A reach with whole provinces covers their communes through province_code already.
    communes = sorted({c for r in reaches if not r.provinces for c in r.communes})
    parts: list[ColumnElement[bool]] = []
    if provinces:
        parts.append(unit.province_code.in_(provinces))
    if communes:
        parts.append(unit.locality_code.in_(communes))
    parts.extend(unit.path.startswith(p) for p in paths)
    return or_(*parts) if parts else false()


def unit_codes(reaches: Sequence[Reach]) -> Any:
    """SELECT code FROM org_units WHERE <in reach>: for IN (...) over carried codes."""
    return select(OrgUnit.code).where(units_filter(reaches))


def rows_filter(reaches: Sequence[Reach], commune_col: Any, units_col: Any,
                dialect: str) -> Any:  # fmt: skip
    """For any relation carrying a commune and comma-separated unit codes (participation
    events, or a snapshot of them): the rows of a reached commune or carrying a reached unit."""
    _provinces, communes, _paths = _all(reaches)
    if not reaches:
        return false()
    parts: list[Any] = []
    if communes:
        parts.append(commune_col.in_(communes))
    ex = explode(units_col, dialect)
    parts.append(exists(select(ex.c.value).where(ex.c.value.in_(unit_codes(reaches)))))
    return or_(*parts)


def events_filter(reaches: Sequence[Reach], dialect: str) -> Any:
    return rows_filter(
        reaches, ParticipationEvent.commune_code, ParticipationEvent.unit_codes, dialect
    )


def persons_filter(reaches: Sequence[Reach]) -> Any:
    """People living in a reached commune, or members of a reached unit."""
    _provinces, communes, _paths = _all(reaches)
    if not reaches:
        return false()
    members = select(Membership.person_id).where(Membership.unit_code.in_(unit_codes(reaches)))
    parts: list[Any] = [Person.id.in_(members)]
    if communes:
        parts.append(Person.commune_code.in_(communes))
    return or_(*parts)


def memberships_filter(reaches: Sequence[Reach]) -> Any:
    """Memberships of a reached unit, or of people living in a reached commune."""
    _provinces, communes, _paths = _all(reaches)
    if not reaches:
        return false()
    parts: list[Any] = [Membership.unit_code.in_(unit_codes(reaches))]
    if communes:
        residents = select(Person.id).where(Person.commune_code.in_(communes))
        parts.append(Membership.person_id.in_(residents))
    return or_(*parts)


def names_filter(actor: Actor) -> Any:
    """Memberships whose member's name `actor` may see (see `may_see_names`)."""
    paths = sorted({g.unit.path for g in actor.grants if g.role == ORG_ADMIN and g.unit})
    if not paths:
        return false()
    codes = select(OrgUnit.code).where(or_(*(OrgUnit.path.startswith(p) for p in paths)))
    return Membership.unit_code.in_(codes)


def consented_filter() -> Any:
    """Persons with a channel identity whose consent is given (withdrawn consent hides)."""
    return exists(
        select(Identity.id).where(Identity.person_id == Person.id, Identity.consent == "given")
    )
