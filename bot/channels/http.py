"""One lazily opened aiohttp ClientSession per API client: pooled connections, one timeout,
closed with the client. The Zalo clients share it."""

from __future__ import annotations

import aiohttp


class LazySession:
    """Opens its ClientSession on first use (inside the running loop) and again after close."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
