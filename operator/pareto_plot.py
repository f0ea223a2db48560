"""A Pareto-front scatter plot as SVG text: no plotting library at run time.

Pure: points in, a string out. Every succeeded trial is a grey dot, the front's trials
are red dots joined by the front's staircase; hovering a dot shows the trial's name and
values (an SVG <title>). Only the first two objectives are drawn.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

W, H = 640, 480
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 40, 60


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    raw = (hi - lo) / max(n, 1)
    if raw <= 0:  # hi <= lo, or a difference so small that dividing it underflows
        return [lo]
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    # Counted, not accumulated (v += step): when the values differ in their last bits
    # (0.3 and 0.1 + 0.2), start + step == start and that loop never ended, filling
    # memory. 12 significant digits drop float noise; ticks that then coincide count once.
    count = math.floor((hi - start) / step + 1e-9) + 1
    ticks = [float(f"{start + i * step:.12g}") for i in range(max(count, 0))]
    return list(dict.fromkeys(ticks)) or [lo]


def use_log(vals: Sequence[float]) -> bool:
    """A log axis when the values are positive and span two decades or more (model sizes)."""
    return min(vals) > 0 and max(vals) / min(vals) >= 100


def _range(vals: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.05 or (abs(hi) * 0.05 or 1.0)
    return lo - pad, hi + pad


def pareto_svg(
    points: Sequence[tuple[str, float, float]],
    front: set[str],
    objectives: Sequence[tuple[str, str]],
    title: str = "Pareto front",
) -> str:
    """``points``: (trial name, first objective, second objective); ``front``: names on the
    front; ``objectives``: (name, optimizeMode) of each objective (the first two are drawn)."""
    (xname, xmode), (yname, ymode) = objectives[0], objectives[1]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    if not points:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no succeeded trial yet</text></svg>')
        return "\n".join(out) + "\n"
    xlog, ylog = use_log([p[1] for p in points]), use_log([p[2] for p in points])

    def tx(v: float, log: bool) -> float:
        return math.log10(v) if log else v

    x0, x1 = _range([tx(p[1], xlog) for p in points])
    y0, y1 = _range([tx(p[2], ylog) for p in points])

    def sx(v: float) -> float:
        return LEFT + (tx(v, xlog) - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def sy(v: float) -> float:
        return H - BOTTOM - (tx(v, ylog) - y0) / (y1 - y0) * (H - TOP - BOTTOM)

    def ticks(lo: float, hi: float, log: bool) -> list[float]:
        if not log:
            return nice_ticks(lo, hi)
        return [10.0**k for k in range(math.ceil(lo), math.floor(hi) + 1)]

    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" stroke="#444"/>')
    for t in ticks(x0, x1, xlog):
        out.append(f'<line x1="{sx(t):.1f}" y1="{H - BOTTOM}" x2="{sx(t):.1f}" y2="{H - BOTTOM + 5}" stroke="#444"/>')
        out.append(f'<text x="{sx(t):.1f}" y="{H - BOTTOM + 18}" text-anchor="middle">{t:g}</text>')
    for t in ticks(y0, y1, ylog):
        out.append(f'<line x1="{LEFT - 5}" y1="{sy(t):.1f}" x2="{LEFT}" y2="{sy(t):.1f}" stroke="#444"/>')
        out.append(f'<text x="{LEFT - 8}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 15}" text-anchor="middle">{escape(xname)} ({escape(xmode)}{", log scale" if xlog else ""})</text>')
    out.append(
        f'<text x="18" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(TOP + H - BOTTOM) / 2})">{escape(yname)} ({escape(ymode)}{", log scale" if ylog else ""})</text>'
    )
    # The front's staircase: sorted along x, each step to the next front point.
    fr = sorted((p for p in points if p[0] in front), key=lambda p: (p[1], p[2]))
    if len(fr) > 1:
        path = f"M{sx(fr[0][1]):.1f},{sy(fr[0][2]):.1f}"
        for (_, _, ya), (_, xb, yb) in zip(fr, fr[1:]):
            path += f" L{sx(xb):.1f},{sy(ya):.1f} L{sx(xb):.1f},{sy(yb):.1f}"
        out.append(f'<path d="{path}" fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 3"/>')
    for name, x, y in sorted(points, key=lambda p: p[0] in front):
        on = name in front
        color, r = ("#d62728", 5) if on else ("#999999", 3.5)
        tip = f"{name}: {xname}={x:.6g}, {yname}={y:.6g}"
        out.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{r}" fill="{color}" fill-opacity="0.8">'
            f"<title>{escape(tip)}</title></circle>"
        )
    out.append(
        f'<text x="{W - RIGHT}" y="{TOP - 6}" text-anchor="end" font-size="11">'
        f'<tspan fill="#d62728">&#9679; Pareto front</tspan> <tspan fill="#999999">&#9679; other trials</tspan></text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
