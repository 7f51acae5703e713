"""Scale-out on PostgreSQL: two real `hocvuso serve` processes in webhook mode behind a
"load balancer" (this test, alternating between them) carry one citizen's journey as if on
one process."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from content.loader import Curriculum
from tests.conftest import _truncate_pg
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.journey import learn_and_pass, onboard
from tests.test_telegram_e2e import free_port

pytestmark = [pytest.mark.pg, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
SECRET = "scale-out-secret"
USER = 777


class Balancer:
    """Posts Telegram updates to the processes in turn, like a round-robin load balancer."""

    def __init__(self, fake: FakeTelegramAPI, ports: list[int]) -> None:
        self.fake = fake
        self.ports = itertools.cycle(ports)
        self.update_ids = itertools.count(1)
        self.message_ids = itertools.count(1)
        self.buttons: list[tuple[str, str]] = []
        self.served_by: list[int] = []
        self.http = aiohttp.ClientSession()

    def _from(self) -> dict:
        return {"id": USER, "is_bot": False, "first_name": "Hoa", "language_code": "vi"}

    async def _post(self, update: dict) -> None:
        port = next(self.ports)
        self.served_by.append(port)
        async with self.http.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update,
                                  headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as r:
            assert r.status == 200, await r.text()
        # The webhook answers after handling, so the replies are already sent.
        for message in reversed(self.fake.messages_to(USER)):
            if message.buttons:
                self.buttons = message.buttons
                break

    async def say(self, text: str) -> None:
        chat = {"id": USER, "type": "private", "first_name": "Hoa"}
        message = {"message_id": next(self.message_ids), "date": 0, "chat": chat,
                   "from": self._from(), "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(text.split()[0])}]
        await self._post({"update_id": next(self.update_ids), "message": message})

    async def press(self, payload: str) -> None:
        assert any(p == payload for _, p in self.buttons), (payload, self.buttons)
        bot_message = self.fake.messages_to(USER)[-1]
        await self._post({"update_id": next(self.update_ids), "callback_query": {
            "id": str(next(self.update_ids)), "from": self._from(), "chat_instance": "ci",
            "data": payload, "message": {"message_id": bot_message.message_id, "date": 0,
                                         "chat": {"id": USER, "type": "private"}}}})


@pytest.fixture
async def two_processes(pg_database: str, tmp_path: Path
                        ) -> AsyncIterator[tuple[FakeTelegramAPI, list[int]]]:
    await _truncate_pg(pg_database)
    async with FakeTelegramAPI() as fake:
        ports = [free_port(), free_port()]
        procs = []
        for port in ports:
            env = {k: v for k, v in os.environ.items() if not k.startswith("HOCVUSO_")}
            env.update({
                "HOCVUSO_DATABASE_URL": pg_database, "HOCVUSO_TELEGRAM_TOKEN": fake.token,
                "HOCVUSO_TELEGRAM_API_URL": fake.base_url, "HOCVUSO_TELEGRAM_WEBHOOK": "on",
                "HOCVUSO_WEBHOOK_SECRET": SECRET, "HOCVUSO_WEB_PORT": str(port),
                "HOCVUSO_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "HOCVUSO_DATA_DIR": str(tmp_path), "HOCVUSO_FLOOD_MESSAGES": "100000",
                "PYTHONPATH": str(ROOT),
            })
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "serve", env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL))
        try:
            async with aiohttp.ClientSession() as http:
                for port in ports:
                    for _ in range(150):
                        try:
                            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                                if r.status == 200:
                                    break
                        except aiohttp.ClientError:
                            pass
                        await asyncio.sleep(0.1)
                    else:
                        raise AssertionError(f"process on port {port} did not start")
            yield fake, ports
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def test_one_journey_across_two_processes(
    two_processes: tuple[FakeTelegramAPI, list[int]], curriculum: Curriculum
) -> None:
    fake, ports = two_processes
    balancer = Balancer(fake, ports)
    try:
        await onboard(balancer)
        await learn_and_pass(balancer, curriculum, "vneid-cai-dat")
    finally:
        await balancer.http.close()
    assert set(balancer.served_by) == set(ports)  # both processes took part
    texts = [m.plain_text for m in fake.messages_to(USER)]
    assert "Bạn trả lời đúng 5/5 câu. Bạn đã đạt bài này!" in " ".join(texts)
    # Not a single reply was lost or doubled: one answer per question, in order.
    verdicts = [t for t in texts if t.startswith(("✅ Đúng rồi", "❌ Chưa đúng"))]
    assert len(verdicts) == len(curriculum.lessons["vneid-cai-dat"].quiz)
