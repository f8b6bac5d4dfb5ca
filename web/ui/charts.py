"""Inline SVG charts (no JavaScript library, nothing fetched from the internet)."""

from __future__ import annotations

from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def duration_chart(run_ids: list[str], series: dict[str, dict[str, float]],
                   width: int = 900, height: int = 320) -> str:
    """Lines of task duration (seconds) per run, oldest run left; empty string if no data."""
    if not run_ids or not series:
        return ""
    left, right, top, bottom = 60, 180, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(v.values()) for v in series.values()) or 1.0
    step = plot_w / max(len(run_ids) - 1, 1)
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="Task durations">')]
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line class="gridline" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="axis" x="{left - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{value:.1f}s</text>')
    for i, run_id in enumerate(run_ids):
        x = left + i * step
        out.append(f'<text class="axis" x="{x:.1f}" y="{height - bottom + 16}" '
                   f'text-anchor="middle"><title>{escape(run_id)}</title>{i + 1}</text>')
    for n, (task_id, values) in enumerate(sorted(series.items())):
        colour = PALETTE[n % len(PALETTE)]
        points = [(left + i * step, top + plot_h - plot_h * values[r] / peak)
                  for i, r in enumerate(run_ids) if r in values]
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                   f'points="{path}"><title>{escape(task_id)}</title></polyline>')
        for (x, y), r in zip(points, [r for r in run_ids if r in values]):
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                       f'<title>{escape(task_id)} in {escape(r)}: {values[r]:.2f}s</title>'
                       f'</circle>')
        ly = top + 14 * n
        out.append(f'<rect x="{width - right + 10}" y="{ly - 9}" width="10" height="10" '
                   f'fill="{colour}"/><text class="legend" x="{width - right + 24}" '
                   f'y="{ly}">{escape(task_id[:24])}</text>')
    out.append(f'<text class="axis" x="{left + plot_w / 2:.0f}" y="{height - 4}" '
               f'text-anchor="middle">run (oldest to newest)</text></svg>')
    return "".join(out)
