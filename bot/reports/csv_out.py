"""The report as one tidy CSV table for other tools: one row per (unit or locality,
indicator), with the period; plain numbers (a dot for decimals, rates as fractions), UTF-8
with a byte order mark so spreadsheet programs read the Vietnamese names."""

from __future__ import annotations

import csv
import io
from typing import Any

from bot.reports import common

HEADER = ("unit_code", "unit_name", "locality_code", "locality_name", "indicator", "period",
          "value")  # fmt: skip


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if not value.is_integer() else str(int(value))
    return str(value)


def render(data: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    period = data["period"]["label"]
    places = data.get("places", {})
    metrics = common.columns(data)

    def place(code: int | str) -> tuple[str, str]:
        code = int(code)
        text = f"{code:02d}" if code < 100 else f"{code:05d}"
        return text, places.get(str(code), "")

    for total in data["totals"]:
        kind, _sep, code = total["key"].partition(":")
        if kind == "u":
            continue  # a unit scope: its row is among the units
        loc, loc_name = place(code)
        for m in metrics:
            writer.writerow(("", "", loc, loc_name, m, period, _number(total["values"].get(m))))
    for u in common.ordered_units(data):
        loc, loc_name = place(u["locality"])
        head = (u["code"], u["name"], loc, loc_name)
        for m in metrics:
            writer.writerow((*head, m, period, _number(u["values"].get(m))))
        for cid, value in u["scores"].items():
            writer.writerow((*head, f"score:{cid}", period, _number(value)))
        writer.writerow((*head, "total_score", period, _number(u["total"])))
        writer.writerow((*head, "rank", period, _number(u["rank"])))
    for c in data["communes"]:
        loc, loc_name = place(c["code"])
        for m in metrics:
            writer.writerow(("", "", loc, c["name"] or loc_name, m, period,
                             _number(c["values"].get(m))))  # fmt: skip
    return ("\ufeff" + out.getvalue()).encode("utf-8")
