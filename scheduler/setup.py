"""The one APScheduler of the process (PTB's JobQueue is switched off)."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.i18n import TZ
from bot.runtime import Runtime
from scheduler import jobs


def make_scheduler(rt: Runtime) -> AsyncIOScheduler:
    sched = AsyncIOScheduler(
        timezone=TZ, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
    )
    sched.add_job(
        jobs.forget_unconsented,
        IntervalTrigger(hours=6),
        args=[rt],
        id="forget_unconsented",
        replace_existing=True,
    )
    sched.add_job(jobs.send_reminders, IntervalTrigger(minutes=15), args=[rt],
                  id="send_reminders", replace_existing=True)
    return sched
