"""Granting, revoking and inviting officers. Whether an officer may do it is decided by
`bot.services.policy`; this module only writes, and audits every change."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Officer, OfficerInvite, OrgUnit
from bot.services import audit, policy

if TYPE_CHECKING:
    from bot.localities import LocalityIndex

CHANNELS = ("telegram", "zalo-bot", "zalo-oa")
INVITE_DAYS = 7
TOKEN_BYTES = 18  # 24 URL-safe characters: "inv_" + token fits Telegram's 64-character start


class GrantError(ValueError):
    """Bad grant input; one line, fit to print."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def scope_text(role: str, unit: OrgUnit | policy.UnitRef | None, locality: int | None) -> str:
    """role@UNIT / role@01234 / role: a compact, language-neutral label for logs and lists."""
    if unit is not None:
        return f"{role}@{unit.code}"
    if locality is not None:
        return f"{role}@{locality:05d}"
    return role


async def active_grants(session: AsyncSession, channel: str, external_id: str) -> list[Officer]:
    return list(await session.scalars(
        select(Officer).where(Officer.channel == channel, Officer.external_id == external_id,
                              Officer.revoked_at.is_(None))
    ))  # fmt: skip


async def grant(session: AsyncSession, *, channel: str, external_id: str, role: str,
                unit: OrgUnit | None, locality: int | None, by: str, now: datetime,
                localities: LocalityIndex) -> tuple[Officer, bool]:
    """Give a role; (officer row, created?). The same active grant twice is kept once."""
    problem = policy.check_role_target(
        role, policy.UnitRef.of(unit) if unit is not None else None, locality, localities
    )
    if problem is not None:
        raise GrantError(problem)
    external_id = external_id.strip()
    if not external_id or len(external_id) > 64:
        raise GrantError("the user id must be 1-64 characters")
    for existing in await active_grants(session, channel, external_id):
        same_unit = existing.unit_id == (unit.id if unit is not None else None)
        if existing.role == role and same_unit and existing.locality_code == locality:
            return existing, False
    officer = Officer(channel=channel, external_id=external_id, role=role,
                      unit_id=unit.id if unit is not None else None, locality_code=locality,
                      granted_by=by[:96], granted_at=now)  # fmt: skip
    officer.unit = unit
    session.add(officer)
    await session.flush()
    audit.write(session, by, "grant", f"{channel}:{external_id}", at=now,
                role=role, scope=scope_text(role, unit, locality), officer=officer.id)
    return officer, True


async def revoke(session: AsyncSession, *, channel: str, external_id: str, role: str | None,
                 unit: OrgUnit | None, locality: int | None, by: str, now: datetime) -> int:
    """Revoke the matching active grants (all of the person's when no role is given)."""
    count = 0
    for officer in await active_grants(session, channel, external_id):
        if role is not None and officer.role != role:
            continue
        if unit is not None and officer.unit_id != unit.id:
            continue
        if locality is not None and officer.locality_code != locality:
            continue
        officer.revoked_at, officer.revoked_by = now, by[:96]
        audit.write(session, by, "revoke", f"{channel}:{external_id}", at=now,
                    role=officer.role, officer=officer.id)  # fmt: skip
        count += 1
    await session.flush()
    return count


async def list_officers(session: AsyncSession, *, include_revoked: bool = False,
                        where: object = None) -> list[Officer]:  # fmt: skip
    query = select(Officer).order_by(Officer.granted_at, Officer.id)
    if not include_revoked:
        query = query.where(Officer.revoked_at.is_(None))
    if where is not None:
        query = query.where(where)  # type: ignore[arg-type]
    return list(await session.scalars(query))


async def create_invite(session: AsyncSession, *, role: str, unit: OrgUnit | None,
                        locality: int | None, by: str, by_officer_id: int | None,
                        now: datetime, days: int = INVITE_DAYS) -> tuple[str, OfficerInvite]:
    """A one-time invitation token (returned once; only its hash is stored)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invite = OfficerInvite(
        token_hash=token_hash(token), role=role, unit_id=unit.id if unit is not None else None,
        locality_code=locality, created_by=by[:96], created_by_officer_id=by_officer_id,
        created_at=now, expires_at=now + timedelta(days=days),
    )  # fmt: skip
    session.add(invite)
    await session.flush()
    audit.write(session, by, "invite", scope_text(role, unit, locality), at=now,
                invite=invite.id, expires=invite.expires_at.isoformat())  # fmt: skip
    return token, invite


def invite_link(token: str, bot_username: str | None) -> str:
    """A Telegram deep link when the bot's username is known, else the text to send."""
    if bot_username:
        return f"https://t.me/{bot_username.lstrip('@')}?start=inv_{token}"
    return f"/start inv_{token}"


async def use_invite(session: AsyncSession, token: str, *, channel: str, external_id: str,
                     now: datetime, localities: LocalityIndex) -> Officer | None:
    """Turn a valid, unused, unexpired invitation into a grant for this account. The inviter
    must still hold a role that allows it (a revoked inviter's links die with the role).
    None (and an audit entry) when refused."""
    who = f"{channel}:{external_id}"
    invite = await session.scalar(
        select(OfficerInvite).where(OfficerInvite.token_hash == token_hash(token))
    )
    reason = None
    if invite is None:
        reason = "unknown"
    elif invite.used_at is not None:
        reason = "used"
    elif invite.expires_at <= now:
        reason = "expired"
    unit = await session.get(OrgUnit, invite.unit_id) if invite and invite.unit_id else None
    if invite is not None and reason is None and invite.created_by_officer_id is not None:
        inviter = await session.get(Officer, invite.created_by_officer_id)
        if inviter is None or inviter.revoked_at is not None:
            reason = "inviter_revoked"
        else:
            who_invited = f"{inviter.channel}:{inviter.external_id}"
            actor = policy.Actor(who_invited, (policy.grant_of(inviter, localities),))
            ref = policy.UnitRef.of(unit) if unit is not None else None
            if policy.may_grant(actor, invite.role, unit=ref, locality=invite.locality_code):
                reason = "inviter_out_of_scope"
    if reason is not None or invite is None:
        audit.write(session, who, "refused", "invite", at=now, reason=reason or "unknown")
        return None
    invite.used_at, invite.used_by = now, who
    officer, _created = await grant(
        session, channel=channel, external_id=external_id, role=invite.role, unit=unit,
        locality=invite.locality_code, by=f"invite:{invite.id}:{invite.created_by}"[:96],
        now=now, localities=localities,
    )  # fmt: skip
    return officer
