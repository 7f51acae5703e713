"""A small hand-made data set for the criteria reports, whose right answers the tests work
out by hand (see tests/test_report_metrics.py).

Units: tests/orgdata.py (HPN-37 > HPN-A > HPN-A-X1, HPN-37 > HPN-B, DOAN-37 > DOAN-A,
MTTQ-37 > MTTQ-A, MTTQ-B; commune A = 14215, B = 13579).

- k1 Lan: lives in A, member of HPN-A-X1 and DOAN-A (two memberships); learns in 2025 and
  2026, earns a certificate in 2026, is reached by campaign 1 of HPN-A and then starts
  learning, checks in at activity 1.
- k2 Minh: no membership, moved from A to B on 15 Jan 2026; reached by campaign 2 of commune
  B (an administrator's campaign, no unit); checks in at activity 1.
- k3: lives in B, HPN-B; learns and earns a certificate in January 2026, then erased
  (consent_withdrawn, erased) in June 2026: her events still count, she is no longer
  registered at the end of 2026.
- k4: registers only in 2027 (A, HPN-A).
- k5: lives in B, HPN-B, registers in March 2026, starts a lesson at 23:30 on 31 Dec 2026
  (Vietnam time: still 2026) and is reached by campaign 3 of HPN-37 at 00:30 on 1 Jan 2027.
- Activity 1 of HPN-A on 10 Mar 2026 (12 people counted by head, plus k1 and k2 checked in);
  activity 2 of DOAN-A on 1 Nov 2025 (5 by head).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Activity, OrgUnit, ParticipationEvent
from bot.localities import LocalityIndex
from bot.services import orgs
from tests import orgdata
from tests.orgdata import A, B

LAN = ("HPN-A-X1,DOAN-A", "doan,hoi_phu_nu")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ev(key: str, kind: str, at: datetime, commune: int | None, units: str = "",
       types: str = "", gender: str | None = None, age: str | None = None,
       **fields: object) -> ParticipationEvent:  # fmt: skip
    return ParticipationEvent(person_key=key, kind=kind, at=at, commune_code=commune,
                              unit_codes=units or None, memberships=types or None,
                              gender=gender, age_band=age, **fields)  # fmt: skip


def campaign(campaign_id: int, unit: str | None, locality: int) -> dict[str, object]:
    return {"campaign": campaign_id, "unit": unit, "locality": locality}


def events(act1: int) -> list[ParticipationEvent]:
    lan = dict(gender="female", age="31-45")
    minh = dict(gender="male", age="46-60")
    k3 = dict(gender="female", age="16-30")
    k5 = dict(gender="female", age="60+")
    hpn_b = ("HPN-B", "hoi_phu_nu")
    return [
        ev("k1", "registered", utc(2025, 3, 1, 5), A, *LAN, **lan),
        ev("k1", "lesson_started", utc(2025, 3, 2, 5), A, *LAN, **lan, lesson_id="L1"),
        ev("k1", "quiz_finished", utc(2025, 3, 2, 6), A, *LAN, **lan, lesson_id="L1",
           passed=False),
        ev("k1", "lesson_completed", utc(2026, 2, 1, 5), A, *LAN, **lan, lesson_id="L1"),
        ev("k1", "quiz_finished", utc(2026, 2, 1, 6), A, *LAN, **lan, lesson_id="L1",
           passed=True),
        ev("k1", "quiz_finished", utc(2026, 2, 5, 6), A, *LAN, **lan, lesson_id="L2",
           passed=True),
        ev("k1", "activity_attended", utc(2026, 3, 10, 2), A, *LAN, **lan,
           detail={"activity": act1, "unit": "HPN-A"}),
        ev("k1", "campaign_delivered", utc(2026, 4, 1, 2), A, *LAN, **lan,
           detail=campaign(1, "HPN-A", A)),
        ev("k1", "campaign_engaged", utc(2026, 4, 3, 2), A, *LAN, **lan,
           detail=campaign(1, "HPN-A", A)),
        ev("k1", "certificate_issued", utc(2026, 5, 1, 2), A, *LAN, **lan, module_id="m1"),
        ev("k2", "registered", utc(2025, 6, 1, 2), A, **minh),
        ev("k2", "lesson_completed", utc(2025, 7, 1, 2), A, **minh, lesson_id="L1"),
        ev("k2", "profile_changed", utc(2026, 1, 15, 2), B, **minh),
        ev("k2", "lesson_completed", utc(2026, 2, 1, 2), B, **minh, lesson_id="L2"),
        ev("k2", "quiz_finished", utc(2026, 2, 1, 3), B, **minh, lesson_id="L2", passed=False),
        ev("k2", "activity_attended", utc(2026, 3, 10, 2), B, **minh,
           detail={"activity": act1, "unit": "HPN-A"}),
        ev("k2", "campaign_delivered", utc(2026, 4, 1, 2), B, **minh,
           detail=campaign(2, None, B)),
        ev("k3", "registered", utc(2026, 1, 5, 2), B, *hpn_b, **k3),
        ev("k3", "lesson_completed", utc(2026, 1, 6, 2), B, *hpn_b, **k3, lesson_id="L1"),
        ev("k3", "quiz_finished", utc(2026, 1, 6, 3), B, *hpn_b, **k3, lesson_id="L1",
           passed=True),
        ev("k3", "certificate_issued", utc(2026, 1, 7, 2), B, *hpn_b, **k3, module_id="m1"),
        ev("k3", "consent_withdrawn", utc(2026, 6, 1, 2), B, *hpn_b, **k3,
           detail={"erased": True}),
        ev("k4", "registered", utc(2027, 1, 2, 2), A, "HPN-A", "hoi_phu_nu"),
        ev("k5", "registered", utc(2026, 3, 1, 2), B, *hpn_b, **k5),
        ev("k5", "lesson_started", utc(2026, 12, 31, 16, 30), B, *hpn_b, **k5, lesson_id="L3"),
        ev("k5", "campaign_delivered", utc(2026, 12, 31, 17, 30), B, *hpn_b, **k5,
           detail=campaign(3, "HPN-37", 37)),
    ]


async def build(session: AsyncSession, localities: LocalityIndex) -> dict[str, int]:
    """Units, the two activities and every event. Returns the activity ids."""
    await orgdata.add_units(session, localities)
    hpn_a = await orgs.get_unit(session, "HPN-A")
    doan_a = await orgs.get_unit(session, "DOAN-A")
    assert isinstance(hpn_a, OrgUnit) and isinstance(doan_a, OrgUnit)
    act1 = Activity(code="ACT1", unit_id=hpn_a.id, title="Lớp VNeID", held_on=utc(2026, 3, 9, 17),
                    place="Nhà văn hóa", head_count=12, created_by="test")  # fmt: skip
    act2 = Activity(code="ACT2", unit_id=doan_a.id, title="Thanh niên số",
                    held_on=utc(2025, 10, 31, 17), place="Trường", head_count=5,
                    created_by="test")  # fmt: skip
    session.add_all([act1, act2])
    await session.flush()
    session.add_all(events(act1.id))
    await session.flush()
    return {"act1": act1.id, "act2": act2.id}
