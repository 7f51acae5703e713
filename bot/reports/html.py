"""The report as one printable HTML page in the shape of a Vietnamese administrative report
(masthead, title, period, a table per criterion with its chart, communes, signatures): it
prints to A4 from any browser. Chart.js (vendored in bot/web/static) is inlined, so the file
works offline and can be mailed as it is; every number on a chart is in the table above it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from bot.reports import common

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
CHART_TOP = 15


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("bot.web", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))  # fmt: skip
    env.filters["value"] = common.fmt_value
    env.filters["score"] = common.fmt_score
    return env


@cache
def _chart_js() -> str:
    # Inlined in a <script>: no "</script" can occur in the minified library.
    return (STATIC / "chart.umd.min.js").read_text(encoding="utf-8").replace("</", "<\\/")


def chart_rows(units: list[dict[str, Any]], key: Any, top: int = CHART_TOP) -> list[Any]:
    best = sorted(units, key=lambda u: (-key(u), u["name"]))[:top]
    return [[u["name"], round(key(u), 1)] for u in best]


def render(data: dict[str, Any], *, inline_js: bool = True) -> bytes:
    t = common.text()
    metrics = common.columns(data)
    units = common.ordered_units(data)
    criteria = data["criteria"]["criteria"]
    charts = {"scores": chart_rows(units, lambda u: u["total"]),
              "criteria": [chart_rows(units, lambda u, c=c: u["scores"].get(c["id"], 0.0))
                           for c in criteria],
              "communes": chart_rows(data["communes"],
                                     lambda c: c["values"].get("active_learners") or 0)}
    breakdown = {
        dim: [(common.dimension_label(dim, value), figures)
              for value, figures in sorted(rows.items())]
        for dim, rows in data.get("breakdown", {}).items()
    }  # fmt: skip
    # Jinja2 escapes each of the report's tens of thousands of figures into a Markup object,
    # which the garbage collector tracks: copied to plain text as they come, they do not pile
    # up until the page is joined (and make the collector sweep the whole process).
    pieces = _env().get_template("report.html").generate(
        t=t, data=data, metrics=metrics, units=units, criteria=criteria, charts=charts,
        label=common.indicator_label, org=common.org_label, level=common.level_label,
        period_text=common.period_text(data), place_date=common.place_date(data),
        frozen=common.frozen_line(data), generated=common.fmt_moment(data["generated_at"]),
        breakdown=breakdown, chart_js=_chart_js() if inline_js else "",
        top_label=t["top_units"].format(n=CHART_TOP), percent=common.PERCENT,
    )
    return "".join(map(str, pieces)).encode("utf-8")
