"""Composition root: settings -> database -> content -> engine -> channels, scheduler, web."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from bot import observability
from bot.db.session import make_engine, make_sessionmaker
from bot.engine import Clock, Engine, utc_now
from bot.localities import LocalityIndex
from bot.runtime import Runtime
from bot.settings import Settings
from content.loader import load

log = logging.getLogger(__name__)


def build_runtime(settings: Settings, *, clock: Clock = utc_now) -> Runtime:
    db = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(db)
    curriculum = load()
    localities = LocalityIndex(province_codes=settings.provinces)
    engine = Engine(sessionmaker, curriculum, localities, settings, clock=clock)
    return Runtime(settings, db, sessionmaker, curriculum, localities, engine, clock)


def make_channels(rt: Runtime) -> list:
    """Every channel whose settings are present."""
    channels: list = []
    s = rt.settings
    if s.telegram_token is not None:
        from bot.channels.ratelimit import SendLimiter
        from bot.channels.telegram.channel import TelegramChannel

        channels.append(TelegramChannel(
            rt.engine, s.telegram_token.get_secret_value(), api_url=s.telegram_api_url,
            webhook=s.telegram_webhook,
            webhook_secret=s.webhook_secret.get_secret_value() if s.webhook_secret else None,
            public_url=s.public_url,
            proxy=s.telegram_proxy.get_secret_value() if s.telegram_proxy else None,
            limiter=SendLimiter(s.telegram_rate),
        ))  # fmt: skip
    from bot.channels.zalo.setup import zalo_channels

    channels.extend(zalo_channels(rt))
    return channels


class Server:
    """`hocvuso serve` as an object, so tests can start and stop it in-process."""

    def __init__(self, rt: Runtime, channels: list) -> None:
        self.rt = rt
        self.channels = channels
        self.runner: web.AppRunner | None = None
        self.scheduler = None
        self.dispatch = None  # campaign dispatchers (scheduler/dispatch.py)
        self.port: int | None = None

    async def start(self) -> None:
        from bot.web.server import make_web_app
        from scheduler.setup import make_scheduler

        routes = [r for ch in self.channels for r in ch.routes()]
        app = make_web_app(self.rt, routes, health=self.health)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.rt.settings.web_host, self.rt.settings.web_port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1] if sockets else self.rt.settings.web_port
        log.info("web server on http://%s:%s", self.rt.settings.web_host, self.port)
        self.scheduler = make_scheduler(self.rt)
        self.scheduler.start()
        for channel in self.channels:
            await channel.start()
            self.rt.senders[channel.name] = channel.send
        observability.SCRAPE_HOOKS[:] = [self._refresh_backlog]
        from scheduler.dispatch import make_dispatchers

        self.dispatch = make_dispatchers(self.rt, self.channels)
        await self.dispatch.start()
        self.rt.engine.extras["campaign_started"] = self.dispatch.wake
        self.rt.engine.extras["campaign_channels"] = tuple(
            d.channel for d in self.dispatch.dispatchers)
        # What start-up loaded (course, communes, libraries: ~250,000 objects) lives as long as
        # the process. Keep it out of the collector's full passes, which would otherwise stop
        # the event loop for ~100 ms every so often under load.
        gc.collect()
        gc.freeze()

    async def stop(self, grace: float = 8.0) -> None:
        """Graceful stop: take no new updates, let the ones in progress finish (up to
        `grace` seconds), stop the jobs, then close the web server and the database."""
        async def stop_channel(channel: Any) -> None:
            with contextlib.suppress(Exception):
                await channel.stop()

        # Broadcasts and channels stop side by side, so the waits do not add up.
        stopping = [stop_channel(ch) for ch in reversed(self.channels)]
        if self.dispatch is not None:
            stopping.append(self.dispatch.stop())
        await asyncio.gather(*stopping)
        try:
            async with asyncio.timeout(grace):
                await self.rt.engine.wait_idle()
        except TimeoutError:
            log.warning("stopping with %d update(s) still in progress", self.rt.engine.in_flight)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.runner is not None:
            await self.runner.cleanup()
        await self.rt.close()

    async def _refresh_backlog(self) -> None:
        """Campaign deliveries still pending, per channel, for /metrics."""
        from sqlalchemy import func, select

        from bot.db.models import Delivery

        async with self.rt.sessionmaker() as session:
            rows = await session.execute(
                select(Delivery.channel, func.count()).where(Delivery.status == "pending")
                .group_by(Delivery.channel))  # fmt: skip
            backlog = dict(rows.all())
        for channel in self.channels:
            observability.OUTBOX_BACKLOG.labels(channel.name).set(backlog.get(channel.name, 0))

    def health(self) -> dict[str, object]:
        """What /healthz reports besides the database: channels and the scheduler."""
        channels = {ch.name: bool(getattr(ch, "healthy", True)) for ch in self.channels}
        scheduler = bool(self.scheduler is not None and self.scheduler.running)
        return {"channels": channels, "scheduler": scheduler,
                "ok": scheduler and all(channels.values())}


async def serve(settings: Settings) -> None:
    rt = build_runtime(settings)
    channels = make_channels(rt)
    if not channels:
        print(
            "No channel is configured: set HOCVUSO_TELEGRAM_TOKEN (from @BotFather) to run on "
            "Telegram, HOCVUSO_ZALO_BOT_TOKEN or the HOCVUSO_ZALO_OA_* settings for Zalo.\n"
            "Starting the console chat instead (the same bot, in this terminal).\n",
            file=sys.stderr,
        )
        from bot.channels.console import run_console

        try:
            await run_console(rt.engine)
        finally:
            await rt.close()
        return
    server = Server(rt, channels)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await server.stop()


async def chat(settings: Settings) -> None:
    from bot.channels.console import run_console

    rt = build_runtime(settings)
    try:
        await run_console(rt.engine)
    finally:
        await rt.close()
