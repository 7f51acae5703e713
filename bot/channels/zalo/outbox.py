"""Public URLs for what a reply carries besides text (images, files), for both Zalo channels.

Zalo takes media only by URL, so a reply's image or document is published through
`bot.web.media` under `$HOCVUSO_PUBLIC_URL/media/<random name>`. Without a public URL the
bot cannot offer files to Zalo at all: the text still goes out, and a warning is logged once.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from datetime import timedelta
from pathlib import Path

from bot.engine import Engine
from bot.web import media
from handlers.types import Reply

log = logging.getLogger(__name__)
OUTBOX = "zalo-outbox"  # under the data folder: documents written so they can be fetched
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class MediaLinks:
    def __init__(self, engine: Engine, channel: str) -> None:
        self.engine = engine
        self.channel = channel
        self.public_url = engine.settings.public_url
        self.data_dir = engine.settings.data_dir
        self._warned = False

    def _unavailable(self) -> None:
        if not self._warned:
            log.warning(
                "%s: images and files are left out: set HOCVUSO_PUBLIC_URL so Zalo can fetch "
                "them from this server", self.channel,
            )  # fmt: skip
            self._warned = True

    async def url_for(self, path: Path) -> str | None:
        if self.public_url is None:
            self._unavailable()
            return None
        name = await media.publish(
            self.engine.sessionmaker, path, self.data_dir, self.engine.clock()
        )
        return f"{self.public_url}/media/{name}" if name else None

    async def image_url(self, reply: Reply) -> str | None:
        return await self.url_for(reply.image) if reply.image is not None else None

    async def document_url(self, reply: Reply) -> str | None:
        """Write the document where the web server can serve it, and give its URL."""
        if reply.document is None:
            return None
        if self.public_url is None:
            self._unavailable()
            return None
        safe = _SAFE.sub("-", reply.document_name or "file")[-80:] or "file"
        path = self.data_dir / OUTBOX / f"{secrets.token_hex(16)}-{safe}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(reply.document)
        return await self.url_for(path)


def purge_outbox(data_dir: Path, older_than: timedelta) -> int:
    """Delete documents written for Zalo longer ago than their links live."""
    folder = data_dir / OUTBOX
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    for path in folder.iterdir():
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
