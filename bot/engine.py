"""The conversation engine: one unit of work per incoming message.

For each message it takes the person's lock (their messages are handled in order; different
people's in parallel), opens one session and transaction, drops a repeated update, loads or
creates the identity, runs the handlers, remembers the buttons it offered, and commits.
Channels send the replies only after the commit, so a crash never leaves a reply whose
state change was lost.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import observability as obs
from bot.db.models import Identity, ProcessedUpdate
from bot.i18n import _, current_language
from bot.localities import LocalityIndex
from bot.settings import Settings
from content.loader import Curriculum
from handlers.context import Context
from handlers.router import dispatch
from handlers.types import IncomingMessage, Kind, Reply

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def insert_ignore(session: AsyncSession, model: type, **values: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the session's backend."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model).values(**values).on_conflict_do_nothing()


async def claim_once(session: AsyncSession, channel: str, key: str, now: datetime) -> bool:
    """True the first time (channel, key) is claimed, False ever after."""
    result = await session.execute(
        insert_ignore(session, ProcessedUpdate, channel=channel, update_key=key[:128], at=now)
    )
    return bool(result.rowcount)


class KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Any, tuple[asyncio.Lock, int]] = {}

    def __call__(self, key: Any) -> _Held:
        return _Held(self, key)

    def _enter(self, key: Any) -> asyncio.Lock:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        return lock

    def _exit(self, key: Any) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    def __init__(self, owner: KeyedLocks, key: Any) -> None:
        self.owner, self.key = owner, key

    async def __aenter__(self) -> None:
        self.lock = self.owner._enter(self.key)
        await self.lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()
        self.owner._exit(self.key)


class FloodGuard:
    """Per-person sliding window: past `limit` messages in `window` seconds a person is told
    once to slow down, then ignored until the window clears, so one person cannot make the bot
    slow for everyone else. In memory, per process: good enough against a stuck key or a
    script, and costs nothing on the hot path."""

    def __init__(self, limit: int, window: float, monotonic: Callable[[], float]) -> None:
        self.limit, self.window, self.monotonic = limit, window, monotonic
        self._seen: dict[Any, collections.deque[float]] = {}
        self._warned: dict[Any, float] = {}

    def check(self, key: Any) -> str:
        """'ok', 'warn' (first message over the limit) or 'drop'."""
        now = self.monotonic()
        seen = self._seen.setdefault(key, collections.deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        seen.append(now)
        if len(self._seen) > 10_000:
            self._prune(now)
        if len(seen) <= self.limit:
            return "ok"
        warned = self._warned.get(key)
        if warned is not None and warned > now - self.window:
            return "drop"
        self._warned[key] = now
        return "warn"

    def _prune(self, now: float) -> None:
        for key in [k for k, q in self._seen.items() if not q or q[-1] <= now - self.window]:
            self._seen.pop(key, None)
            self._warned.pop(key, None)


class Engine:
    """Turns an IncomingMessage into replies, with everything it changed committed."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        curriculum: Curriculum,
        localities: LocalityIndex,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        extras: dict[str, Any] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.curriculum = curriculum
        self.localities = localities
        self.settings = settings
        self.clock = clock
        self.extras = extras or {}
        self.locks = KeyedLocks()
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.flood = FloodGuard(settings.flood_messages, settings.flood_window_seconds, monotonic)

    async def handle(self, msg: IncomingMessage) -> list[Reply]:
        """Handle one message; counted, timed, and tracked so a shutdown can wait for it."""
        self.in_flight += 1
        self._idle.clear()
        started = time.perf_counter()
        try:
            replies = await self._handle(msg)
        except Exception:
            obs.UPDATE_ERRORS.labels(msg.channel).inc()
            raise
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
        obs.UPDATES.labels(msg.channel, msg.kind.value).inc()
        obs.UPDATE_SECONDS.labels(msg.channel).observe(time.perf_counter() - started)
        return replies

    async def wait_idle(self) -> None:
        """Return when no message is being handled (a graceful stop waits for this)."""
        await self._idle.wait()

    async def _handle(self, msg: IncomingMessage) -> list[Reply]:
        if not msg.is_private:
            return await self._group(msg)
        verdict = self.flood.check((msg.channel, msg.user_id))
        if verdict != "ok":
            log.warning("flood control: %s/%s %s", msg.channel, msg.user_id, verdict)
            obs.FLOOD.labels(msg.channel).inc()
            if verdict == "drop":
                return []
            token = current_language.set(self.settings.default_language)
            try:
                return [Reply(_("You are sending messages very fast. Please wait a few seconds, "
                                "then continue."))]
            finally:
                current_language.reset(token)
        async with self.locks((msg.channel, msg.user_id)):
            async with self.sessionmaker() as session, session.begin():
                now = self.clock()
                if msg.update_id is not None and not await claim_once(
                    session, msg.channel, msg.update_id, now
                ):
                    log.info("duplicate update %s/%s dropped", msg.channel, msg.update_id)
                    obs.DUPLICATES.labels(msg.channel).inc()
                    return []
                identity = await self.identity(session, msg, now)
                if msg.kind == Kind.UNFOLLOW:
                    identity.unreachable_at = now
                    return []
                identity.unreachable_at = None
                identity.last_inbound_at = now
                token = current_language.set(identity.language)
                try:
                    ctx = Context(
                        msg,
                        session,
                        identity,
                        self.curriculum,
                        self.localities,
                        self.settings,
                        now,
                        self.extras,
                    )
                    replies = await dispatch(ctx)
                    if inspect(identity).deleted or inspect(identity).was_deleted:
                        return replies  # erased: nothing more to remember about them
                    offered = next((r for r in reversed(replies) if r.buttons), None)
                    if offered is not None:
                        ctx.remember(_buttons=[[b.label, b.payload] for b in offered.flat_buttons])
                    if identity.person is not None:
                        identity.person.last_active_at = now
                finally:
                    current_language.reset(token)
            return replies

    async def identity(
        self, session: AsyncSession, msg: IncomingMessage, now: datetime
    ) -> Identity:
        """The identity of the sender, created on first contact (platform id only).

        The row is locked for the transaction (FOR UPDATE on PostgreSQL; SQLite has one
        writer anyway), so two processes never handle the same person at once."""
        query = (
            select(Identity)
            .where(Identity.channel == msg.channel, Identity.external_id == msg.user_id)
            .with_for_update()
        )
        identity = await session.scalar(query)
        if identity is None:
            await session.execute(insert_ignore(
                session, Identity, channel=msg.channel, external_id=msg.user_id,
                chat_id=msg.chat_id, language=self.settings.default_language, consent="pending",
                state="", state_data={}, created_at=now, last_inbound_at=now,
            ))  # fmt: skip
            identity = await session.scalar(query)
            assert identity is not None
        if identity.chat_id != msg.chat_id:
            identity.chat_id = msg.chat_id
        return identity

    async def _group(self, msg: IncomingMessage) -> list[Reply]:
        """Group chats get one short notice per chat, then silence."""
        async with self.sessionmaker() as session, session.begin():
            first = await claim_once(
                session, msg.channel, f"group-notice:{msg.chat_id}", self.clock()
            )
        if not first:
            return []
        token = current_language.set(self.settings.default_language)
        try:
            return [Reply(_("I only talk in private chats. Please message me directly."))]
        finally:
            current_language.reset(token)
