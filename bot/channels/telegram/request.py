"""python-telegram-bot's HTTP layer on aiohttp: one `BaseRequest` implementation over one shared
`aiohttp.ClientSession`.

PTB's default transport (HTTPX) costs a few milliseconds of CPU per Bot API call on our
machines; aiohttp costs a fraction of that, and every Bot API call of the Telegram channel goes
through here (`ApplicationBuilder().request(...)` and `.get_updates_request(...)`).

PTB wants separate request objects for getUpdates and for everything else; both share one
`SharedSession` (one connection pool), opened by the first `initialize()` and closed by the last
`shutdown()`. Timeouts map onto aiohttp's as follows:

- `pool_timeout` + `connect_timeout` -> `ClientTimeout.connect` (aiohttp counts the wait for a
  free pooled connection inside its connect timeout), `connect_timeout` -> `sock_connect`;
- `read_timeout` -> `sock_read` (PTB adds the long-poll `timeout` of getUpdates to it);
- `write_timeout` (`media_write_timeout` for uploads): aiohttp has no write timeout, so it is
  part of an overall deadline, `total` = pool + connect + write + read (none if any is None).

Exceeding any of them raises `telegram.error.TimedOut`; any other transport failure
(connection refused, reset, proxy errors) raises `telegram.error.NetworkError`, as PTB expects.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import aiohttp
import orjson
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

if TYPE_CHECKING:
    from telegram._utils.types import ODVInput

FORM: Final = {"Content-Type": "application/x-www-form-urlencoded"}
JSON: Final = {"Content-Type": "application/json"}
DEFAULT_POOL_SIZE: Final = 100


class JsonParameters(RequestData):
    """Bot API parameters as plain JSON values (objects nested, as the Bot API documents them),
    for callers that build them directly instead of from PTB's TelegramObjects. Posted with
    `bot.request.post(url, JsonParameters(...))` they get PTB's error handling all the same;
    `AiohttpRequest` sends them as one `application/json` body."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__()
        self.values = values

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.values)

    @property
    def json_parameters(self) -> dict[str, str]:
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.values.items()}

    def url_encoded_parameters(self, encode_kwargs: dict[str, Any] | None = None) -> str:
        return urlencode(self.json_parameters, **(encode_kwargs or {}))

    @property
    def json_payload(self) -> bytes:
        return orjson.dumps(self.values)  # UTF-8, as json.dumps(ensure_ascii=False).encode()


class SharedSession:
    """One aiohttp ClientSession (and connection pool) shared by several `AiohttpRequest`s.

    Args:
        connection_pool_size: connections kept open to the Bot API at most (getUpdates' long
            poll holds one of them).
        proxy: an ``http://`` or ``https://`` proxy for every request, or None.
    """

    __slots__ = ("_session", "_users", "connection_pool_size", "proxy")

    def __init__(self, connection_pool_size: int = DEFAULT_POOL_SIZE,
                 proxy: str | None = None) -> None:  # fmt: skip
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        if proxy is not None and not proxy.startswith(("http://", "https://")):
            raise ValueError("the proxy must be an http:// or https:// URL")
        self.connection_pool_size = connection_pool_size
        self.proxy = proxy
        self._session: aiohttp.ClientSession | None = None
        self._users = 0

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        return self._session

    async def acquire(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.connection_pool_size, limit_per_host=self.connection_pool_size,
                keepalive_timeout=30,
            )  # fmt: skip
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": BaseRequest.USER_AGENT}, trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # the Bot API sets none
            )  # fmt: skip
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._session is not None:
            self._users = 0
            session, self._session = self._session, None
            await session.close()


class AiohttpRequest(BaseRequest):
    """`telegram.request.BaseRequest` over aiohttp; see the module docstring for timeouts.

    Args:
        shared: the session to share with the other request object of the same bot; a private
            one (with `connection_pool_size` and `proxy`) when omitted.
        read_timeout, write_timeout, connect_timeout, pool_timeout, media_write_timeout:
            defaults in seconds, as in `telegram.request.HTTPXRequest` (None: no limit).
    """

    __slots__ = ("_connect", "_default", "_initialized", "_media_write", "_pool", "_read",
                 "_shared", "_write")  # fmt: skip

    def __init__(
        self,
        shared: SharedSession | None = None,
        *,
        connection_pool_size: int = DEFAULT_POOL_SIZE,
        proxy: str | None = None,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._shared = shared or SharedSession(connection_pool_size, proxy)
        self._read, self._write, self._connect = read_timeout, write_timeout, connect_timeout
        self._pool, self._media_write = pool_timeout, media_write_timeout
        self._default = self._timeout(read_timeout, write_timeout, connect_timeout, pool_timeout)
        self._initialized = False

    @property
    def read_timeout(self) -> float | None:
        return self._read

    @property
    def proxy(self) -> str | None:
        return self._shared.proxy

    async def initialize(self) -> None:
        if not self._initialized:
            await self._shared.acquire()
            self._initialized = True

    async def shutdown(self) -> None:
        if self._initialized:
            self._initialized = False
            await self._shared.release()

    @staticmethod
    def _timeout(read: float | None, write: float | None, connect: float | None,
                 pool: float | None) -> aiohttp.ClientTimeout:  # fmt: skip
        parts = (read, write, connect, pool)
        total = None if any(p is None for p in parts) else sum(parts)  # type: ignore[arg-type]
        connect_total = None if connect is None or pool is None else connect + pool
        return aiohttp.ClientTimeout(total=total, connect=connect_total, sock_read=read,
                                     sock_connect=connect)  # fmt: skip

    @staticmethod
    def parse_json_payload(payload: bytes) -> Any:
        """The answer's JSON, read by orjson (several times faster than `json` on getUpdates
        answers); anything orjson refuses goes to PTB's own parser, which replaces invalid
        UTF-8 and raises PTB's error for what is not JSON."""
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            return BaseRequest.parse_json_payload(payload)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if not self._initialized:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        session = self._shared.session
        files = request_data is not None and request_data.contains_files
        unset = BaseRequest.DEFAULT_NONE
        if not files and read_timeout is write_timeout is connect_timeout is pool_timeout is unset:
            timeout = self._default
        else:
            timeout = self._timeout(
                self._read if read_timeout is unset else read_timeout,  # type: ignore[arg-type]
                (self._media_write if files else self._write)
                if write_timeout is unset
                else write_timeout,  # type: ignore[arg-type]
                self._connect if connect_timeout is unset else connect_timeout,  # type: ignore[arg-type]
                self._pool if pool_timeout is unset else pool_timeout,  # type: ignore[arg-type]
            )
        data: aiohttp.FormData | bytes | None = None
        headers = None
        if request_data is not None:
            if files:
                data = aiohttp.FormData(quote_fields=False)
                for name, value in request_data.json_parameters.items():
                    data.add_field(name, value)
                for name, (filename, content, mimetype) in request_data.multipart_data.items():
                    data.add_field(name, content, filename=filename, content_type=mimetype)
            elif isinstance(request_data, JsonParameters):
                data, headers = request_data.json_payload, JSON
            else:
                data = request_data.url_encoded_parameters().encode()
                headers = FORM
        try:
            async with session.request(
                method, url, data=data, headers=headers, timeout=timeout,
                proxy=self._shared.proxy,
            ) as response:  # fmt: skip
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as err:
            raise TimedOut(
                "Timed out while connecting or waiting for a free connection in the pool "
                f"({self._shared.connection_pool_size} connections)"
            ) from err
        except TimeoutError as err:  # sock_read, or the overall deadline
            raise TimedOut from err
        except (aiohttp.ClientError, OSError) as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err
