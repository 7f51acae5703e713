"""One send budget per bot, shared by interactive replies and campaign broadcasts.

Telegram allows a bot about 30 messages a second overall and about one a second per private
chat (short bursts tolerated); above that it answers 429 with `retry_after`. Python-telegram-bot's
AIORateLimiter has one queue for everything, so a broadcast makes replies wait behind it. Here
there are two lanes over one budget:

- the budget is a sliding window: at most `capacity` sends in any `window + margin` seconds
  (the 50 ms margin absorbs the jitter between leaving here and arriving at Telegram);
- a reply takes a slot as soon as the window has one; a broadcast send only when no reply is
  waiting for a slot and the window keeps `reserve` slots free, so a reply that comes in
  during a broadcast finds a slot at once instead of queueing behind the broadcast;
- per chat: a broadcast send only to a chat that got nothing during the last second; replies
  are not held back per chat (a reply of two or three messages is a short burst, which
  Telegram tolerates in private chats), unless `chat_burst` caps them;
- `pause(seconds)` after a 429 stops the broadcast lane for that long (replies go on: a
  reply that meets a 429 itself waits and is sent again by the caller).

The limiter is per process: with several processes, give each its share of the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

REPLY, BROADCAST = 0, 1
_Waiter = tuple[Hashable, asyncio.Future[None]]


class SendLimiter:
    """Two-lane sliding-window limiter (see the module docstring)."""

    def __init__(self, rate: float, *, window: float = 1.0, margin: float = 0.05,
                 reserve: int = 1, chat_interval: float = 1.0, chat_burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.capacity = max(1, round(rate * window))
        self.span = window + margin
        self.reserve = min(reserve, self.capacity - 1)
        self.chat_span = chat_interval + margin
        self.chat_burst = chat_burst
        self.clock = clock
        self._sent: deque[float] = deque()
        self._chats: dict[Hashable, deque[float]] = {}
        self._waiters: tuple[deque[_Waiter], deque[_Waiter]] = (deque(), deque())
        self._paused_until = 0.0
        # Broadcast sends are paced evenly (never in bursts), so slots free up one by one and
        # a reply never waits for a whole burst to leave the window.
        self.interval = self.span / max(1, self.capacity - self.reserve)
        self._catch_up = max(self.interval, 0.005)
        self._broadcast_next = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.granted = [0, 0]  # sends let through, per lane

    # ------------------------------------------------------------------ public

    async def acquire(self, chat: Hashable, lane: int = REPLY) -> None:
        """Wait for a slot to send one message to `chat` in `lane`."""
        now = self.clock()
        ahead = self._waiters[REPLY] or (lane == BROADCAST and self._waiters[BROADCAST])
        if not ahead and self._take(chat, lane, now):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[lane].append((chat, future))
        self._wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(chat)  # granted and then cancelled: give the slot back
            raise

    def pause(self, seconds: float) -> None:
        """Hold broadcast sends for `seconds` (Telegram's retry_after)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)
        self._wake()

    @property
    def waiting(self) -> tuple[int, int]:
        return len(self._waiters[REPLY]), len(self._waiters[BROADCAST])

    # ------------------------------------------------------------------ inside

    def _purge(self, now: float) -> None:
        sent, edge = self._sent, now - self.span
        while sent and sent[0] <= edge:
            sent.popleft()
        if len(self._chats) > 4096:
            edge = now - self.chat_span
            for key in [k for k, q in self._chats.items() if not q or q[-1] <= edge]:
                del self._chats[key]

    def _chat_ok(self, chat: Hashable, lane: int, now: float) -> bool:
        recent = self._chats.get(chat)
        if not recent:
            return True
        edge = now - self.chat_span
        while recent and recent[0] <= edge:
            recent.popleft()
        if lane == BROADCAST:
            return not recent
        return self.chat_burst is None or len(recent) < self.chat_burst

    def _room(self, lane: int) -> bool:
        limit = self.capacity if lane == REPLY else self.capacity - self.reserve
        return len(self._sent) < limit

    def _take(self, chat: Hashable, lane: int, now: float) -> bool:
        self._purge(now)
        if lane == BROADCAST and (now < self._paused_until or now < self._broadcast_next):
            return False
        if not self._room(lane) or not self._chat_ok(chat, lane, now):
            return False
        self._record(chat, now, lane)
        return True

    def _record(self, chat: Hashable, now: float, lane: int) -> None:
        if lane == BROADCAST:
            self._broadcast_next = max(self._broadcast_next, now - self._catch_up) + self.interval
        self._sent.append(now)
        self._chats.setdefault(chat, deque()).append(now)
        self.granted[lane] += 1

    def _release(self, chat: Hashable) -> None:
        if self._sent:
            self._sent.pop()
        recent = self._chats.get(chat)
        if recent:
            recent.pop()
        self._wake()

    def _grant(self, lane: int, now: float) -> tuple[bool, float | None]:
        """Let waiters of `lane` through while there is room. Returns (blocked by the global
        budget, earliest time a skipped waiter's chat is free)."""
        queue = self._waiters[lane]
        skipped: list[_Waiter] = []
        chat_free: float | None = None
        blocked = False
        while queue:
            chat, future = queue[0]
            if future.done():
                queue.popleft()
                continue
            if not self._room(lane):
                blocked = True
                break
            if lane == BROADCAST and now < self._broadcast_next:
                break
            if not self._chat_ok(chat, lane, now):
                skipped.append(queue.popleft())
                free = self._chats[chat][0] + self.chat_span
                chat_free = free if chat_free is None else min(chat_free, free)
                continue
            queue.popleft()
            self._record(chat, now, lane)
            future.set_result(None)
        queue.extendleft(reversed(skipped))
        return blocked, chat_free

    def _wake(self) -> None:
        """Grant what can be granted now and set a timer for the next chance."""
        now = self.clock()
        self._purge(now)
        reply_blocked, reply_chat = self._grant(REPLY, now)
        times = [t for t in (reply_chat,) if t is not None]
        if reply_blocked and self._sent:
            times.append(self._sent[0] + self.span)
        if self._waiters[BROADCAST]:
            if now < self._paused_until:
                times.append(self._paused_until)
            elif not reply_blocked:  # replies first: none is waiting for a slot
                blocked, chat_free = self._grant(BROADCAST, now)
                if self._waiters[BROADCAST] and now < self._broadcast_next:
                    times.append(self._broadcast_next)
                if blocked and self._sent:
                    cut = len(self._sent) - (self.capacity - self.reserve)
                    times.append(self._sent[max(0, cut)] + self.span)
                if chat_free is not None:
                    times.append(chat_free)
        if not times:
            return
        at = max(min(times), now + 0.0005)
        if self._timer is not None and not self._timer.cancelled():
            if self._timer_at <= at:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = at
        self._timer = loop.call_later(at - now, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()


# ---------------------------------------------------------------------------- PTB

LIMITED = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendAudio", "sendVideo", "sendVoice",
    "sendAnimation", "sendSticker", "sendMediaGroup", "sendLocation", "copyMessage",
    "forwardMessage", "editMessageText", "editMessageCaption", "editMessageReplyMarkup",
})  # fmt: skip
RETRIES_AFTER_429 = 2


class ReplyRateLimiter(BaseRateLimiter[int]):
    """The Telegram channel's replies through the shared `SendLimiter` (reply lane). A 429
    pauses the broadcast lane and the reply is sent again after `retry_after`."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: SendLimiter) -> None:
        self.limiter = limiter

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if endpoint not in LIMITED:
            return await callback(*args, **kwargs)
        chat = str(data.get("chat_id", ""))
        lane = BROADCAST if rate_limit_args == BROADCAST else REPLY
        for attempt in range(RETRIES_AFTER_429 + 1):
            await self.limiter.acquire(chat, lane)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt == RETRIES_AFTER_429:
                    raise
                wait = exc.retry_after
                seconds = wait.total_seconds() if hasattr(wait, "total_seconds") else float(wait)
                self.limiter.pause(seconds)
                await asyncio.sleep(seconds)
        raise AssertionError("unreachable")
