"""Server-drawn SVG line charts for the participant page (no JavaScript, no network).

A chart is an ``<svg role="img">`` with ``<title>`` and ``<desc>``; every point carries its value
as text (never colour alone), and the page puts a data table next to it. All text that goes into
the markup is escaped here, so the result is safe to mark as :class:`markupsafe.Markup`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from markupsafe import Markup, escape

LINE = "#0B4F8A"
GRID = "#C8CCD2"
MUTED = "#5C5C5C"
TEXT = "#1A1A1A"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str | None = None          # text above the point; defaults to the value
    emphasis: bool = False            # drawn as a square (e.g. the baseline report)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def line_chart(points: Sequence[Point], *, chart_id: str, title: str, desc: str, y_min: float = 0,
               y_max: float, y_ticks: Sequence[float], x_tick: Callable[[float], str], x_label: str,
               baseline: tuple[float, str] | None = None, marker_x: tuple[float, str] | None = None,
               width: int = 640, height: int = 260, font: int = 14) -> Markup:
    """One series over study days: line, markers, value labels, optional dashed baseline.

    The y axis runs from ``y_min`` (a tick label says where it starts, so a truncated axis is
    visible as such) to ``y_max``; the baseline's label sits in the right margin, clear of points.
    """
    small = font - 1
    left, top, bottom = 12 + 2 * font, font + 12, 2 * font + 22
    right = (len(baseline[1]) * small * 0.62 + 14) if baseline else 16
    pw, ph = width - left - right, height - top - bottom
    xs = [p.x for p in points] + ([marker_x[0]] if marker_x else [])
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.06

    def sx(x: float) -> float:
        return left + (x - lo + pad) / (hi - lo + 2 * pad) * pw

    def sy(y: float) -> float:
        return top + ph - ((y - y_min) / (y_max - y_min)) * ph

    cid = escape(chart_id)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
           f'focusable="false" aria-labelledby="{cid}-t {cid}-d">',
           f'<title id="{cid}-t">{escape(title)}</title>', f'<desc id="{cid}-d">{escape(desc)}</desc>']
    for tick in y_ticks:
        y = sy(tick)
        out.append(f'<line x1="{left}" x2="{left + pw:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        out.append(f'<text x="{left - 6}" y="{y + small / 3:.1f}" text-anchor="end" font-size="{small}" '
                   f'fill="{MUTED}">{_num(tick)}</text>')
    out.append(f'<line x1="{left}" x2="{left + pw:.1f}" y1="{top + ph}" y2="{top + ph}" stroke="{MUTED}" stroke-width="1.5"/>')
    if marker_x is not None:
        x = sx(marker_x[0])
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="{MUTED}" '
                   f'stroke-width="1.5" stroke-dasharray="2 4"/>')
        out.append(f'<text x="{x + 4:.1f}" y="{top + ph - 6}" font-size="{small}" fill="{MUTED}">{escape(marker_x[1])}</text>')
    if baseline is not None:
        y = sy(baseline[0])
        out.append(f'<line x1="{left}" x2="{left + pw:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{MUTED}" '
                   f'stroke-width="2" stroke-dasharray="8 5"/>')
        out.append(f'<text x="{left + pw + 6:.1f}" y="{y + small / 3:.1f}" font-size="{small}" fill="{TEXT}">'
                   f'{escape(baseline[1])}</text>')
    for x in sorted({p.x for p in points}):
        out.append(f'<text x="{sx(x):.1f}" y="{top + ph + font + 4}" text-anchor="middle" font-size="{small}" '
                   f'fill="{MUTED}">{escape(x_tick(x))}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="{small}" '
               f'fill="{TEXT}">{escape(x_label)}</text>')
    ordered = sorted(points, key=lambda p: p.x)
    if len(ordered) > 1:
        path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in ordered)
        out.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="2.5"/>')
    for p in ordered:
        x, y = sx(p.x), sy(p.y)
        if p.emphasis:
            out.append(f'<rect x="{x - 5.5:.1f}" y="{y - 5.5:.1f}" width="11" height="11" fill="#fff" '
                       f'stroke="{LINE}" stroke-width="2.5"/>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{LINE}"/>')
        label = p.label if p.label is not None else _num(p.y)
        out.append(f'<text x="{x:.1f}" y="{y - 10:.1f}" text-anchor="middle" font-size="{font}" font-weight="700" '
                   f'fill="{TEXT}">{escape(label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class Bar:
    x: float
    value: float | None               # None: nothing recorded that day (drawn as a dash, not a bar)


@dataclass(frozen=True)
class Mark:
    x: float
    label: str                        # e.g. "D1 ✓": written in the top lane, never colour alone


def bar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, desc: str, y_max: float,
              x_tick: Callable[[float], str], x_label: str, y_label: str, marks: Sequence[Mark] = (),
              x_range: tuple[float, float] | None = None, width: int = 1000, height: int = 260,
              font: int = 14) -> Markup:
    """Daily bars with their value written above each, and event marks (doses) as dashed vertical
    lines labelled in a lane above the plot, on one study-day axis."""
    small = font - 1
    lane = font + 12
    left, top, bottom, right = 14 + 2 * font, lane + font + 10, 2 * font + 22, 16
    pw, ph = width - left - right, height - top - bottom
    xs = [b.x for b in bars] + [m.x for m in marks]
    lo, hi = x_range if x_range else ((min(xs), max(xs)) if xs else (0.0, 1.0))
    n = max(1, int(hi - lo) + 1)
    slot = pw / n
    y_max = max(y_max, 1)

    def sx(x: float) -> float:
        return left + (x - lo + 0.5) * slot

    def sy(y: float) -> float:
        return top + ph - (y / y_max) * ph

    cid = escape(chart_id)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
           f'focusable="false" aria-labelledby="{cid}-t {cid}-d">',
           f'<title id="{cid}-t">{escape(title)}</title>', f'<desc id="{cid}-d">{escape(desc)}</desc>']
    step = max(1, round(y_max / 4))
    tick = 0.0
    while tick <= y_max:
        y = sy(tick)
        out.append(f'<line x1="{left}" x2="{left + pw:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        out.append(f'<text x="{left - 6}" y="{y + small / 3:.1f}" text-anchor="end" font-size="{small}" '
                   f'fill="{MUTED}">{_num(tick)}</text>')
        tick += step
    out.append(f'<text x="{left + pw:.1f}" y="{top + ph + 2 * font + 10}" text-anchor="end" font-size="{small}" '
               f'fill="{MUTED}">↑ {escape(y_label)}</text>')
    for m in marks:
        x = sx(m.x)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{lane - 2}" y2="{top + ph}" stroke="{TEXT}" '
                   f'stroke-width="2" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x:.1f}" y="{lane - 6}" text-anchor="middle" font-size="{small}" font-weight="700" '
                   f'fill="{TEXT}">{escape(m.label)}</text>')
    bar_w = max(2.0, min(slot * 0.6, 28))
    for b in bars:
        x = sx(b.x)
        if b.value is None:
            out.append(f'<text x="{x:.1f}" y="{top + ph - 4:.1f}" text-anchor="middle" font-size="{small}" '
                       f'fill="{MUTED}">–</text>')
            continue
        y = sy(b.value)
        out.append(f'<rect x="{x - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{top + ph - y:.1f}" '
                   f'fill="{LINE}"/>')
        if slot >= font * 1.4:
            out.append(f'<text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="{small}" '
                       f'font-weight="700" fill="{TEXT}">{_num(b.value)}</text>')
    out.append(f'<line x1="{left}" x2="{left + pw:.1f}" y1="{top + ph}" y2="{top + ph}" stroke="{MUTED}" stroke-width="1.5"/>')
    every = max(1, -(-int(font * 2.6) // max(1, int(slot))))
    for i in range(n):
        x = lo + i
        if i % every and i != n - 1:
            continue
        out.append(f'<text x="{sx(x):.1f}" y="{top + ph + font + 4}" text-anchor="middle" font-size="{small}" '
                   f'fill="{MUTED}">{escape(x_tick(x))}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="{small}" '
               f'fill="{TEXT}">{escape(x_label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def qr_svg(text: str, label: str) -> Markup:
    """A QR code for ``text`` as inline SVG (``qrcode`` package, drawn locally, no network)."""
    import qrcode
    from qrcode.image.svg import SvgPathImage

    img = qrcode.make(text, image_factory=SvgPathImage, box_size=10, border=4)
    svg = img.to_string(encoding="unicode")
    # the library writes millimetre sizes; let CSS size it and give it a text alternative
    svg = re.sub(r'\s(width|height)="[^"]*mm"', "", svg, count=2)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    return Markup(svg)
