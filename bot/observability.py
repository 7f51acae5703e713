"""Prometheus metrics (`GET /metrics`) and the health check (`GET /healthz`).

Counters are process-wide (prometheus-client's default registry): every process behind a
load balancer exposes its own, and Prometheus sums them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

UPDATES = Counter("hocvuso_updates_total", "Updates handled", ["channel", "kind"])
UPDATE_ERRORS = Counter("hocvuso_update_errors_total", "Updates whose handling failed",
                        ["channel"])
UPDATE_SECONDS = Histogram(
    "hocvuso_update_seconds", "Time to handle one update (database included, sending not)",
    ["channel"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SENDS = Counter("hocvuso_sends_total", "Messages sent to people", ["channel", "status"])
RATE_LIMITED = Counter("hocvuso_rate_limited_total", "Answers 429 (too many requests)",
                       ["channel"])
DUPLICATES = Counter("hocvuso_duplicate_updates_total", "Redelivered updates dropped",
                     ["channel"])
FLOOD = Counter("hocvuso_flood_limited_total", "Messages slowed by flood control", ["channel"])
OUTBOX_BACKLOG = Gauge("hocvuso_outbox_backlog", "Campaign deliveries still pending",
                       ["channel"])
SCHEDULER_LEADER = Gauge("hocvuso_scheduler_leader", "1 if this process runs the scheduled jobs")

# Async callables run before each scrape to refresh gauges that need the database.
ScrapeHook = Callable[[], Awaitable[None]]
SCRAPE_HOOKS: list[ScrapeHook] = []


async def render() -> tuple[bytes, str]:
    for hook in SCRAPE_HOOKS:
        await hook()
    return generate_latest(), CONTENT_TYPE_LATEST
