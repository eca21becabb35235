"""The base report as Markdown, and as one self-contained HTML page with an inline SVG trend
chart (no scripts, no external files: it can be mailed or archived as is)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from typing import Final

from svod_quality.domain.report import QualityPoint, QualityReport

# (attribute of QualityPoint, label, colour); colours stay distinguishable for colour-blind eyes.
SERIES: Final = (
    ("valid_phone_share", "Valid phone", "#0072b2"),
    ("valid_email_share", "Valid e-mail", "#009e73"),
    ("completeness", "Completeness", "#e69f00"),
    ("stale_share", "Stale contacts", "#cc79a7"),
    ("duplicate_rate", "Suspected duplicates", "#d55e00"),
)
_WIDTH, _HEIGHT = 720, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 16, 16, 64


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _day(time: dt.datetime) -> str:
    return time.strftime("%Y-%m-%d")


def _stamp(time: dt.datetime) -> str:
    return f"{time:%Y-%m-%d %H:%M} {time.tzname() or ''}".rstrip()


def _summary_rows(now: QualityPoint) -> list[tuple[str, str]]:
    return [
        ("Profiles", f"{now.profiles:,}".replace(",", " ")),
        *((label, pct(getattr(now, attr))) for attr, label, _ in SERIES),
        ("Undeliverable contacts", pct(now.undeliverable_share)),
    ]


def _footnote(report: QualityReport) -> str:
    return (
        f"Suspected duplicate pairs: {report.suspected_duplicate_pairs}; blocked shared "
        f"identifiers: {report.blocked_identifiers}. Contact data not confirmed within "
        f"{report.freshness_days} days counts as stale."
    )


def render_markdown(report: QualityReport, title: str = "Svod data quality report") -> str:
    now = report.now
    lines = [f"# {title}", "", f"As of {_stamp(now.time)}.", ""]
    lines += ["| Measure | Value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in _summary_rows(now)]
    lines += ["", "## Completeness by field", "", "| Field | Filled |", "|---|---:|"]
    lines += [f"| {name} | {pct(v)} |" for name, v in report.completeness_by_field.items()]
    if report.sources:
        lines += ["", "## Sources", ""]
        lines += ["| Source | Profiles | Completeness | Mean score |", "|---|---:|---:|---:|"]
        lines += [
            f"| {s.source} | {s.profiles} | {pct(s.completeness)} | {s.mean_score:.1f} |"
            for s in report.sources
        ]
    if report.worst_sources:
        lines += ["", "Worst sources: " + ", ".join(report.worst_sources) + "."]
    lines += ["", _footnote(report)]
    if len(report.trend) > 1:
        header = " | ".join(label for _, label, _ in SERIES)
        lines += ["", "## Trend", "", f"| Day | {header} |", "|---|" + "---:|" * len(SERIES)]
        for p in report.trend:
            cells = " | ".join(pct(getattr(p, attr)) for attr, _, _ in SERIES)
            lines.append(f"| {_day(p.time)} | {cells} |")
    return "\n".join(lines) + "\n"


def _x_positions(points: Sequence[QualityPoint]) -> list[float]:
    width = _WIDTH - _LEFT - _RIGHT
    if len(points) == 1:
        return [_LEFT + width / 2]
    start = points[0].time.timestamp()
    span = (points[-1].time.timestamp() - start) or 1.0
    return [_LEFT + width * (p.time.timestamp() - start) / span for p in points]


def _y(value: float) -> float:
    return _TOP + (_HEIGHT - _TOP - _BOTTOM) * (1 - min(max(value, 0.0), 1.0))


def svg_trend_chart(points: Sequence[QualityPoint]) -> str:
    """A line per measure over time, 0-100 % on the y axis, as an inline ``<svg>`` element."""
    xs = _x_positions(points) if points else []
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'width="{_WIDTH}" height="{_HEIGHT}" role="img" aria-label="Quality trend">'
    ]
    for tick in (0, 25, 50, 75, 100):
        y = _y(tick / 100)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_WIDTH - _RIGHT}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{_LEFT - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end">{tick}%</text>'
        )
    if points:
        labelled = sorted({0, len(points) // 2, len(points) - 1})
        for i in labelled:
            parts.append(
                f'<text x="{xs[i]:.1f}" y="{_HEIGHT - _BOTTOM + 16}" font-size="11" '
                f'text-anchor="middle">{_day(points[i].time)}</text>'
            )
    for index, (attr, label, colour) in enumerate(SERIES):
        coords = [(x, _y(getattr(p, attr))) for x, p in zip(xs, points, strict=True)]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
            )
        for (x, y), p in zip(coords, points, strict=True):
            tip = f"{label} {_day(p.time)}: {pct(getattr(p, attr))}"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        lx = _LEFT + index * 128
        ly = _HEIGHT - 16
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{ly}" font-size="11">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:60rem}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i else ''}>{escape(cell)}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: QualityReport, title: str = "Svod data quality report") -> str:
    now = report.now
    sections = [
        f"<h1>{escape(title)}</h1>",
        f"<p>As of {escape(_stamp(now.time))}.</p>",
        _table(("Measure", "Value"), _summary_rows(now)),
        "<h2>Trend</h2>",
        svg_trend_chart(report.trend or [now]),
        "<h2>Completeness by field</h2>",
        _table(("Field", "Filled"), [(f, pct(v)) for f, v in report.completeness_by_field.items()]),
    ]
    if report.sources:
        rows = [
            (s.source, str(s.profiles), pct(s.completeness), f"{s.mean_score:.1f}")
            for s in report.sources
        ]
        sections += [
            "<h2>Sources</h2>",
            _table(("Source", "Profiles", "Completeness", "Mean score"), rows),
        ]
    if report.worst_sources:
        worst = ", ".join(escape(s) for s in report.worst_sources)
        sections.append(f"<p>Worst sources: {worst}.</p>")
    sections.append(f"<p>{escape(_footnote(report))}</p>")
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
