"""Files the bot sends by URL, served under unguessable names.

Zalo takes images (and nothing else) by URL: the bot publishes a file it holds (a content
image, a certificate picture) as `$HOCVUSO_PUBLIC_URL/media/<random name>` and Zalo fetches
it from our web server. Names live in the database, so any process behind the load balancer
can serve a name another process gave out; only files inside the content folder or the data
folder can be published.
"""

from __future__ import annotations

import logging
import mimetypes
import secrets
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import MediaLink
from bot.engine import insert_ignore
from content.loader import CONTENT_DIR

log = logging.getLogger(__name__)
ROUTE = "/media/{name}"
LIFETIME = timedelta(days=30)
# A link handed out now stays valid at least this long.
MIN_LEFT = timedelta(days=1)
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def allowed(path: Path, data_dir: Path) -> Path | None:
    """The resolved path if it is a file in the shipped content or the bot's data folder
    (nothing else may be published), else None."""
    resolved = path.resolve()
    roots = (CONTENT_DIR.resolve(), data_dir.resolve())
    if resolved.is_file() and any(resolved.is_relative_to(root) for root in roots):
        return resolved
    return None


def new_name(path: Path) -> str:
    return secrets.token_urlsafe(24) + path.suffix.lower()[:8]


async def publish(
    sessionmaker: async_sessionmaker[AsyncSession], path: Path, data_dir: Path, now: datetime
) -> str | None:
    """The public name of `path` (reused while it has time left), or None if not allowed."""
    resolved = allowed(path, data_dir)
    if resolved is None:
        log.warning("media: refusing to publish %s (outside content and data folders)", path)
        return None
    key = str(resolved)
    async with sessionmaker() as session, session.begin():
        link = await session.scalar(select(MediaLink).where(MediaLink.path == key))
        if link is not None and link.expires_at - now >= MIN_LEFT:
            return link.name
        if link is not None:
            await session.delete(link)
            await session.flush()
        await session.execute(insert_ignore(
            session, MediaLink, name=new_name(path), path=key, created_at=now,
            expires_at=now + LIFETIME,
        ))  # fmt: skip
        link = await session.scalar(select(MediaLink).where(MediaLink.path == key))
        assert link is not None
        return link.name


async def purge(session: AsyncSession, now: datetime) -> int:
    """Forget expired names (the files themselves belong to whoever made them)."""
    result = await session.execute(delete(MediaLink).where(MediaLink.expires_at < now))
    return int(result.rowcount or 0)


async def serve(request: web.Request) -> web.StreamResponse:
    """GET /media/{name}: the file, or 404 for anything unknown, expired or not allowed."""
    from bot.web.server import RUNTIME

    rt = request.app[RUNTIME]
    name = request.match_info["name"]
    if len(name) > 64 or not set(name) <= NAME_CHARS:
        raise web.HTTPNotFound()
    async with rt.sessionmaker() as session:
        link = await session.get(MediaLink, name)
    if link is None or link.expires_at < rt.clock():
        raise web.HTTPNotFound()
    path = allowed(Path(link.path), rt.settings.data_dir)
    if path is None:
        raise web.HTTPNotFound()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return web.FileResponse(
        path, headers={"Content-Type": ctype, "Cache-Control": "private, max-age=86400"}
    )
