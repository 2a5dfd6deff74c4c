"""The status page's chart of the last hour: stacked bars per minute, as numbers the template
draws into an inline SVG (pure: no I/O, no markup; the template escapes everything)."""

from __future__ import annotations

from dataclasses import dataclass

from service.metrics import Minute

WIDTH, HEIGHT, BAR = 600, 80, 10  # the drawing's size and one minute's width, in pixels
# The order bars are stacked in, bottom first.
KINDS = ("loaded", "failed", "retry")


@dataclass(frozen=True)
class Bar:
    x: int
    y: float
    height: float
    kind: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    peak: int  # the largest minute's count: the top of the scale
    totals: dict[str, int]


def chart(minutes: list[Minute]) -> Chart:
    peak = max((m.loaded + m.failed + m.retry for m in minutes), default=0)
    scale = HEIGHT / peak if peak else 0.0
    bars: list[Bar] = []
    for index, minute in enumerate(minutes):
        base = float(HEIGHT)
        for kind in KINDS:
            count = int(getattr(minute, kind))
            if count:
                height = count * scale
                base -= height
                when = minute.at.strftime("%H:%M")
                bars.append(Bar(index * BAR, base, height, kind, f"{when} UTC: {count} {kind}"))
    totals = {kind: sum(int(getattr(m, kind)) for m in minutes) for kind in KINDS}
    return Chart(len(minutes) * BAR, HEIGHT, tuple(bars), peak, totals)
