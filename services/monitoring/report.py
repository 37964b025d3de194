"""A window's drift as one self-contained HTML page: something a person would rather look at than read.

No scripts, no external CSS, fonts or images: the page opens from a file, an e-mail or a CI artifact,
offline, and renders the same forever. Charts are inline SVG; every string that came from a user
(title, column names, categories, window fields) is escaped, so a column named like a script is text.
Drifted columns come first and are marked in red, so the answer to "what moved?" is at the top.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from .drift_types import ColumnDrift, DriftResult

REFERENCE_COLOR = "#4c78a8"
CURRENT_COLOR = "#f58518"
DRIFT_COLOR = "#d62728"
OK_COLOR = "#2ca02c"

TEST_NAMES = {
    "ks": "Kolmogorov-Smirnov p-value",
    "chisquare": "chi-square p-value",
    "z": "Z-test p-value",
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "psi": "PSI",
}

_CSS = f"""
:root {{ --ref: {REFERENCE_COLOR}; --cur: {CURRENT_COLOR}; --drift: {DRIFT_COLOR}; --ok: {OK_COLOR}; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; background: #f4f5f7; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
main {{ max-width: 1180px; margin: 0 auto; padding: 24px 20px 48px; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 16px; margin: 28px 0 10px; }}
.sub {{ color: #57606a; margin-bottom: 16px; }}
.chip {{ display: inline-block; background: #fff; border: 1px solid #d0d7de; border-radius: 12px;
  padding: 1px 10px; margin: 0 6px 6px 0; font-size: 12px; }}
.verdict {{ display: flex; gap: 24px; align-items: center; padding: 18px 22px; border-radius: 10px;
  background: #fff; border-left: 8px solid var(--ok); box-shadow: 0 1px 2px rgba(0,0,0,.08); }}
.verdict.drift {{ border-left-color: var(--drift); background: #fff5f5; }}
.verdict .big {{ font-size: 24px; font-weight: 700; }}
.verdict.drift .big {{ color: var(--drift); }}
.verdict:not(.drift) .big {{ color: var(--ok); }}
.kpis {{ display: flex; gap: 28px; margin-left: auto; }}
.kpi b {{ display: block; font-size: 20px; }}
.kpi span {{ color: #57606a; font-size: 12px; }}
.sharebar {{ width: 220px; height: 10px; background: #e6e8eb; border-radius: 5px; position: relative;
  margin-top: 6px; }}
.sharebar i {{ position: absolute; left: 0; top: 0; bottom: 0; border-radius: 5px;
  background: var(--drift); }}
.sharebar u {{ position: absolute; top: -4px; bottom: -4px; width: 2px; background: #1f2328; }}
table {{ width: 100%; border-collapse: collapse; background: #fff; border-radius: 8px; overflow: hidden;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); }}
th, td {{ text-align: left; padding: 7px 10px; border-bottom: 1px solid #eaeef2; font-size: 13px; }}
th {{ background: #f6f8fa; color: #57606a; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.drift td {{ background: #fff5f5; }}
tr.drift td:first-child {{ border-left: 4px solid var(--drift); }}
a {{ color: inherit; }}
.badge {{ display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 11px; font-weight: 700;
  color: #fff; background: var(--ok); }}
.badge.drift {{ background: var(--drift); }}
.grid {{ display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }}
.card {{ background: #fff; border-radius: 10px; padding: 14px 16px 10px; border: 1px solid #e1e4e8;
  box-shadow: 0 1px 2px rgba(0,0,0,.06); }}
.card.drift {{ border: 2px solid var(--drift); }}
.card h3 {{ margin: 0; font-size: 15px; display: flex; align-items: center; gap: 8px;
  overflow-wrap: anywhere; }}
.card .kind {{ color: #57606a; font-weight: 400; font-size: 12px; }}
.card .test {{ color: #57606a; font-size: 12px; margin: 2px 0 6px; }}
.card svg {{ width: 100%; height: auto; display: block; }}
.facts {{ display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; color: #57606a; margin-top: 4px; }}
.facts b {{ color: #1f2328; }}
.legend {{ font-size: 12px; color: #57606a; margin: 6px 0 12px; }}
.sw {{ display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -2px;
  margin: 0 4px 0 12px; }}
.note {{ color: var(--drift); font-size: 12px; }}
.perf {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.perf div {{ background: #fff; border-radius: 8px; padding: 10px 16px; border: 1px solid #e1e4e8;
  min-width: 120px; }}
.perf b {{ display: block; font-size: 20px; }}
.perf span {{ color: #57606a; font-size: 12px; }}
footer {{ color: #8c959f; font-size: 12px; margin-top: 28px; }}
"""


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x != 0 and abs(x) < 10 ** -(digits - 1):
        return f"{x:.2e}"
    return f"{x:.{digits}g}"


def _pct(x: float) -> str:
    if x == 0:
        return "0%"
    if x < 0.001:
        return "<0.1%"
    return f"{x:.1%}"


def _comparison(c: ColumnDrift) -> str:
    """The verdict as the rule reads: what was compared with what."""
    if c.p_value is None and math.isnan(c.statistic):
        return "not tested"
    if c.p_value is not None:
        op = ("≤" if c.stattest == "ks" else "<") if c.drifted else (">" if c.stattest == "ks" else "≥")
        return f"p = {_fmt(c.p_value)} {op} {_fmt(c.threshold)}"
    op = "≥" if c.drifted else "<"
    return f"{_fmt(c.statistic)} {op} {_fmt(c.threshold)}"


def _chart(c: ColumnDrift) -> str:
    """Reference bars (blue, full bin width) with the window's bars (orange, narrower) over them, on
    the same bins: a shift shows as orange leaving the blue."""
    ref, cur = c.reference_hist, c.current_hist
    if not ref:
        return (
            '<svg viewBox="0 0 560 60" role="img"><text x="280" y="34" text-anchor="middle" '
            'fill="#8c959f">no values to draw</text></svg>'
        )
    bottom = 24 if c.hist_edges else 56  # room for the rotated category names
    width, height, left, right, top = 560, 174 + bottom, 44, 14, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(s for _, s in ref), max(s for _, s in cur), 1e-12)
    nice = _nice_ceiling(peak)
    n = len(ref)
    step = plot_w / n
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="distribution of {escape(c.column)}">'
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#8c959f">'
            f"{_pct(nice * i / 4)}</text>"
        )
    for i, ((label, r), (_, k)) in enumerate(zip(ref, cur, strict=True)):
        x = left + i * step
        rh, kh = plot_h * r / nice, plot_h * k / nice
        title = f"{escape(label)}: reference {_pct(r)}, current {_pct(k)}"
        parts.append(
            f'<g><title>{title}</title><rect x="{x + step * 0.06:.1f}" y="{top + plot_h - rh:.1f}" '
            f'width="{step * 0.88:.1f}" height="{rh:.1f}" fill="{REFERENCE_COLOR}"/>'
            f'<rect x="{x + step * 0.3:.1f}" y="{top + plot_h - kh:.1f}" width="{step * 0.4:.1f}" '
            f'height="{kh:.1f}" fill="{CURRENT_COLOR}"/></g>'
        )
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#8c959f"/>'
    )
    parts.extend(_x_labels(c, left, top + plot_h, step, n))
    parts.append("</svg>")
    return "".join(parts)


def _x_labels(c: ColumnDrift, left: float, base: float, step: float, n: int) -> list[str]:
    if c.hist_edges:  # a numerical axis: a few edge values
        ticks = sorted({0, n // 4, n // 2, 3 * n // 4, n})
        anchor = {0: "start", n: "end"}
        return [
            f'<text x="{left + i * step:.1f}" y="{base + 16}" text-anchor="{anchor.get(i, "middle")}" '
            f'font-size="10" fill="#57606a">{escape(_fmt(c.hist_edges[i]))}</text>'
            for i in ticks
        ]
    out = []
    for i, (label, _) in enumerate(c.reference_hist):
        short = label if len(label) <= 14 else label[:13] + "…"
        x = left + (i + 0.5) * step
        out.append(
            f'<text x="{x:.1f}" y="{base + 12}" text-anchor="end" font-size="10" fill="#57606a" '
            f'transform="rotate(-35 {x:.1f} {base + 12})">{escape(short)}</text>'
        )
    return out


def _nice_ceiling(x: float) -> float:
    """The axis top: the next of 1, 2, 4, 6, 8 x 10^k above the highest bar (quarters stay round)."""
    exp = math.floor(math.log10(x))
    for m in (1, 2, 4, 6, 8, 10):
        if m * 10**exp >= x:
            return float(m * 10**exp)
    return float(10 ** (exp + 1))


def _card(i: int, c: ColumnDrift) -> str:
    cls = " drift" if c.drifted else ""
    facts = [f"missing <b>{_pct(c.missing_share)}</b>"]
    if c.kind != "categorical":
        facts.append(f"outside reference range <b>{_pct(c.out_of_range_share)}</b>")
    if c.new_categories:
        shown = ", ".join(escape(n) for n in c.new_categories[:8])
        more = f" and {len(c.new_categories) - 8} more" if len(c.new_categories) > 8 else ""
        facts.append(f"new categories ({_pct(c.new_category_share)} of rows): <b>{shown}</b>{more}")
    note = f'<div class="note">{escape(c.note)}</div>' if c.note else ""
    return (
        f'<section class="card{cls}" id="col-{i}">'
        f'<h3><span class="badge{cls}">{"DRIFT" if c.drifted else "OK"}</span>{escape(c.column)}'
        f'<span class="kind">{escape(c.kind)}</span></h3>'
        f'<div class="test">{TEST_NAMES.get(c.stattest, escape(c.stattest))}: {_comparison(c)}</div>'
        f"{_chart(c)}"
        f'<div class="facts">{" · ".join(facts)}</div>{note}</section>'
    )


def _row(i: int, c: ColumnDrift) -> str:
    cls = ' class="drift"' if c.drifted else ""
    badge = f'<span class="badge{" drift" if c.drifted else ""}">{"DRIFT" if c.drifted else "OK"}</span>'
    return (
        f'<tr{cls}><td><a href="#col-{i}">{escape(c.column)}</a></td><td>{escape(c.kind)}</td>'
        f"<td>{TEST_NAMES.get(c.stattest, escape(c.stattest))}</td>"
        f'<td class="num">{_fmt(c.statistic)}</td><td class="num">{_fmt(c.p_value)}</td>'
        f'<td class="num">{_fmt(c.threshold)}</td><td class="num">{_pct(c.missing_share)}</td>'
        f"<td>{badge}</td></tr>"
    )


def _chips(window: Mapping[str, Any] | None) -> str:
    if not window:
        return ""
    return "".join(
        f'<span class="chip">{escape(str(k))}: <b>{escape(str(v))}</b></span>' for k, v in window.items()
    )


def _performance(perf: Mapping[str, float] | None) -> str:
    if not perf:
        return ""
    cells = "".join(f"<div><span>{escape(str(k))}</span><b>{_fmt(v)}</b></div>" for k, v in perf.items())
    return f'<h2>Model quality</h2><div class="perf">{cells}</div>'


def _ordered(columns: Sequence[ColumnDrift]) -> list[tuple[int, ColumnDrift]]:
    """Drifted first; within each group the clearest evidence first (smallest p, largest distance)."""

    def key(item: tuple[int, ColumnDrift]) -> tuple[int, float, int]:
        i, c = item
        strength = -c.p_value if c.p_value is not None else c.statistic
        return (0 if c.drifted else 1, -strength if not math.isnan(strength) else -math.inf, i)

    return sorted(enumerate(columns), key=key)


def render_report(
    title: str,
    result: DriftResult,
    *,
    window: Mapping[str, Any] | None = None,
    performance: Mapping[str, float] | None = None,
) -> str:
    """The drift of one window against its reference as a standalone HTML page."""
    drifted = sum(c.drifted for c in result.columns)
    total = len(result.columns)
    cls = " drift" if result.dataset_drift else ""
    verdict = "Dataset drift detected" if result.dataset_drift else "No dataset drift"
    ordered = _ordered(result.columns)
    share_w = min(100.0, 100 * result.drift_share)
    mark = min(100.0, 100 * result.drift_share_threshold)
    summary = (
        f'<div class="verdict{cls}"><div><div class="big">{verdict}</div>'
        f"<div>{drifted} of {total} columns drifted ({_pct(result.drift_share)}); "
        f"dataset drift at {_pct(result.drift_share_threshold)}</div>"
        f'<div class="sharebar"><i style="width:{share_w:.1f}%"></i>'
        f'<u style="left:{mark:.1f}%"></u></div></div>'
        f'<div class="kpis"><div class="kpi"><b>{result.reference_rows:,}</b>'
        "<span>reference rows</span></div>"
        f'<div class="kpi"><b>{result.current_rows:,}</b><span>current rows</span></div>'
        f'<div class="kpi"><b>{drifted}/{total}</b><span>drifted columns</span></div></div></div>'
    )
    legend = (
        f'<div class="legend">Shares of non-missing values on the same bins:'
        f'<span class="sw" style="background:{REFERENCE_COLOR}"></span>reference'
        f'<span class="sw" style="background:{CURRENT_COLOR}"></span>current window</div>'
    )
    table = (
        "<table><thead><tr><th>Column</th><th>Type</th><th>Test</th><th>Statistic</th><th>p-value</th>"
        "<th>Threshold</th><th>Missing</th><th>Verdict</th></tr></thead><tbody>"
        + "".join(_row(i, c) for i, c in ordered)
        + "</tbody></table>"
    )
    cards = '<div class="grid">' + "".join(_card(i, c) for i, c in ordered) + "</div>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{escape(title)}</h1><div class="sub">Data drift report · Modelog</div>{_chips(window)}'
        f"{summary}{_performance(performance)}<h2>Columns</h2>{table}<h2>Distributions</h2>{legend}{cards}"
        "<footer>Tests and thresholds as Evidently 0.7.23 chooses them by default unless the monitor "
        "overrides them. Generated by Modelog.</footer></main></body></html>\n"
    )
