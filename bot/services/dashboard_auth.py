"""Passwordless dashboard login: an officer sends /dashboard in the chat and gets a one-time
link, valid 10 minutes. Opening it shows a "Đăng nhập" button; only pressing it (a POST)
consumes the link, so a chat app's link preview cannot burn it. The POST opens a session:
a random cookie token (only its hash is stored), its own CSRF token for every form, valid
8 hours. The officer's roles are read again on every request, so a revoked officer is out at
once. Takes a session; never commits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import DashboardLink, DashboardSession

LINK_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=8)
TOKEN_BYTES = 32


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _shaped(token: str) -> bool:
    return 20 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)


async def create_link(session: AsyncSession, channel: str, external_id: str,
                      now: datetime) -> str:  # fmt: skip
    """A new one-time login link token for this officer account."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(DashboardLink(token_hash=_hash(token), channel=channel, external_id=external_id,
                              created_at=now, expires_at=now + LINK_TTL))  # fmt: skip
    return token


async def peek_link(session: AsyncSession, token: str, now: datetime) -> DashboardLink | None:
    """The link if it can still be used (GET: shows the button, changes nothing)."""
    if not _shaped(token):
        return None
    return await session.scalar(select(DashboardLink).where(
        DashboardLink.token_hash == _hash(token), DashboardLink.used_at.is_(None),
        DashboardLink.expires_at > now))  # fmt: skip


async def consume_link(session: AsyncSession, token: str, now: datetime) -> DashboardLink | None:
    """Use the link once: of two presses (or a replay), only the first gets it."""
    if not _shaped(token):
        return None
    found = await session.execute(
        update(DashboardLink)
        .where(DashboardLink.token_hash == _hash(token), DashboardLink.used_at.is_(None),
               DashboardLink.expires_at > now)
        .values(used_at=now)
        .returning(DashboardLink.id)
    )  # fmt: skip
    link_id = found.scalar_one_or_none()
    if link_id is None:
        return None
    return await session.get(DashboardLink, link_id)


async def open_session(session: AsyncSession, link: DashboardLink,
                       now: datetime) -> tuple[str, DashboardSession]:  # fmt: skip
    """(cookie token, session row) for the account the link was made for."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = DashboardSession(token_hash=_hash(token), channel=link.channel,
                           external_id=link.external_id, csrf=secrets.token_urlsafe(24),
                           created_at=now, expires_at=now + SESSION_TTL)  # fmt: skip
    session.add(row)
    await session.flush()
    return token, row


async def find_session(session: AsyncSession, token: str | None,
                       now: datetime) -> DashboardSession | None:  # fmt: skip
    if not token or not _shaped(token):
        return None
    return await session.scalar(select(DashboardSession).where(
        DashboardSession.token_hash == _hash(token), DashboardSession.revoked_at.is_(None),
        DashboardSession.expires_at > now))  # fmt: skip


async def close_session(session: AsyncSession, row: DashboardSession, now: datetime) -> None:
    row.revoked_at = now


def csrf_ok(row: DashboardSession, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(row.csrf, sent or "")
