"""Campaign broadcast throughput and the replies' latency during a broadcast.

A real `hocvuso serve` process (polling, SQLite) talks to a Bot API stand-in (bench/standin.py
plus Telegram's limits: at most `--cap` sends in any second overall, at most 3 to one chat in
a second, 429 with retry_after above that) with a network round trip of --rtt-ms (default 80,
as bench/updates.py). The bot runs alone on core 1; the stand-in and the load on core 0.

1. idle: 50 learners answer quiz questions (think time 10-30 s) with no broadcast running:
   `p99_reply_idle_ms` = from the answer being queued at the stand-in to the first message of
   the bot's reply arriving there;
2. broadcast: a campaign to 10,000 recipients, the same learners answering meanwhile:
   `rate_per_s` = every send the stand-in accepted (broadcast and replies) while the broadcast
   still had recipients left, per second; `p99_reply_ms`; `lost` (recipients who never got
   it), `duplicates`; `rss_mb` = the bot process's peak resident memory;
3. the same with the cap raised to 1,000/s (paid broadcasts): `rate_1000_per_s` (the average
   over the broadcast) and `peak_1000_per_s` (the best second);
4. no cap at the stand-in and the bot's limiter at --uncapped-rate (3,000/s): what one process
   can send, `rate_uncapped_per_s`.

Prints one JSON line. Not part of `make test`; `make bench` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.standin import ApiError, JSONDict, StandIn  # noqa: E402

TOKEN = "123456789:BENCH-token_for-the-stand-in"
LOAD_CPU, BOT_CPU = 0, 1
FIRST_RECIPIENT = 500_000
LESSON = "vneid-cai-dat"


class LimitedStandIn(StandIn):
    """The stand-in with Telegram's limits, and a record of every accepted send."""

    def __init__(self, *, cap: float, per_chat: int = 3, rtt: float) -> None:
        super().__init__(TOKEN, rtt=rtt, on_send=self._sent)
        self.cap = cap
        self.per_chat = per_chat
        self.window: deque[float] = deque()
        self.chats: dict[int, deque[float]] = {}
        self.accepted: list[tuple[float, int]] = []  # (arrival, chat id)
        self.rejected_429 = 0
        self.rejections: Counter[str] = Counter()  # 429s by limit (overall | chat) and chat kind
        self.waiters: dict[int, asyncio.Future[tuple[float, JSONDict]]] = {}
        self.last_keyboard: dict[int, JSONDict] = {}
        self.received: dict[int, list[tuple[float, str]]] = {}

    def _gate(self, chat_id: int) -> None:
        now = time.monotonic()
        chat = self.chats.setdefault(chat_id, deque())
        for name, window, limit in (("overall", self.window, self.cap),
                                    ("chat", chat, self.per_chat)):  # fmt: skip
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                self.rejected_429 += 1
                who = "broadcast" if chat_id >= FIRST_RECIPIENT else "reply"
                self.rejections[f"{name}_{who}"] += 1
                retry = max(1, math.ceil(window[0] + 1.0 - now))
                raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)
        self.window.append(now)
        chat.append(now)

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = int(params.get("chat_id") or 0)
        self._gate(chat_id)
        return await super()._send_message(params)

    def _sent(self, chat_id: int, message: JSONDict, at: float) -> None:
        self.accepted.append((at, chat_id))
        if chat_id >= FIRST_RECIPIENT:  # which campaign reached whom, to explain a duplicate
            text = str(message.get("text", ""))[:60]
            self.received.setdefault(chat_id, []).append((round(at, 3), text))
        if "reply_markup" in message:
            self.last_keyboard[chat_id] = message
        waiter = self.waiters.pop(chat_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result((at, message))


# ---------------------------------------------------------------------------- setup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(url: str, recipients: int, learners: int) -> None:
    """Recipients (members of HPN-A, chats from 500,000) and learners (chats 1..n)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from bot.app import build_runtime
    from bot.db.models import Identity, Person
    from bot.domain import CONSENT_VERSION
    from bot.settings import Settings
    from tests import campaigndata

    rt = build_runtime(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    try:
        await campaigndata.seed(rt.sessionmaker, rt.localities, recipients,
                                first_chat=FIRST_RECIPIENT)  # fmt: skip
        now = datetime.now(UTC)
        async with rt.sessionmaker() as s, s.begin():
            for i in range(1, learners + 1):
                person = Person(display_name=f"Learner {i}", commune_code=14215, language="vi",
                                consent_version=CONSENT_VERSION, consented_at=now,
                                created_at=now, last_active_at=now - timedelta(days=1))
                person.memberships = []
                s.add(person)
                await s.flush()
                await s.execute(insert(Identity).values(
                    channel="telegram", external_id=str(i), chat_id=str(i), consent="given",
                    person_id=person.id, language="vi", state="", state_data={},
                    created_at=now, last_inbound_at=now))  # fmt: skip
    finally:
        await rt.close()


async def start_campaign(url: str) -> int:
    from bot.app import build_runtime
    from bot.settings import Settings
    from tests import campaigndata

    settings = Settings(_env_file=None, database_url=url, telegram_token=TOKEN)  # type: ignore[call-arg]
    rt = build_runtime(settings)
    try:
        campaign = await campaigndata.start_campaign(rt.sessionmaker, rt.localities,
                                                     rt.curriculum)  # fmt: skip
        return campaign.id
    finally:
        await rt.close()


def start_bot(url: str, api: LimitedStandIn, data: Path, rate: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HOCVUSO_DATABASE_URL": url, "HOCVUSO_TELEGRAM_TOKEN": TOKEN,
           "HOCVUSO_TELEGRAM_API_URL": api.base_url, "HOCVUSO_WEB_PORT": str(free_port()),
           "HOCVUSO_DATA_DIR": str(data), "HOCVUSO_TELEGRAM_RATE": str(rate),
           "HOCVUSO_TELEGRAM_PAID_BROADCAST": "1" if rate > 30 else "0",
           "HOCVUSO_LOG_LEVEL": "WARNING", "HOCVUSO_FLOOD_MESSAGES": "100000"}  # fmt: skip
    log = (data / "bot.log").open("ab")

    def pin() -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {BOT_CPU})

    return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=data, env=env,
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin)  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def peak_rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------------------- learners


class Learner:
    """Answers quiz questions through button presses and times the bot's first reply."""

    def __init__(self, api: LimitedStandIn, chat_id: int, questions: list[Any]) -> None:
        self.api = api
        self.user = {"id": chat_id, "is_bot": False, "first_name": f"L{chat_id}",
                     "language_code": "vi"}  # fmt: skip
        self.chat_id = chat_id
        self.questions = questions
        self.latencies: list[tuple[float, float]] = []  # (sent at, ms)

    async def press(self, data: str) -> tuple[float, JSONDict]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[float, JSONDict]] = loop.create_future()
        self.api.waiters[self.chat_id] = future
        message = self.api.last_keyboard.get(self.chat_id) or {
            "message_id": 1, "date": int(time.time()), "text": "…",
            "chat": {"id": self.chat_id, "type": "private"}, "from": self.api.bot_user}
        pushed = time.monotonic()
        self.api.push(self.api.callback_update(self.user, data, message))
        at, reply = await asyncio.wait_for(future, 30)
        self.latencies.append((pushed, (at - pushed) * 1000))
        await asyncio.sleep(0.5)  # the rest of the reply (the next question) arrives
        return at, reply

    async def run(self, until: asyncio.Event, rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(0, 10))
        while not until.is_set():
            await self.press(f"quiz:{LESSON}")
            self.latencies.pop()  # opening the quiz is not an answer
            for question in self.questions:
                await asyncio.sleep(rng.uniform(10, 30))  # reading, thinking
                if until.is_set():
                    return
                await self.press(f"ans:{LESSON}:{question.id}:{question.answer + 1}")


def tightest(times: list[float], n: int) -> float | None:
    """The shortest time in which the stand-in accepted n + 1 sends (ms): above 1,000 ms, the
    bot never needed more than the cap in any second."""
    if n <= 0 or len(times) <= n:
        return None
    return round(min(b - a for a, b in zip(times, times[n:], strict=False)) * 1000, 1)


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1)


# ---------------------------------------------------------------------------- phases


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot.db.migrate import upgrade
    from content.loader import load

    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {LOAD_CPU})
    questions = list(load().lessons[LESSON].quiz)
    rng = random.Random(7)
    result: dict[str, Any] = {"recipients": args.recipients, "learners": args.learners,
                              "cap_per_s": args.cap, "rtt_ms": args.rtt_ms}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hocvuso-bcast-") as tmp:
        data = Path(tmp)
        url = f"sqlite+aiosqlite:///{data / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        await seed(url, args.recipients, args.learners)
        if args.only_fast:
            return {**result, **await fast(url, data, args)}
        api = LimitedStandIn(cap=args.cap, rtt=args.rtt_ms / 1000)
        await api.start()
        bot = start_bot(url, api, data, args.cap)
        stop = asyncio.Event()
        learners = [Learner(api, i, questions) for i in range(1, args.learners + 1)]
        tasks = [asyncio.create_task(lr.run(stop, rng)) for lr in learners]
        try:
            await asyncio.sleep(args.idle_s)
            idle_end = time.monotonic()
            idle = [ms for lr in learners for at, ms in lr.latencies if at < idle_end]
            campaign = await start_campaign(url)
            cpu0, wall0, own0 = cpu_seconds(bot.pid), time.monotonic(), time.process_time()
            first = last = None
            while True:
                got = {c for _t, c in api.accepted if c >= FIRST_RECIPIENT}
                if len(got) >= args.recipients:
                    break
                if bot.poll() is not None:
                    raise RuntimeError("the bot stopped; see its log")
                await asyncio.sleep(0.5)
            wall = time.monotonic() - wall0
            cpu, own = (cpu_seconds(bot.pid) - cpu0) / wall, (time.process_time() - own0) / wall
            times = [t for t, c in api.accepted if c >= FIRST_RECIPIENT]
            first, last = min(times), max(times)
            during = [t for t, _c in api.accepted if first <= t <= last]
            busy = [ms for lr in learners for at, ms in lr.latencies if first <= at <= last]
            sends = Counter(c for _t, c in api.accepted if c >= FIRST_RECIPIENT)
            result.update({
                "rate_per_s": round(len(during) / (last - first), 2),
                "broadcast_s": round(last - first, 1),
                "p99_reply_ms": p99(busy), "p99_reply_idle_ms": p99(idle),
                "p50_reply_ms": p99([]) if not busy else round(sorted(busy)[len(busy) // 2], 1),
                "replies_during": len(busy), "replies_idle": len(idle),
                "lost": args.recipients - len(sends),
                "duplicates": sum(n - 1 for n in sends.values()),
                "rejected_429": api.rejected_429,
                "rejected_429_by": dict(api.rejections),
                "tightest_30_ms": tightest(sorted(during), int(args.cap)),
                "campaign": campaign,
                "bot_cpu_pct": round(cpu * 100, 1), "standin_cpu_pct": round(own * 100, 1),
            })  # fmt: skip
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            result["rss_mb"] = round(peak_rss_mb(bot.pid), 1)
            bot.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                bot.wait(30)
            await api.stop()
        if args.fast_cap:
            result.update(await fast(url, data, args))
    return result


async def fast(url: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same recipients again with the cap at 1,000/s: the highest rate one process
    reaches (no learners); then once more with no cap at the stand-in and the bot's own
    limiter at --uncapped-rate, to show what one process can send when the API does not
    hold it back."""
    figures = await broadcast_alone(url, data, args, cap=args.fast_cap, rate=args.fast_cap)
    result = {"fast_cap_per_s": args.fast_cap,
              **{f"{k}_1000": v for k, v in figures.items()}}  # fmt: skip
    result["rate_1000_per_s"] = result.pop("rate_1000")
    result["peak_1000_per_s"] = result.pop("peak_1000")
    if args.uncapped_rate:
        free = await broadcast_alone(url, data, args, cap=math.inf, rate=args.uncapped_rate)
        result.update({
            "uncapped_limiter_per_s": args.uncapped_rate, "rate_uncapped_per_s": free["rate"],
            "peak_uncapped_per_s": free["peak"], "lost_uncapped": free["lost"],
            "duplicates_uncapped": free["duplicates"], "bot_cpu_pct_uncapped": free["bot_cpu_pct"],
        })  # fmt: skip
    return result


async def broadcast_alone(url: str, data: Path, args: argparse.Namespace, *, cap: float,
                          rate: float) -> dict[str, Any]:  # fmt: skip
    """A campaign to every recipient with no learners: the stand-in accepts `cap` sends a
    second, the bot's limiter allows `rate`."""
    api = LimitedStandIn(cap=cap, rtt=args.rtt_ms / 1000)
    await api.start()
    bot = start_bot(url, api, data, rate)
    try:
        await asyncio.sleep(3)  # started and idle
        await start_campaign(url)
        cpu0, wall0, own0 = cpu_seconds(bot.pid), time.monotonic(), time.process_time()
        deadline = time.monotonic() + 300
        while len({c for _t, c in api.accepted}) < args.recipients:
            if time.monotonic() > deadline or bot.poll() is not None:
                raise RuntimeError("the fast broadcast did not finish; see the bot's log")
            await asyncio.sleep(0.2)
        wall = time.monotonic() - wall0
        cpu, own = (cpu_seconds(bot.pid) - cpu0) / wall, (time.process_time() - own0) / wall
        times = sorted(t for t, _c in api.accepted)
        per_second = Counter(int(t - times[0]) for t in times)
        sends = Counter(c for _t, c in api.accepted)
        for chat in [c for c, n in sends.items() if n > 1][:5]:
            print(f"[bench] duplicate to chat {chat}: {api.received.get(chat)}", file=sys.stderr)
        return {
            "rate": round(len(times) / (times[-1] - times[0]), 1),
            "peak": max(per_second.values()),
            "lost": args.recipients - len(sends),
            "duplicates": sum(n - 1 for n in sends.values()),
            "rejected_429": api.rejected_429,
            "rss_mb": round(peak_rss_mb(bot.pid), 1),
            "bot_cpu_pct": round(cpu * 100, 1),  # of its one core, during the broadcast
            "standin_cpu_pct": round(own * 100, 1),  # the stand-in and the load, core 0
            "tightest_ms": tightest(times, int(cap)) if math.isfinite(cap) else None,
        }
    finally:
        bot.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            bot.wait(30)
        await api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--learners", type=int, default=50)
    parser.add_argument("--cap", type=float, default=30)
    parser.add_argument("--fast-cap", type=float, default=1000, help="0: skip that phase")
    parser.add_argument("--uncapped-rate", type=float, default=3000,
                        help="the bot's limiter with no cap at the stand-in; 0: skip")
    parser.add_argument("--only-fast", action="store_true", help="only phase 3 (to debug)")
    parser.add_argument("--rtt-ms", type=float, default=80)
    parser.add_argument("--idle-s", type=float, default=60)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
