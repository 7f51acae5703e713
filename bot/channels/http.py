"""One lazily opened aiohttp ClientSession per API client: pooled connections, one timeout,
closed with the client. The Zalo clients and the campaign dispatcher's Telegram sender use it
(python-telegram-bot's requests share theirs: bot.channels.telegram.request.SharedSession)."""

from __future__ import annotations

import aiohttp


class LazySession:
    """Opens its ClientSession on first use (inside the running loop) and again after close."""

    def __init__(self, timeout: float, *, connect: float | None = None,
                 connections: int = 100) -> None:  # fmt: skip
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=30),
                timeout=self._timeout, trust_env=False,
            )  # fmt: skip
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
