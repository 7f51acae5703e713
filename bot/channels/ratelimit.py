"""One send budget per bot, shared by interactive replies and campaign broadcasts.

Telegram allows a bot about 30 messages a second overall and about one a second per private
chat (short bursts tolerated); above that it answers 429 with `retry_after`. Python-telegram-bot's
AIORateLimiter has one queue for everything, so a broadcast makes replies wait behind it. Here
there are two lanes over one budget:

- the budget is a sliding window: at most `capacity` sends in any `window + margin` seconds.
  A send is dated when its sender actually resumes with the slot, not when the slot was
  granted, so the event loop's own lag does not eat into the margin; the 35 ms margin only
  absorbs the network's jitter between two sends (every ms of margin costs 0.1 % of the rate);
- a reply takes a slot as soon as the window has one, and is never queued behind broadcast
  sends: whenever a slot frees, a waiting reply gets it first;
- broadcast sends are paced evenly through the window (one every `span / (capacity -
  reserve)` seconds, catching up a little after a late wake-up), never in bursts, so slots free
  one by one and a reply waits at most one pacing interval even when the window is full; and
  broadcasts alone never hold more than `capacity - reserve` slots of the window, so when no
  reply has been sent lately a reply finds a free slot at once;
- per chat: a broadcast send only to a chat that got nothing during the last second. Replies
  may burst (Telegram tolerates short bursts in a private chat and does not say how long),
  until the API shows where it draws the line: a reply that draws a 429 right after two or more
  messages to its chat sets `chat_burst` to that many, and from then on replies to a chat keep
  to it (they wait a moment instead of drawing 429s, each of which stops the broadcast);
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
# A send in the window: [time, lane]; the time moves to when the sender resumed.
_Entry = list[Any]
_Waiter = tuple[Hashable, asyncio.Future[_Entry]]


class SendLimiter:
    """Two-lane sliding-window limiter (see the module docstring)."""

    def __init__(self, rate: float, *, window: float = 1.0, margin: float = 0.035,
                 reserve: int = 1, chat_interval: float = 1.0, chat_burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.capacity = max(1, round(rate * window))
        self.span = window + margin
        self.reserve = max(0, min(reserve, self.capacity - 1))
        self.chat_span = chat_interval + margin
        self.chat_burst = chat_burst
        self.clock = clock
        self._sent: deque[_Entry] = deque()  # every send in the window
        self._broadcasts: deque[_Entry] = deque()  # the broadcast sends among them
        self._chats: dict[Hashable, deque[_Entry]] = {}
        self._waiters: tuple[deque[_Waiter], deque[_Waiter]] = (deque(), deque())
        self._paused_until = 0.0
        # Broadcast sends are paced evenly (never in bursts), so slots free up one by one and
        # a reply never waits for a whole burst to leave the window. After a late wake-up the
        # pace catches up by a few sends at most (the window still bounds them).
        self.interval = self.span / max(1, self.capacity - self.reserve)
        self._catch_up = max(self.interval, 0.02 * self.span)
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
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._waiters[lane].append((chat, future))
        self._wake()
        try:
            entry = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(chat, future.result())  # granted, then cancelled: give it back
            raise
        # Dated when the sender goes on, so a late resumption does not shorten the gap to the
        # send that will take this slot over one span later.
        resumed = self.clock()
        if resumed > entry[0]:
            entry[0] = resumed

    def pause(self, seconds: float) -> None:
        """Hold broadcast sends for `seconds` (Telegram's retry_after)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)
        self._wake()

    def learn_chat_burst(self, chat: Hashable) -> bool:
        """A reply to `chat` drew a 429: if the chat had just had other messages, take it as
        the API's per-chat burst limit and keep replies to it from now on. Returns whether it
        did."""
        recent = self._chats.get(chat)
        if not recent:
            return False
        edge = self.clock() - self.chat_span
        while recent and recent[0][0] <= edge:
            recent.popleft()
        before = len(recent) - 1  # the refused send is the chat's last one
        if before < 2:
            return False
        self.chat_burst = before if self.chat_burst is None else min(self.chat_burst, before)
        return True

    @property
    def waiting(self) -> tuple[int, int]:
        return len(self._waiters[REPLY]), len(self._waiters[BROADCAST])

    # ------------------------------------------------------------------ inside

    def _purge(self, now: float) -> None:
        edge = now - self.span
        for sent in (self._sent, self._broadcasts):
            while sent and sent[0][0] <= edge:
                sent.popleft()
        if len(self._chats) > 4096:
            edge = now - self.chat_span
            for key in [k for k, q in self._chats.items() if not q or q[-1][0] <= edge]:
                del self._chats[key]

    def _chat_ok(self, chat: Hashable, lane: int, now: float) -> bool:
        recent = self._chats.get(chat)
        if not recent:
            return True
        edge = now - self.chat_span
        while recent and recent[0][0] <= edge:
            recent.popleft()
        if lane == BROADCAST:
            return not recent
        return self.chat_burst is None or len(recent) < self.chat_burst

    def _room(self, lane: int) -> bool:
        if len(self._sent) >= self.capacity:
            return False
        return lane == REPLY or len(self._broadcasts) < self.capacity - self.reserve

    def _room_at(self) -> float:
        """When the broadcast lane has room again (the window is full or holds its share)."""
        at = 0.0
        if len(self._sent) >= self.capacity:
            at = self._sent[len(self._sent) - self.capacity][0] + self.span
        share = self.capacity - self.reserve
        if len(self._broadcasts) >= share:
            at = max(at, self._broadcasts[len(self._broadcasts) - share][0] + self.span)
        return at

    def _take(self, chat: Hashable, lane: int, now: float) -> bool:
        self._purge(now)
        if lane == BROADCAST and (now < self._paused_until or now < self._broadcast_next):
            return False
        if not self._room(lane) or not self._chat_ok(chat, lane, now):
            return False
        self._record(chat, now, lane)
        return True

    def _record(self, chat: Hashable, now: float, lane: int) -> _Entry:
        entry: _Entry = [now, lane]
        if lane == BROADCAST:
            self._broadcast_next = max(self._broadcast_next, now - self._catch_up) + self.interval
            self._broadcasts.append(entry)
        self._sent.append(entry)
        self._chats.setdefault(chat, deque()).append(entry)
        self.granted[lane] += 1
        return entry

    def _release(self, chat: Hashable, entry: _Entry) -> None:
        for sent in (self._sent, self._broadcasts, self._chats.get(chat)):
            if sent is not None:
                for i, e in enumerate(sent):
                    if e is entry:
                        del sent[i]
                        break
        self.granted[entry[1]] -= 1
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
                recent = self._chats[chat]
                first = recent[0] if lane == BROADCAST or self.chat_burst is None else (
                    recent[len(recent) - self.chat_burst])  # fmt: skip
                free = first[0] + self.chat_span
                chat_free = free if chat_free is None else min(chat_free, free)
                continue
            queue.popleft()
            future.set_result(self._record(chat, now, lane))
        queue.extendleft(reversed(skipped))
        return blocked, chat_free

    def _wake(self) -> None:
        """Grant what can be granted now and set a timer for the next chance."""
        now = self.clock()
        self._purge(now)
        reply_blocked, reply_chat = self._grant(REPLY, now)
        times = [t for t in (reply_chat,) if t is not None]
        if reply_blocked and self._sent:
            times.append(self._sent[0][0] + self.span)
        if self._waiters[BROADCAST]:
            if now < self._paused_until:
                times.append(self._paused_until)
            elif not reply_blocked:  # replies first: none is waiting for a slot
                blocked, chat_free = self._grant(BROADCAST, now)
                if self._waiters[BROADCAST] and now < self._broadcast_next:
                    times.append(self._broadcast_next)
                if blocked:
                    times.append(self._room_at())
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
                if lane == REPLY:
                    self.limiter.learn_chat_burst(chat)
                self.limiter.pause(seconds)
                await asyncio.sleep(seconds)
        raise AssertionError("unreachable")
