"""The audit log: who did what, to what, when. Append-only: this module only inserts.

Every officer action that changes or exports something (grant, revoke, import, confirming or
removing a membership, broadcast, export), every view of members' names and every refused
officer request is written here, in the same transaction as the action itself.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AuditLog, utcnow


def cli_actor() -> str:
    """"cli:<os user>" for actions taken on the command line."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = "unknown"
    return f"cli:{user}"[:96]


def write(session: AsyncSession, actor: str, action: str, target: str | None = None, *,
          at: datetime | None = None, **detail: Any) -> AuditLog:  # fmt: skip
    entry = AuditLog(
        at=at or utcnow(), actor=actor[:96], action=action[:48],
        target=target[:128] if target else None, detail=detail or None,
    )  # fmt: skip
    session.add(entry)
    return entry


async def recent(session: AsyncSession, limit: int = 50) -> list[AuditLog]:
    query = select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)
    return list(await session.scalars(query))
