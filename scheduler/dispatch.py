"""Campaign dispatch: drain the outbox (`deliveries`) per channel through the send budget.

One `Dispatcher` per channel and process:

- a feeder claims pending rows of running campaigns with a lease (`claimed_by`,
  `claimed_until`; PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` inside the claiming
  UPDATE, so several processes never take the same row), and a heartbeat extends the lease of
  rows still held;
- workers take a slot from the channel's `SendLimiter` in the broadcast lane (Telegram: the
  same limiter the channel's replies use, replies first) and send. Telegram is called through
  the dispatcher's own aiohttp session (no python-telegram-bot objects per message);
- outcomes are written in batches (one executemany every `flush_every` seconds or
  `flush_rows` outcomes), never one commit per send: sent, blocked (403: the identity is marked
  unreachable, so later audiences leave it out), skipped (with the reason: Zalo OA messaging
  window, opted out in the meantime, consent withdrawn), failed (400, or network errors and
  5xx three times, with backoff in between). A 429 pauses the broadcast lane for
  `retry_after` and the same row is sent again: nothing lost, nothing repeated.

Crash safety: a killed process's rows keep their lease and are claimed again when it ends
(30 s); only sends whose outcome was not yet written (at most the in-flight ones) can be
repeated. SQLite runs one process, so a starting dispatcher there releases every lease at
once. Scheduled campaigns start in `fire_due_campaigns`, run by the scheduler leader (a
PostgreSQL advisory lock; SQLite: the one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from sqlalchemy import bindparam, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import observability as obs
from bot.channels.http import LazySession
from bot.channels.ratelimit import BROADCAST, SendLimiter
from bot.channels.render import to_html, to_plain
from bot.db.models import Campaign, Delivery, Identity, Person
from bot.i18n import _, current_language
from bot.services import campaigns as svc
from content.loader import text_for
from handlers.types import Button, Reply, rows

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=30)
BACKOFF = (2.0, 8.0)  # seconds before the 2nd and the 3rd try after a network error or 5xx
MAX_RETRY_AFTER_LOOPS = 20
WATCH_EVERY = 0.25  # seconds between two looks for cancelled campaigns
LEADER_LOCK = 0x68767363  # "hvsc": the scheduler leader's advisory lock key
OPT_OUT_PAYLOAD = "camp:off"
JSON_HEADERS = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------- the message


def campaign_reply(campaign: Campaign, language: str, curriculum: Any) -> Reply:
    """What a recipient sees: the text, the optional lesson/module button, and the one-tap
    "Không nhận tin chiến dịch" button."""
    token = current_language.set(language)
    try:
        buttons: list[Button] = []
        if campaign.button_kind == "les" and (
            lesson := curriculum.lesson(campaign.button_target or "")
        ):
            title = text_for(lesson.title, language)
            buttons.append(Button(_("▶ Learn: {title}").format(title=title)[:60],
                                  f"les:{lesson.id}"))  # fmt: skip
        elif campaign.button_kind == "mod" and (
            module := curriculum.module(campaign.button_target or "")
        ):
            title = text_for(module.title, language)
            buttons.append(Button(_("▶ Learn: {title}").format(title=title)[:60],
                                  f"mod:{module.id}"))  # fmt: skip
        buttons.append(Button(_("Stop campaign messages"), OPT_OUT_PAYLOAD))
        return Reply(campaign.text, rows(*buttons))
    finally:
        current_language.reset(token)


# ---------------------------------------------------------------------------- senders


@dataclass(slots=True)
class Job:
    """One claimed delivery."""

    id: int
    campaign_id: int
    identity_id: int | None
    attempts: int
    chat_id: str = ""
    language: str = "vi"
    skip: str | None = None  # skip without sending, and why


@dataclass(slots=True)
class Result:
    """What the platform said: sent | retry_after | blocked | skipped | failed | transient."""

    kind: str
    reason: str | None = None
    message_id: str | None = None
    retry_after: float = 0.0


class Sender(Protocol):
    channel: str
    limiter: SendLimiter

    async def send(self, job: Job, campaign: Campaign) -> Result: ...

    async def close(self) -> None: ...


class TelegramSender:
    """sendMessage through the dispatcher's own aiohttp session."""

    channel = "telegram"

    def __init__(self, rt: Runtime, limiter: SendLimiter, *,
                 connections: int | None = None) -> None:  # fmt: skip
        s = rt.settings
        assert s.telegram_token is not None
        self.url = f"{s.telegram_api_url}{s.telegram_token.get_secret_value()}/sendMessage"
        self.paid = s.telegram_paid_broadcast
        self.limiter = limiter
        self.curriculum = rt.curriculum
        # Enough connections for every send in flight at the full rate (a round trip of up
        # to ~0.3 s), so a granted send never queues for a connection after its slot.
        rate = limiter.capacity / max(limiter.span, 0.001)
        self._http = LazySession(15, connect=5,
                                 connections=connections or int(min(1000, max(100, rate * 0.3))))
        self._bodies: dict[tuple[int, str], tuple[bytes, bytes]] = {}

    def _body(self, campaign: Campaign, language: str) -> tuple[bytes, bytes]:
        """The JSON body of the campaign's message in `language`, serialised once, as the
        bytes before and after the chat id."""
        key = (campaign.id, language)
        body = self._bodies.get(key)
        if body is None:
            reply = campaign_reply(campaign, language, self.curriculum)
            html = to_html(reply.text)
            fields: dict[str, Any] = {"text": html, "parse_mode": "HTML"} if len(html) <= 4096 \
                else {"text": to_plain(reply.text)}  # fmt: skip
            fields["reply_markup"] = {"inline_keyboard": [
                [{"text": b.label, "callback_data": b.payload} for b in row]
                for row in reply.buttons
            ]}  # fmt: skip
            fields["link_preview_options"] = {"is_disabled": True}
            if self.paid:
                fields["allow_paid_broadcast"] = True
            rest = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
            body = (b'{"chat_id":', b"," + rest[1:])
            if len(self._bodies) > 256:
                self._bodies.clear()
            self._bodies[key] = body
        return body

    def payload(self, job: Job, campaign: Campaign) -> bytes:
        head, tail = self._body(campaign, job.language)
        return head + json.dumps(job.chat_id).encode() + tail

    async def send(self, job: Job, campaign: Campaign) -> Result:
        try:
            async with self._http.session.post(self.url, data=self.payload(job, campaign),
                                               headers=JSON_HEADERS) as response:  # fmt: skip
                status = response.status
                try:
                    data = json.loads(await response.read())
                except ValueError:
                    data = {}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Result("transient", f"network: {type(exc).__name__}")
        if not isinstance(data, dict):
            data = {}
        if status == 200 and data.get("ok"):
            result = data.get("result") or {}
            return Result("sent", message_id=str(result.get("message_id", "")) or None)
        description = str(data.get("description") or status)[:200]
        if status == 429:
            params = data.get("parameters") or {}
            return Result("retry_after", description,
                          retry_after=float(params.get("retry_after") or 1))  # fmt: skip
        if status == 403:
            return Result("blocked", description)
        if status == 400:
            return Result("failed", description)
        return Result("transient", description)

    async def close(self) -> None:
        await self._http.close()


class ChannelSender:
    """A Zalo channel's own `send` (it renders, and the OA checks the messaging window)."""

    def __init__(self, channel: Any, limiter: SendLimiter, curriculum: Any) -> None:
        self.channel = channel.name
        self._channel = channel
        self.limiter = limiter
        self.curriculum = curriculum

    async def send(self, job: Job, campaign: Campaign) -> Result:
        reply = campaign_reply(campaign, job.language, self.curriculum)
        try:
            result = await self._channel.send(job.chat_id, [reply])
        except Exception as exc:  # a client error the channel did not turn into a result
            return Result("transient", f"{type(exc).__name__}: {exc}"[:200])
        if result is None or result.status == "sent":
            ids = getattr(result, "message_ids", ()) or ()
            return Result("sent", message_id=ids[0] if ids else None)
        if result.status == "skipped":
            return Result("skipped", (result.reason or "skipped")[:200])
        return Result("transient", (result.reason or "failed")[:200])

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------------- dispatcher


@dataclass(slots=True)
class Outcome:
    job: Job
    status: str
    reason: str | None = None
    message_id: str | None = None
    at: datetime | None = None
    retry_at: datetime | None = None


@dataclass(slots=True)
class Stats:
    claimed: int = 0
    sent: int = 0
    blocked: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0
    flushes: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    """Drains one channel's outbox (see the module docstring)."""

    def __init__(self, rt: Runtime, sender: Sender, *, workers: int | None = None,
                 batch: int | None = None, flush_every: float = 0.2, flush_rows: int = 100,
                 idle_poll: float = 1.0, lease: timedelta = LEASE) -> None:  # fmt: skip
        self.rt = rt
        self.sender = sender
        self.channel = sender.channel
        rate = sender.limiter.capacity / max(sender.limiter.span, 0.001)
        self.workers = workers or int(min(400, max(8, rate / 3)))
        # A claim runs on the event loop (SQLite inline): a quarter second's worth of rows at a
        # time keeps each one short, so it never holds up the sends (and their timing) for long.
        self.batch = batch or int(min(2000, max(60, rate / 4)))
        self.flush_every = flush_every
        self.flush_rows = flush_rows
        self.idle_poll = idle_poll
        self.lease = lease
        self.me = f"{self.channel}-{secrets.token_hex(6)}"
        self.stats = Stats()
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._held: set[int] = set()
        self._results: list[Outcome] = []
        self._flush_now = asyncio.Event()
        self._wake = asyncio.Event()
        self._campaigns: dict[int, Campaign] = {}
        self._stopped: set[int] = set()  # campaigns cancelled while their rows were held
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._idle = True
        self._dialect = rt.db.dialect.name

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._dialect == "sqlite":  # one process: any lease left is from a dead process
            async with self.rt.sessionmaker() as session, session.begin():
                await session.execute(
                    update(Delivery).where(Delivery.channel == self.channel,
                                           Delivery.status == svc.PENDING,
                                           Delivery.claimed_by.is_not(None))
                    .values(claimed_by=None, claimed_until=None)
                    .execution_options(synchronize_session=False)
                )  # fmt: skip
        self._tasks = [
            asyncio.create_task(self._feed(), name=f"dispatch-feed-{self.channel}"),
            asyncio.create_task(self._flusher(), name=f"dispatch-flush-{self.channel}"),
            asyncio.create_task(self._heartbeat(), name=f"dispatch-lease-{self.channel}"),
            asyncio.create_task(self._watch(), name=f"dispatch-watch-{self.channel}"),
            *(asyncio.create_task(self._worker(), name=f"dispatch-{self.channel}-{i}")
              for i in range(self.workers)),
        ]  # fmt: skip

    def wake(self) -> None:
        """A campaign started in this process: look for rows now."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming, let workers finish what they hold within a few seconds, write
        every outcome, and give the rest back (their lease is released)."""
        self._stopping = True
        self._wake.set()
        while not self._queue.empty():
            job = self._queue.get_nowait()
            self._held.discard(job.id)
            await self._release([job.id])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), 5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._flush()
        if self._held:
            with contextlib.suppress(Exception):
                await self._release(list(self._held))
        await self.sender.close()

    # ------------------------------------------------------------------ claiming

    async def _feed(self) -> None:
        while not self._stopping:
            try:
                if self._queue.qsize() > self.batch // 2:
                    await asyncio.sleep(0.05)
                    continue
                jobs = await self.claim(self.batch)
            except Exception:
                log.exception("dispatch %s: claiming failed", self.channel)
                await asyncio.sleep(self.idle_poll)
                continue
            for job in jobs:
                self._queue.put_nowait(job)
            if len(jobs) < self.batch and self._queue.empty():
                with contextlib.suppress(Exception):
                    await self._finish_campaigns()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll)

    async def claim(self, limit: int) -> list[Job]:
        """Take up to `limit` due rows of running campaigns, with a lease."""
        now = self.rt.clock()
        wanted = (
            select(Delivery.id)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(Delivery.channel == self.channel, Delivery.status == svc.PENDING,
                   Delivery.next_attempt_at <= now,
                   or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
                   Campaign.status == svc.SENDING)
            .order_by(Delivery.id).limit(limit)
        )  # fmt: skip
        if self._idle:  # a read first, so an idle dispatcher never takes the write lock
            async with self.rt.sessionmaker() as session:
                if await session.scalar(wanted.limit(1)) is None:
                    return []
        if self._dialect == "postgresql":
            wanted = wanted.with_for_update(of=Delivery, skip_locked=True)
        stmt = (
            update(Delivery).where(Delivery.id.in_(wanted.scalar_subquery()))
            .values(claimed_by=self.me, claimed_until=now + self.lease)
            .returning(Delivery.id, Delivery.campaign_id, Delivery.identity_id,
                       Delivery.attempts)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        async with self.rt.sessionmaker() as session, session.begin():
            claimed = (await session.execute(stmt)).all()
            self._idle = not claimed
            if not claimed:
                return []
            jobs = {r.id: Job(r.id, r.campaign_id, r.identity_id, r.attempts) for r in claimed}
            await self._fill(session, list(jobs.values()))
        self._held.update(jobs)
        self.stats.claimed += len(jobs)
        return sorted(jobs.values(), key=lambda j: j.id)

    async def _fill(self, session: AsyncSession, jobs: list[Job]) -> None:
        """Chat ids and languages, and who must be skipped after all."""
        ids = {j.identity_id for j in jobs if j.identity_id is not None}
        info = {
            r.id: r for r in await session.execute(
                select(Identity.id, Identity.chat_id, Identity.language, Identity.consent,
                       Identity.unreachable_at, Person.campaigns_opt_out)
                .outerjoin(Person, Person.id == Identity.person_id)
                .where(Identity.id.in_(ids))
            )
        } if ids else {}  # fmt: skip
        missing = {j.campaign_id for j in jobs} - set(self._campaigns)
        if missing:
            for campaign in await session.scalars(
                    select(Campaign).where(Campaign.id.in_(missing))):  # fmt: skip
                self._campaigns[campaign.id] = campaign
        for job in jobs:
            row = info.get(job.identity_id) if job.identity_id is not None else None
            if row is None:
                job.skip = "erased"
                continue
            job.chat_id, job.language = row.chat_id, row.language
            if row.consent != "given" or row.campaigns_opt_out is None:
                job.skip = "consent withdrawn"
            elif row.campaigns_opt_out:
                job.skip = "opted out"
            elif row.unreachable_at is not None:
                job.skip = "unreachable"

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            held = list(self._held)
            if not held:
                continue
            try:
                async with self.rt.sessionmaker() as session, session.begin():
                    for i in range(0, len(held), 500):
                        await session.execute(
                            update(Delivery).where(Delivery.id.in_(held[i:i + 500]),
                                                   Delivery.claimed_by == self.me)
                            .values(claimed_until=self.rt.clock() + self.lease)
                            .execution_options(synchronize_session=False)
                        )  # fmt: skip
            except Exception:
                log.exception("dispatch %s: extending leases failed", self.channel)

    async def _watch(self) -> None:
        """Notice cancelled campaigns quickly: their held rows are dropped unsent (the cancel
        already counted them as skipped)."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            ids = [i for i in self._campaigns if i not in self._stopped]
            if not ids or not self._held:
                continue
            try:
                async with self.rt.sessionmaker() as session:
                    stopped = set(await session.scalars(select(Campaign.id).where(
                        Campaign.id.in_(ids), Campaign.status != svc.SENDING)))
                self._stopped |= stopped
            except Exception:
                log.exception("dispatch %s: checking campaigns failed", self.channel)

    async def _release(self, ids: list[int]) -> None:
        if not ids:
            return
        async with self.rt.sessionmaker() as session, session.begin():
            await session.execute(
                update(Delivery).where(Delivery.id.in_(ids), Delivery.claimed_by == self.me)
                .values(claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False)
            )  # fmt: skip
        self._held.difference_update(ids)

    # ------------------------------------------------------------------ sending

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                outcome = await self.deliver(job)
                if outcome is None:  # its campaign was cancelled: the row is settled
                    self._held.discard(job.id)
                    continue
                self._results.append(outcome)
                if len(self._results) >= self.flush_rows:
                    self._flush_now.set()
            except Exception:
                log.exception("dispatch %s: delivery %s failed", self.channel, job.id)
            finally:
                self._queue.task_done()

    async def deliver(self, job: Job) -> Outcome | None:
        if job.campaign_id in self._stopped:
            return None
        campaign = self._campaigns.get(job.campaign_id)
        if job.skip is not None or campaign is None:
            return Outcome(job, svc.SKIPPED, job.skip or "campaign gone")
        limiter = self.sender.limiter
        for _loop in range(MAX_RETRY_AFTER_LOOPS):
            await limiter.acquire(job.chat_id, BROADCAST)
            if job.campaign_id in self._stopped:
                return None
            result = await self.sender.send(job, campaign)
            now = self.rt.clock()
            if result.kind == "sent":
                return Outcome(job, svc.SENT, None, result.message_id, now)
            if result.kind == "retry_after":
                self.stats.rate_limited += 1
                obs.RATE_LIMITED.labels(self.channel).inc()
                limiter.pause(result.retry_after)
                continue
            if result.kind == "blocked":
                return Outcome(job, svc.BLOCKED, result.reason, at=now)
            if result.kind == "skipped":
                return Outcome(job, svc.SKIPPED, result.reason, at=now)
            if result.kind == "failed" or job.attempts + 1 >= svc.MAX_ATTEMPTS:
                return Outcome(job, svc.FAILED, result.reason, at=now)
            wait = BACKOFF[min(job.attempts, len(BACKOFF) - 1)]
            return Outcome(job, svc.PENDING, result.reason, at=now,
                           retry_at=now + timedelta(seconds=wait))  # fmt: skip
        # Rate limited over and over: give the row back for later, unsent.
        return Outcome(job, svc.PENDING, "rate limited", at=self.rt.clock(),
                       retry_at=self.rt.clock() + timedelta(seconds=5))  # fmt: skip

    # ------------------------------------------------------------------ writing outcomes

    async def _flusher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self.flush_every)
            self._flush_now.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("dispatch %s: writing outcomes failed (kept for the next try)",
                              self.channel)  # fmt: skip
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        if not self._results:
            return
        outcomes, self._results = self._results, []
        try:
            await self._write(outcomes)
        except BaseException:
            self._results[:0] = outcomes
            raise
        self._held.difference_update(o.job.id for o in outcomes)
        self.stats.flushes += 1
        for o in outcomes:
            key = o.status if o.status != svc.PENDING else "retried"
            self.stats.by_status[key] = self.stats.by_status.get(key, 0) + 1
            obs.SENDS.labels(self.channel, key).inc()

    async def _write(self, outcomes: list[Outcome]) -> None:
        t = Delivery.__table__
        stmt = (
            t.update()
            .where(t.c.id == bindparam("_id"), t.c.claimed_by == bindparam("_me"))
            .values(status=bindparam("_status"), reason=bindparam("_reason"),
                    attempts=bindparam("_attempts"), sent_at=bindparam("_sent_at"),
                    delivered_at=bindparam("_sent_at"), message_id=bindparam("_mid"),
                    next_attempt_at=bindparam("_next"), claimed_by=None, claimed_until=None)
        )  # fmt: skip
        now = self.rt.clock()
        params = [{
            "_id": o.job.id, "_me": self.me, "_status": o.status, "_reason": o.reason,
            "_attempts": o.job.attempts + (0 if o.status == svc.SKIPPED and o.at is None else 1),
            "_sent_at": o.at if o.status == svc.SENT else None, "_mid": o.message_id,
            "_next": o.retry_at or now,
        } for o in outcomes]  # fmt: skip
        blocked = [o.job.identity_id for o in outcomes
                   if o.status == svc.BLOCKED and o.job.identity_id is not None]
        sent = [(o.job.campaign_id, o.job.identity_id, o.at) for o in outcomes
                if o.status == svc.SENT and o.job.identity_id is not None and o.at is not None]
        async with self.rt.sessionmaker() as session, session.begin():
            await session.execute(stmt, params)
            if blocked:
                await session.execute(
                    update(Identity).where(Identity.id.in_(blocked),
                                           Identity.unreachable_at.is_(None))
                    .values(unreachable_at=now).execution_options(synchronize_session=False)
                )  # fmt: skip
            await svc.delivered_events(session, sent, self.channel)  # type: ignore[arg-type]
            if self.channel == "zalo-bot" and sent:
                await self._remember_buttons(session, outcomes)

    async def _remember_buttons(self, session: AsyncSession, outcomes: list[Outcome]) -> None:
        """The Zalo bot has no buttons: people answer "1" or "2", which the engine resolves
        against the last buttons offered, so remember the campaign message's."""
        by_identity = {o.job.identity_id: o for o in outcomes if o.status == svc.SENT}
        for identity in await session.scalars(
                select(Identity).where(Identity.id.in_(list(by_identity)))):  # fmt: skip
            o = by_identity[identity.id]
            campaign = self._campaigns.get(o.job.campaign_id)
            if campaign is None:
                continue
            reply = campaign_reply(campaign, identity.language, self.rt.curriculum)
            identity.state_data = {**(identity.state_data or {}), "_buttons": [
                [b.label, b.payload] for b in reply.flat_buttons]}  # fmt: skip

    async def _finish_campaigns(self) -> None:
        async with self.rt.sessionmaker() as session, session.begin():
            done = await svc.finish(session, self.rt.clock())
        if done:
            log.info("dispatch: %d campaign(s) finished", done)
            self._campaigns.clear()

    async def drained(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Wait until nothing of this channel is pending (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.rt.sessionmaker() as session:
                left = await session.scalar(
                    select(Delivery.id).where(Delivery.channel == self.channel,
                                              Delivery.status == svc.PENDING).limit(1))
            if left is None and not self._results:
                await self._finish_campaigns()
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.channel}: deliveries still pending after {timeout} s")


# ---------------------------------------------------------------------------- wiring


class DispatchService:
    """Every channel's dispatcher of this process (started by `bot.app.Server`)."""

    def __init__(self, dispatchers: list[Dispatcher]) -> None:
        self.dispatchers = dispatchers

    def by_channel(self, name: str) -> Dispatcher | None:
        return next((d for d in self.dispatchers if d.channel == name), None)

    def wake(self) -> None:
        for d in self.dispatchers:
            d.wake()

    async def start(self) -> None:
        for d in self.dispatchers:
            await d.start()

    async def stop(self) -> None:
        for d in self.dispatchers:
            with contextlib.suppress(Exception):
                await d.stop()


def make_dispatchers(rt: Runtime, channels: list[Any]) -> DispatchService:
    """A dispatcher for each channel that can carry campaigns."""
    s = rt.settings
    out: list[Dispatcher] = []
    for channel in channels:
        if channel.name == "telegram":
            limiter = getattr(channel, "limiter", None) or SendLimiter(s.telegram_rate)
            out.append(Dispatcher(rt, TelegramSender(rt, limiter)))
        elif channel.name == "zalo-bot":
            out.append(Dispatcher(rt, ChannelSender(channel, SendLimiter(s.zalo_bot_rate),
                                                    rt.curriculum)))  # fmt: skip
        elif channel.name == "zalo-oa":
            out.append(Dispatcher(rt, ChannelSender(channel, SendLimiter(s.zalo_oa_rate),
                                                    rt.curriculum)))  # fmt: skip
    return DispatchService(out)


async def fire_due_campaigns(rt: Runtime) -> list[int]:
    """The scheduler job: start the scheduled campaigns that are due. On PostgreSQL only the
    process holding the leader lock does it (a transaction-scoped advisory lock, so a crashed
    leader never keeps it); each campaign also moves with a conditional UPDATE, so it fires
    once whatever happens."""
    async with rt.sessionmaker() as session, session.begin():
        if session.bind.dialect.name == "postgresql":
            leader = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                          {"k": LEADER_LOCK})  # fmt: skip
            if not leader:
                return []
        started = await svc.fire_due(
            session, localities=rt.localities, curriculum=rt.curriculum,
            channels=svc.dispatch_channels(rt.settings), now=rt.clock(),
        )  # fmt: skip
    if started:
        log.info("campaigns started on schedule: %s", started)
        wake = rt.engine.extras.get("campaign_started")
        if wake is not None:
            wake()
    return started
