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
import functools
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, inspect, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from bot import observability as obs
from bot.db.batch import GroupCommit
from bot.db.models import Identity, LessonProgress, Person, ProcessedUpdate
from bot.i18n import _, current_language
from bot.localities import LocalityIndex
from bot.settings import Settings
from content.loader import Curriculum
from handlers.context import Context
from handlers.router import dispatch
from handlers.types import IncomingMessage, Kind, Reply

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
ACTIVE_PRECISION = timedelta(minutes=1)
BATCHES_IN_FLIGHT = 3  # on PostgreSQL; the pool holds 10 (+10)


def utc_now() -> datetime:
    return datetime.now(UTC)


def insert_ignore(session: AsyncSession, model: type, **values: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the session's backend."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model).values(**values).on_conflict_do_nothing()


@functools.cache
def _claim_statement(dialect: str) -> Any:
    """Built once per backend: building a statement costs more than running it."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    values = {"channel": bindparam("c"), "update_key": bindparam("k"), "at": bindparam("a")}
    return insert(ProcessedUpdate.__table__).values(values).on_conflict_do_nothing()


async def claim_once(session: AsyncSession, channel: str, key: str, now: datetime) -> bool:
    """True the first time (channel, key) is claimed, False ever after."""
    statement = _claim_statement(session.bind.dialect.name)
    result = await session.execute(statement, {"c": channel, "k": key[:128], "a": now})
    return bool(result.rowcount)


@functools.cache
def _claim_all_statement(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = ProcessedUpdate.__table__
    return insert(table).on_conflict_do_nothing().returning(table.c.channel, table.c.update_key)


async def claim_all(
    session: AsyncSession, keys: list[tuple[str, str]], now: datetime
) -> set[tuple[str, str]]:
    """The (channel, key) pairs claimed now for the first time (keys cut to 128 characters),
    all in one statement."""
    if not keys:
        return set()
    if len(keys) == 1:  # the plain statement is cheaper than a RETURNING over a row list
        channel, key = keys[0]
        return {(channel, key[:128])} if await claim_once(session, channel, key, now) else set()
    rows = [{"channel": channel, "update_key": key[:128], "at": now} for channel, key in keys]
    result = await session.execute(_claim_all_statement(session.bind.dialect.name), rows)
    return {(channel, key) for channel, key in result.all()}


@functools.cache
def _identities_query(many: bool) -> Any:
    """Senders' identities, persons and memberships in one indexed query."""
    wanted = (Identity.external_id.in_(bindparam("u", expanding=True)) if many
              else Identity.external_id == bindparam("u"))  # fmt: skip
    return (
        select(Identity)
        .where(Identity.channel == bindparam("c"), wanted)
        .options(joinedload(Identity.person).joinedload(Person.memberships))
        .order_by(Identity.external_id)  # rows locked in one order: no deadlock on PostgreSQL
        .with_for_update(of=Identity)
    )


@functools.cache
def _lesson_rows_query() -> Any:
    pair = tuple_(LessonProgress.person_id, LessonProgress.lesson_id)
    return select(LessonProgress).where(pair.in_(bindparam("pairs", expanding=True)))


async def load_current_lessons(session: AsyncSession, identities: Iterable[Identity]) -> None:
    """Load the progress rows of the lessons these people are reading, one query for all, so
    the lesson steps of a batch find them in the session instead of each querying (and
    flushing the batch so far) on its own."""
    pairs = {
        (identity.person_id, identity.state_data["lesson"])
        for identity in identities
        if identity.person_id is not None
        and identity.state == "lesson"
        and isinstance((identity.state_data or {}).get("lesson"), str)
    }
    if pairs:
        result = await session.execute(_lesson_rows_query(), {"pairs": sorted(pairs)})
        # The session holds loaded objects weakly: keep these until it closes.
        session.info.setdefault("current_lessons", []).extend(result.scalars())


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
        # SQLite has one writer: one transaction at a time. PostgreSQL's pooled connections
        # let a batch run while another waits for the server.
        bind = sessionmaker.kw.get("bind")
        parallel = 1 if bind is None or bind.dialect.name == "sqlite" else BATCHES_IN_FLIGHT
        self.units = GroupCommit(sessionmaker, self._prepare, self._unit, parallel=parallel)
        # Pictures (certificates) are drawn one at a time, off the event loop: one thread holds
        # one picture's memory, where the default pool's six would each hold their own.
        self._pictures = ThreadPoolExecutor(1, thread_name_prefix="pictures")

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
        for reply in replies:  # after the commit, off the event loop (certificates)
            if reply.make_image is not None:
                await self.draw(reply.make_image)
        obs.UPDATES.labels(msg.channel, msg.kind.value).inc()
        obs.UPDATE_SECONDS.labels(msg.channel).observe(time.perf_counter() - started)
        return replies

    async def draw[T](self, make: Callable[[], T]) -> T:
        """Run `make` (drawing a picture) in the picture thread, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pictures, make)

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
            # Its own transaction, or one shared with other people's messages that queue up at
            # the same moment (bot.db.batch); the replies come back after the commit.
            return await self.units.run(msg)

    async def _prepare(
        self, session: AsyncSession, msgs: list[IncomingMessage]
    ) -> list[tuple[datetime, Identity | None]]:
        """For the messages of one transaction: claim their updates and load their senders'
        identities, one statement each for all of them. (time, identity) per message; no
        identity for a repeated update."""
        now = self.clock()
        keys = [(m.channel, m.update_id) for m in msgs if m.update_id is not None]
        claimed = await claim_all(session, keys, now)
        fresh = [m for m in msgs
                 if m.update_id is None or (m.channel, m.update_id[:128]) in claimed]  # fmt: skip
        found = await self.identities(session, fresh, now) if fresh else {}
        if len(found) > 1:
            await load_current_lessons(session, found.values())
        return [(now, found.get((m.channel, m.user_id)) if m in fresh else None) for m in msgs]

    async def _unit(
        self, session: AsyncSession, msg: IncomingMessage,
        prepared: tuple[datetime, Identity | None],
    ) -> list[Reply]:  # fmt: skip
        """One message's unit of work, in the transaction `session` is in."""
        now, identity = prepared
        if identity is None:
            log.info("duplicate update %s/%s dropped", msg.channel, msg.update_id)
            obs.DUPLICATES.labels(msg.channel).inc()
            return []
        if msg.kind == Kind.UNFOLLOW:
            identity.unreachable_at = now
            return []
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
            # Set after the handlers: set before, a query of theirs would flush the
            # identity once for this and once more at the commit.
            if identity.unreachable_at is not None:
                identity.unreachable_at = None
            identity.last_inbound_at = now
            person = identity.person
            # To the minute is precise enough for "active" (days idle, years retained), and
            # spares an UPDATE of the person on nearly every message.
            if person is not None and not now - ACTIVE_PRECISION < person.last_active_at <= now:
                person.last_active_at = now
        finally:
            current_language.reset(token)
        return replies

    async def identity(
        self, session: AsyncSession, msg: IncomingMessage, now: datetime
    ) -> Identity:
        """The identity of the sender, created on first contact (platform id only)."""
        return (await self.identities(session, [msg], now))[(msg.channel, msg.user_id)]

    async def identities(
        self, session: AsyncSession, msgs: list[IncomingMessage], now: datetime
    ) -> dict[tuple[str, str], Identity]:
        """The identities of the senders by (channel, platform id), created on first contact.

        The rows are locked for the transaction (FOR UPDATE on PostgreSQL; SQLite has one
        writer anyway), so two processes never handle the same person at once."""
        found: dict[tuple[str, str], Identity] = {}

        async def load(channel: str, users: set[str]) -> None:
            many = len(users) > 1
            wanted = sorted(users) if many else next(iter(users))
            result = await session.execute(_identities_query(many), {"c": channel, "u": wanted})
            for identity in result.unique().scalars():
                found[(identity.channel, identity.external_id)] = identity

        by_channel: dict[str, set[str]] = collections.defaultdict(set)
        for msg in msgs:
            by_channel[msg.channel].add(msg.user_id)
        for channel, users in by_channel.items():
            await load(channel, users)
        missing = {(m.channel, m.user_id): m for m in msgs if (m.channel, m.user_id) not in found}
        for msg in missing.values():
            await session.execute(insert_ignore(
                session, Identity, channel=msg.channel, external_id=msg.user_id,
                chat_id=msg.chat_id, language=self.settings.default_language, consent="pending",
                state="", state_data={}, created_at=now, last_inbound_at=now,
            ))  # fmt: skip
        for channel in {key[0] for key in missing}:
            await load(channel, {user for c, user in missing if c == channel})
        for msg in msgs:
            identity = found[(msg.channel, msg.user_id)]
            if identity.chat_id != msg.chat_id:
                identity.chat_id = msg.chat_id
        return found

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
