"""The Zalo OA token pair, kept in the database and refreshed by one refresher at a time.

Zalo's refresh token is single-use and rotates: whoever uses it must store the new pair, and
nobody else may use the old one meanwhile. So:
- in one process, an asyncio lock lets one coroutine refresh while the others wait;
- across processes, the refresher first takes a lease on the token row (an UPDATE that only
  succeeds on the version it read and when no live lease exists: compare-and-swap), calls
  Zalo, then writes the new pair and drops the lease in one statement;
- whoever waited re-reads the row: if the token it had was replaced meanwhile, it uses the
  new one instead of refreshing again. So two sends that meet an expired token (-216) at the
  same time cause exactly one refresh.
The env values only seed an empty store; a rotated pair is never overwritten by them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.zalo.oa_client import TokenPair, ZaloOAClient, ZaloOAError
from bot.db.models import ZaloOAToken
from bot.engine import Clock, insert_ignore

log = logging.getLogger(__name__)
REFRESH_EVERY = timedelta(hours=20)  # the access token lives 25 h
LEASE = timedelta(seconds=60)  # longer than one OAuth call may take


class TokenStoreEmpty(RuntimeError):
    """No token pair is stored and none was given to seed the store."""


class OATokenStore:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: ZaloOAClient,
        clock: Clock,
        *,
        refresh_every: timedelta = REFRESH_EVERY,
        poll: float = 0.1,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.client = client
        self.app_id = client.app_id
        self.clock = clock
        self.refresh_every = refresh_every
        self.poll = poll
        self.owner = secrets.token_hex(8)
        self._lock = asyncio.Lock()
        self._access: str | None = None

    async def seed(self, access_token: str | None, refresh_token: str | None) -> bool:
        """Store the pair from the environment if (and only if) nothing is stored yet."""
        if not access_token or not refresh_token:
            return False
        now = self.clock()
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(insert_ignore(
                session, ZaloOAToken, app_id=self.app_id, access_token=access_token,
                refresh_token=refresh_token, access_expires_at=None, refreshed_at=now,
                version=0, lease_owner=None, lease_until=None,
            ))  # fmt: skip
        seeded = bool(result.rowcount)
        if not seeded:
            log.info("zalo-oa: keeping the stored token pair (the env values only seed)")
        return seeded

    async def row(self) -> ZaloOAToken | None:
        async with self.sessionmaker() as session:
            return await session.get(ZaloOAToken, self.app_id)

    async def access_token(self) -> str:
        if self._access is None:
            row = await self.row()
            if row is None:
                raise TokenStoreEmpty(
                    "no Zalo OA token is stored: set HOCVUSO_ZALO_OA_ACCESS_TOKEN and "
                    "HOCVUSO_ZALO_OA_REFRESH_TOKEN once"
                )
            self._access = row.access_token
        return self._access

    def due(self, row: ZaloOAToken, now: datetime) -> bool:
        """Refresh about every 20 hours, and in any case an hour before expiry."""
        if now >= row.refreshed_at + self.refresh_every:
            return True
        return row.access_expires_at is not None and now >= row.access_expires_at - timedelta(
            hours=1
        )

    async def refresh(self, stale: str) -> str:
        """A working access token after Zalo refused `stale`: refreshed by us, or by whoever
        refreshed while we waited."""
        token, _ = await self._refresh(lambda row, _now: row.access_token == stale)
        return token

    async def refresh_if_due(self) -> bool:
        """The scheduler's call: refresh when the pair is old enough. True if we refreshed."""
        _, refreshed = await self._refresh(self.due)
        return refreshed

    async def _refresh(self, needed: Callable[[ZaloOAToken, datetime], bool]) -> tuple[str, bool]:
        async with self._lock:
            waited = 0.0
            while True:
                row = await self.row()
                if row is None:
                    raise TokenStoreEmpty("no Zalo OA token is stored")
                now = self.clock()
                if not needed(row, now):
                    self._access = row.access_token
                    return row.access_token, False
                if await self._take_lease(row, now):
                    break
                if waited > LEASE.total_seconds() + 5:
                    raise ZaloOAError(-1, "another refresher holds the token lease")
                await asyncio.sleep(self.poll)  # someone else is refreshing: wait for them
                waited += self.poll
            try:
                pair = await self.client.refresh(row.refresh_token)
            except Exception:
                log.exception("zalo-oa: refreshing the access token failed")
                await self._release()
                raise
            await self._save(pair)
            self._access = pair.access_token
            log.info("zalo-oa: access token refreshed")
            return pair.access_token, True

    async def _take_lease(self, row: ZaloOAToken, now: datetime) -> bool:
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(ZaloOAToken)
                .where(
                    ZaloOAToken.app_id == self.app_id,
                    ZaloOAToken.version == row.version,
                    or_(ZaloOAToken.lease_until.is_(None), ZaloOAToken.lease_until < now),
                )
                .values(lease_owner=self.owner, lease_until=now + LEASE)
            )
        return result.rowcount == 1

    async def _release(self) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(ZaloOAToken)
                .where(ZaloOAToken.app_id == self.app_id, ZaloOAToken.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def _save(self, pair: TokenPair) -> None:
        """The new pair replaces the old in one statement, and the lease goes with it. The
        old refresh token is spent, so the new pair is written even if our lease ran out."""
        now = self.clock()
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(ZaloOAToken)
                .where(ZaloOAToken.app_id == self.app_id)
                .values(
                    access_token=pair.access_token,
                    refresh_token=pair.refresh_token,
                    access_expires_at=now + timedelta(seconds=pair.expires_in),
                    refreshed_at=now,
                    version=ZaloOAToken.version + 1,
                    lease_owner=None,
                    lease_until=None,
                )
            )
