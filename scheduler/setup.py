"""The one APScheduler of the process (PTB's JobQueue is switched off)."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.i18n import TZ
from bot.runtime import Runtime
from scheduler import jobs
from scheduler.dispatch import fire_due_campaigns


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
    sched.add_job(jobs.erase_inactive, IntervalTrigger(hours=24), args=[rt],
                  id="erase_inactive", replace_existing=True)
    sched.add_job(jobs.send_reminders, IntervalTrigger(minutes=15), args=[rt],
                  id="send_reminders", replace_existing=True)
    # Scheduled campaigns live in the database; the leader starts them when due.
    sched.add_job(fire_due_campaigns, IntervalTrigger(seconds=20), args=[rt],
                  id="fire_due_campaigns", replace_existing=True)
    s = rt.settings
    if s.zalo_oa_app_id is not None:  # refreshes only when the pair is ~20 h old
        sched.add_job(jobs.refresh_zalo_oa_token, IntervalTrigger(minutes=30), args=[rt],
                      id="refresh_zalo_oa_token", replace_existing=True)
    if s.zalo_oa_app_id is not None or s.zalo_bot_token is not None:
        sched.add_job(jobs.purge_zalo_leftovers, IntervalTrigger(hours=12), args=[rt],
                      id="purge_zalo_leftovers", replace_existing=True)
    return sched
