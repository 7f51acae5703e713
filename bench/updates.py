"""Updates per second, latency and CPU per update of the Telegram path, against a baseline.

Simulated citizens do the real journey (tests/journey.py: onboarding, lessons, quiz answers,
with content ids from content.loader.load()) against a local Bot API stand-in
(bench/standin.py) with a round trip of --rtt-ms (default 80). `hocvuso serve` runs as a
separate process in polling mode, as in production; the stand-in and the load generator share
core 0 and the bot runs alone on core 1, so CPU per update is the bot's own.

Phases, per database (SQLite always; PostgreSQL too when HOCVUSO_TEST_PG_URL is set):
1. warm-up: the "learner" citizens go through onboarding (not measured);
2. paced: --rate updates offered per second (default 200), by learners (lessons, quizzes) and
   by newcomers starting at /start. Latency: from the update being queued at the stand-in to
   the bot's first reply reaching it, so one full round trip is included; `_last` variants: to
   the reply that carries the keyboard, i.e. the whole answer;
3. saturation: citizens press on without pause, at several concurrency levels (closed loop);
   `updates_per_s` = steps completed per second at the best level, `cpu_ms_per_update` = the
   bot process's user+system CPU over that window per step.
The baseline (bench/_echo_bot.py: python-telegram-bot with its defaults, HTTPX, one row
committed per update) then goes through the same saturation levels against the same stand-in,
its citizens sending text and waiting for the echo.

Prints one JSON line. Not part of `make test`; `make bench` runs it. BENCH_PROFILE=<file>
records py-spy samples (raw format) of our bot during the saturation phase, if py-spy is
installed in the venv.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.standin import JSONDict, StandIn  # noqa: E402
from content.loader import Curriculum, load  # noqa: E402
from tests.journey import learn_and_pass, onboard  # noqa: E402

TOKEN = "123456789:BENCH-token_for-the-stand-in"
LOAD_CPU, BOT_CPU = 0, 1
TOPIC_STEPS = 46  # a topic of four lessons: menu, lesson, cards, quiz; then its certificate
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOCKED = re.compile(rb"database is locked")
ERROR_LINE = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception|TimedOut)\b.*)$", re.M)


class JourneyError(Exception):
    """The bot did not answer as the journey expects (wrong buttons, or no answer in time)."""


def progress(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- the bot process


class BotProcess:
    """A bot in its own process, pinned to BOT_CPU; CPU and memory read from /proc."""

    def __init__(self, cmd: list[str], env: dict[str, str], workdir: Path) -> None:
        self.log_path = workdir / "bot.log"
        self._log = self.log_path.open("wb")
        pin = {BOT_CPU} if (os.cpu_count() or 1) > 1 else None
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, pin)) if pin else None,
        )  # fmt: skip

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole process (every thread), in seconds."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def stop(self) -> str:
        """Stop the bot (SIGTERM, then SIGKILL) and return what it logged. Waits without
        blocking: the stand-in keeps answering the bot while it shuts down."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        self._log.close()
        return self.log_path.read_bytes().decode(errors="replace")

    def locked_errors(self) -> int:
        return len(LOCKED.findall(self.log_path.read_bytes()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(standin: StandIn, bot: BotProcess, limit: float = 90) -> None:
    """Until the bot long-polls the stand-in."""
    deadline = time.monotonic() + limit
    while standin.get_updates_calls == 0:
        if not bot.alive() or time.monotonic() > deadline:
            raise RuntimeError("the bot did not start polling:\n" + (await bot.stop())[-3000:])
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------- citizens


class Load:
    """The citizens, their pacing and what was measured."""

    def __init__(self, standin: StandIn, *, step_timeout: float = 60) -> None:
        self.standin = standin
        self.step_timeout = step_timeout
        self.citizens: dict[int, Citizen] = {}
        self.mode = "free"  # free: press on | paced: wait for a slot | hold: wait
        self.active = 1 << 30  # citizens with a higher index wait (saturation levels)
        self.min_pause = 0.0
        self.phase = "warmup"
        self.steps: list[tuple[str, float, float, float]] = []  # phase, pushed, first, last
        self.errors: Counter[str] = Counter()
        self._slots: deque[asyncio.Future[None]] = deque()
        self._changed = asyncio.Event()
        standin.on_send = self.on_send

    def on_send(self, chat_id: int, message: JSONDict, at: float) -> None:
        citizen = self.citizens.get(chat_id)
        if citizen is not None:
            citizen.on_message(message, at)

    def set(self, *, mode: str | None = None, active: int | None = None) -> None:
        self.mode = mode or self.mode
        self.active = self.active if active is None else active
        self._changed.set()
        self._changed = asyncio.Event()
        if self.mode != "paced":
            while self._slots:
                slot = self._slots.popleft()
                if not slot.done():
                    slot.set_result(None)

    async def gate(self, citizen: Citizen) -> None:
        """Wait before a citizen's next step as the current mode says."""
        if self.min_pause:
            await asyncio.sleep(self.min_pause)  # a person reads the answer before tapping
        while (
            self.mode == "hold"
            or citizen.index >= self.active
            or (self.phase == "warmup" and citizen.ready.is_set())
        ):
            await self._changed.wait()
        if self.mode == "paced":
            slot = asyncio.get_running_loop().create_future()
            self._slots.append(slot)
            await slot

    async def pace(self, rate: float, until: float) -> tuple[int, int]:
        """Open `rate` slots per second until `until`; returns (slots used, slots missed)."""
        used = missed = n = 0
        start = time.monotonic()
        while (due := start + n / rate) < until:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            n += 1
            while self._slots and self._slots[0].done():
                self._slots.popleft()
            if self._slots:
                self._slots.popleft().set_result(None)
                used += 1
            else:
                missed += 1
        return used, missed


class Citizen:
    """One person in the Telegram app; a `tests.journey.Driver`."""

    def __init__(self, load: Load, index: int, user_id: int) -> None:
        self.load = load
        self.index = index
        self.user: JSONDict = {"id": user_id, "is_bot": False, "first_name": "Lan",
                               "last_name": f"Nguyễn {index}", "language_code": "vi"}  # fmt: skip
        self.buttons: list[tuple[str, str]] = []
        self.keyboard: JSONDict | None = None
        self._done: asyncio.Future[None] | None = None
        self._wants_keyboard = True
        self._first = self._last = 0.0
        self.waiting_since = 0.0  # when the step in progress was sent (0: none)
        self.steps = 0
        self.ready_after: int | None = None  # steps, then `ready` is set (end of warm-up)
        self.ready = asyncio.Event()
        load.citizens[user_id] = self

    def on_message(self, message: JSONDict, at: float) -> None:
        if self._done is None or self._done.done():
            return  # the tail of an earlier answer
        if not self._first:
            self._first = at
        markup = message.get("reply_markup")
        if markup and markup.get("inline_keyboard"):
            self.keyboard = message
            self.buttons = [(str(b.get("text")), str(b.get("callback_data") or b.get("url")))
                            for row in markup["inline_keyboard"] for b in row]  # fmt: skip
        elif self._wants_keyboard:
            return
        self._last = at
        self._done.set_result(None)

    async def _step(self, update: JSONDict, *, wants_keyboard: bool = True) -> None:
        load = self.load
        await load.gate(self)
        self._done = asyncio.get_running_loop().create_future()
        self._wants_keyboard = wants_keyboard
        self._first = self._last = 0.0
        phase = load.phase
        pushed = self.waiting_since = time.monotonic()
        load.standin.push(update)
        try:
            await asyncio.wait_for(self._done, load.step_timeout)
        except TimeoutError:
            raise JourneyError("no answer in time") from None
        finally:
            self.waiting_since = 0.0
        load.steps.append((phase, pushed, self._first, self._last))
        self.steps += 1
        if self.steps == self.ready_after:
            self.ready.set()

    async def say(self, text: str, *, wants_keyboard: bool = True) -> None:
        await self._step(self.load.standin.text_update(self.user, text),
                         wants_keyboard=wants_keyboard)  # fmt: skip

    async def press(self, payload: str) -> None:
        if self.keyboard is None or payload not in (p for _, p in self.buttons):
            raise JourneyError(f"no button {payload}")
        await self._step(self.load.standin.callback_update(self.user, payload, self.keyboard))


async def learner(citizen: Citizen, curriculum: Curriculum,
                  start: asyncio.Event | None = None) -> None:  # fmt: skip
    """Onboarding (after `start`, if given), then lesson after lesson."""
    try:
        if start is not None:
            await start.wait()
        await onboard(citizen)
        while True:
            for module in curriculum.modules:
                for lesson in module.lessons:
                    await learn_and_pass(citizen, curriculum, lesson.id)
    except (JourneyError, AssertionError, StopIteration) as exc:
        citizen.load.errors[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
        citizen.ready.set()


async def echoer(citizen: Citizen) -> None:
    try:
        n = 0
        while True:
            n += 1
            await citizen.say(f"Xin chào {n}", wants_keyboard=False)
    except JourneyError as exc:
        citizen.load.errors[str(exc)] += 1


# ---------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def saturate(
    load: Load, bot: BotProcess, levels: list[int], args: argparse.Namespace,
    on_level: Callable[[int], Awaitable[None]] | None = None,
) -> JSONDict:  # fmt: skip
    """Closed loop at each concurrency level; the level with the most steps per second wins."""
    load.min_pause = 0.0
    load.phase = "saturation"
    tried: dict[str, float] = {}
    best: JSONDict = {}
    for level in levels:
        load.set(mode="free", active=level)
        if on_level is not None:
            await on_level(level)
        await asyncio.sleep(args.settle)
        done0, cpu0, own0, t0 = len(load.steps), bot.cpu_seconds(), time.process_time(), \
            time.monotonic()  # fmt: skip
        await asyncio.sleep(args.seconds)
        done1, cpu1, own1, t1 = len(load.steps), bot.cpu_seconds(), time.process_time(), \
            time.monotonic()  # fmt: skip
        steps, span = done1 - done0, t1 - t0
        rate = round(steps / span, 1)
        tried[str(level)] = rate
        progress(f"{level} citizens: {rate}/s, bot cpu {(cpu1 - cpu0) / span:.2f}, "
                 f"{(cpu1 - cpu0) * 1000 / max(steps, 1):.2f} ms/update")
        stuck = sum(1 for c in load.citizens.values() if 0 < c.waiting_since < t1 - 5)
        if stuck:
            progress(f"{stuck} citizens have waited more than 5 s for an answer")
        if rate >= best.get("updates_per_s", -1):
            best = {
                "updates_per_s": rate,
                "cpu_ms_per_update": round((cpu1 - cpu0) * 1000 / max(steps, 1), 3),
                "bot_cpu_util": round((cpu1 - cpu0) / span, 3),
                "standin_cpu_util": round((own1 - own0) / span, 3),
                "saturation_citizens": level,
            }
    rss, hwm = bot.memory_mb()
    return {**best, "saturation_levels": tried, "rss_mb": round(rss, 1),
            "peak_rss_mb": round(hwm, 1)}  # fmt: skip


def bot_env(standin: StandIn, db_url: str, workdir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOCVUSO_")},
        "HOCVUSO_DATABASE_URL": db_url, "HOCVUSO_TELEGRAM_TOKEN": TOKEN,
        "HOCVUSO_TELEGRAM_API_URL": standin.base_url, "HOCVUSO_WEB_PORT": str(free_port()),
        "HOCVUSO_DATA_DIR": str(workdir / "data"), "HOCVUSO_LOG_LEVEL": "WARNING",
        # Citizens here press on far faster than people do: no flood control.
        "HOCVUSO_FLOOD_MESSAGES": "1000000",
        # The stand-in enforces no Telegram send limit; the bot's own limiter still runs, with
        # a budget high enough not to be what is measured.
        "HOCVUSO_TELEGRAM_RATE": "10000",
        # To compare event loops: BENCH_EVENT_LOOP=asyncio.
        "HOCVUSO_EVENT_LOOP": os.environ.get("BENCH_EVENT_LOOP", "uvloop"),
    }  # fmt: skip


async def wind_down(tasks: list[asyncio.Task[None]], bot: BotProcess) -> tuple[int, str]:
    """Stop the citizens and the bot: ("database is locked" errors, the bot's log)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    locked = bot.locked_errors()
    return locked, await bot.stop()


async def run_ours(standin: StandIn, db_url: str, args: argparse.Namespace,
                   curriculum: Curriculum, workdir: Path) -> JSONDict:  # fmt: skip
    standin.reset()
    bot = BotProcess([sys.executable, "-m", "bot.cli", "serve"],
                     bot_env(standin, db_url, workdir), workdir)  # fmt: skip
    load = Load(standin)
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_ready(standin, bot)
        # 1. warm-up: learners onboard and go some steps further (a different number each,
        # spread over the first topic's ~46 steps, so that the measured phases meet them at
        # every step of a topic, the certificate at its end included), then wait.
        learners = int(args.citizens * (1 - args.newcomers))
        start_newcomers = asyncio.Event()
        ready = []
        for i in range(args.citizens):
            citizen = Citizen(load, i, 10_000_000 + i)
            if i < learners:
                citizen.ready_after = 9 + (i * 7) % TOPIC_STEPS  # onboarding is nine steps
                ready.append(citizen.ready)
            start = None if i < learners else start_newcomers
            tasks.append(asyncio.create_task(learner(citizen, curriculum, start)))
        t_start = time.monotonic()
        waiting = asyncio.gather(*(event.wait() for event in ready))
        while not waiting.done():
            await asyncio.wait([waiting], timeout=10)
            if not bot.alive() or time.monotonic() - t_start > 150:
                raise RuntimeError("warm-up did not finish:\n" + (await bot.stop())[-3000:])
        load.set(mode="hold")
        warmup_steps = len(load.steps)
        await asyncio.sleep(3 * args.rtt_ms / 1000)  # the last answers arrive
        # 2. paced: a fixed offered load; latency.
        load.min_pause = args.rtt_ms / 1000  # people read before they tap
        load.phase = "paced"
        load.set(mode="paced")
        start_newcomers.set()
        t0 = time.monotonic()
        used, missed = await load.pace(args.rate, t0 + args.seconds)
        t1 = time.monotonic()
        paced = [s for s in load.steps if s[0] == "paced" and t0 <= s[1] < t1]
        first = [(f - p) * 1000 for _, p, f, _ in paced]
        for second in range(int(args.seconds)):
            window = [(f - p) * 1000 for _, p, f, _ in paced if t0 + second <= p < t0 + second + 1]
            if window:
                progress(f"paced second {second}: n={len(window)} "
                         f"p50={statistics.median(window):.0f} max={max(window):.0f} ms")
        last = [(la - p) * 1000 for _, p, _, la in paced]
        # 3. saturation.
        profile: list[asyncio.subprocess.Process] = []

        async def on_level(level: int) -> None:
            spy = Path(sys.executable).parent / "py-spy"
            if os.environ.get("BENCH_PROFILE") and level == args.levels[-1] and spy.exists():
                profile.append(await asyncio.create_subprocess_exec(
                    str(spy), "record", "-r", "200", "-f", "raw", "-o",
                    os.environ["BENCH_PROFILE"], "-d", str(int(args.seconds + args.settle)),
                    "-p", str(bot.proc.pid),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip

        sat = await saturate(load, bot, args.levels, args, on_level)
        for spy_process in profile:
            await spy_process.wait()
        result: JSONDict = {
            **sat,
            "p50_ms": round(statistics.median(first), 1) if first else None,
            "p99_ms": round(percentile(first, 0.99), 1) if first else None,
            "p50_last_ms": round(statistics.median(last), 1) if last else None,
            "p99_last_ms": round(percentile(last, 0.99), 1) if last else None,
            "offered_per_s": round(used / (t1 - t0), 1),
            "paced_updates": len(paced),
            "paced_slots_missed": missed,
            "warmup_steps": warmup_steps,
            "journey_errors": sum(load.errors.values()),
        }
        if load.errors:
            result["journey_error_kinds"] = dict(load.errors.most_common(3))
    finally:
        locked, log = await wind_down(tasks, bot)
    result["db_locked_errors"] = locked
    result["bot_errors_logged"] = log.count(" ERROR ")
    if result["bot_errors_logged"]:
        progress(f"errors logged by our bot: {Counter(ERROR_LINE.findall(log)).most_common(5)}")
    return result


async def run_baseline(standin: StandIn, db_url: str, args: argparse.Namespace,
                       workdir: Path) -> JSONDict:  # fmt: skip
    standin.reset()
    env = {**os.environ, "BENCH_TOKEN": TOKEN, "BENCH_API_URL": standin.base_url,
           "BENCH_DB_URL": db_url}  # fmt: skip
    bot = BotProcess([sys.executable, str(ROOT / "bench" / "_echo_bot.py")], env, workdir)
    load = Load(standin)
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_ready(standin, bot)
        load.set(active=0)
        for i in range(max(args.levels)):
            tasks.append(asyncio.create_task(echoer(Citizen(load, i, 20_000_000 + i))))
        sat = await saturate(load, bot, args.levels, args)
    finally:
        locked, log = await wind_down(tasks, bot)
    errors = log.count("Traceback")
    if errors:
        kinds = Counter(ERROR_LINE.findall(log)).most_common(5)
        progress(f"errors logged by the baseline: {kinds}")
    return {**sat, "db_locked_errors": locked, "errors": sum(load.errors.values()) + errors}


# ---------------------------------------------------------------------------- databases


async def pg_database(admin_url: str, name: str, *, drop: bool = False) -> str:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if drop:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def one_database(kind: str, standin: StandIn, args: argparse.Namespace,
                       curriculum: Curriculum) -> JSONDict:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=f"hocvuso-bench-{kind}-") as tmp:
        work = Path(tmp)
        (work / "ours").mkdir()
        (work / "base").mkdir()
        names: list[str] = []
        pg = os.environ.get("HOCVUSO_TEST_PG_URL", "")
        if kind == "sqlite":
            ours_url = f"sqlite+aiosqlite:///{work}/ours/hocvuso.db"
            base_url = f"sqlite+aiosqlite:///{work}/base/echo.db"
        else:
            names = [f"hocvuso_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
            ours_url = await pg_database(pg, names[0])
            base_url = await pg_database(pg, names[1])
        skipped: JSONDict = {"updates_per_s": 0.0, "cpu_ms_per_update": None, "rss_mb": None,
                             "saturation_levels": None, "db_locked_errors": None, "errors": None}
        try:
            progress(f"{kind}: hocvuso")
            ours = (await run_ours(standin, ours_url, args, curriculum, work / "ours")
                    if args.only != "baseline" else skipped)  # fmt: skip
            progress(f"{kind}: baseline")
            base = (await run_baseline(standin, base_url, args, work / "base")
                    if args.only != "ours" else skipped)  # fmt: skip
        finally:
            for name in names:
                await pg_database(pg, name, drop=True)
    return {
        **ours,
        "baseline_updates_per_s": base["updates_per_s"],
        "baseline_cpu_ms_per_update": base["cpu_ms_per_update"],
        "baseline_rss_mb": base["rss_mb"],
        "baseline_saturation_levels": base["saturation_levels"],
        "baseline_db_locked_errors": base["db_locked_errors"],
        "baseline_errors": base["errors"],
        "ratio": round(ours["updates_per_s"] / max(base["updates_per_s"], 0.1), 2),
    }


async def main(args: argparse.Namespace) -> JSONDict:
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # bots hanging up at exit
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {LOAD_CPU})
    curriculum = load()
    standin = StandIn(TOKEN, rtt=args.rtt_ms / 1000)
    await standin.start()
    load_before = os.getloadavg()[0]
    try:
        result: JSONDict = {"bench": "updates"}
        if "sqlite" in args.databases:
            result.update(await one_database("sqlite", standin, args, curriculum))
        if os.environ.get("HOCVUSO_TEST_PG_URL") and "postgresql" in args.databases:
            result["postgresql"] = await one_database("postgresql", standin, args, curriculum)
    finally:
        await standin.stop()
    result["setup"] = {
        "rtt_ms": args.rtt_ms, "rate_per_s": args.rate, "citizens": args.citizens,
        "newcomers": args.newcomers, "seconds_per_window": args.seconds,
        "saturation_citizens_tried": args.levels, "delivery": "polling",
        "cpus": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version(),
        "pinning": f"stand-in + load generator on cpu {LOAD_CPU}, bot on cpu {BOT_CPU}",
        "latency": "update queued at the stand-in -> first reply there (_last: keyboard)",
        "baseline": "bench/_echo_bot.py: PTB defaults (HTTPX) + concurrent_updates, 1 row/update",
        "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip
    return result


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rtt-ms", type=float, default=80.0, help="stand-in round trip")
    parser.add_argument("--rate", type=float, default=200.0, help="offered load, updates/s")
    parser.add_argument("--citizens", type=int, default=400, help="journey citizens")
    parser.add_argument(
        "--newcomers",
        type=float,
        default=0.2,
        help="share of citizens who start at /start in the paced phase",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each window")
    parser.add_argument("--settle", type=float, default=2.0, help="before each saturation window")
    parser.add_argument(
        "--levels",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[50, 150, 400],
        help="saturation concurrency levels",
    )
    parser.add_argument("--only", choices=("ours", "baseline"), help="one bot (to debug)")
    parser.add_argument("--databases", type=lambda v: v.split(","),
                        default=["sqlite", "postgresql"],
                        help="which of sqlite,postgresql (PostgreSQL needs HOCVUSO_TEST_PG_URL)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse_args())), ensure_ascii=False))
