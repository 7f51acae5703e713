"""Scheduled jobs. Module-level functions (APScheduler's rule for persistable jobs); each opens
its own session and commits at its end."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete

from bot.db.models import Identity
from bot.runtime import Runtime

log = logging.getLogger(__name__)


async def forget_unconsented(rt: Runtime) -> int:
    """Delete identities that never answered the consent question within the retention period
    (only the platform id and the conversation step were kept for them)."""
    cutoff = rt.clock() - timedelta(days=rt.settings.unconsented_retention_days)
    async with rt.sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(Identity).where(
                Identity.consent == "pending",
                Identity.person_id.is_(None),
                Identity.last_inbound_at < cutoff,
            )
        )
    if result.rowcount:
        log.info("forgot %d identities that never consented", result.rowcount)
    return int(result.rowcount or 0)
