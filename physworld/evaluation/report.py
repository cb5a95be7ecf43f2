"""One self-contained HTML page from one or several `physworld evaluate` output directories.

    from physworld.evaluation.report import write_report
    write_report([Path("runs/eval/expert")], Path("report.html"))                  # one evaluation
    write_report([Path("runs/eval/a"), Path("runs/eval/b")], Path("board.html"))   # a leaderboard

Each directory holds the metrics.json described in docs/METRICS.md and, beside it, the comparison
GIFs the evaluator renders (comparison_gifs/<type>_cmp.gif: ground truth left in green, prediction
right in blue).

One directory gives a page for that evaluation: what was evaluated (model, checkpoint, dataset,
settings), a verdict sentence per split computed from the numbers (the model "loses" to a baseline
whenever that baseline's position error is lower; every loss is named), the headline table (position
error and MSE at each horizon and over the full rollout, one row per method, the best method other
than the chaos floor in bold), a table per scenario type (seen and held-out types apart), error
versus horizon plots, the physical plausibility table and the comparison GIFs.

Several directories (several models scored on the same scenes) give a leaderboard: every model and
the baselines ranked by position error at the largest horizon, per split, with plots of a line per
model, then each model's own section (collapsed). The directories must share val_dir, scene_ids
and the rollout settings (ValueError otherwise); baselines come from the first evaluation and are
checked to be the same in the others (a warning, and a notice on the page, when they are not).

Design. The page needs nothing outside itself: inline CSS, no script, plots as hand-written inline
SVG (no plotting dependency, crisp at any zoom, text selectable), GIFs as base64 data URIs, and a
Content-Security-Policy that forbids any request other than data: images, so a stray reference
would fail visibly instead of leaking a request. Output is deterministic (no timestamps, fixed
number formatting, input order or sorted names): the same inputs give the same bytes. Every string
taken from metrics.json is HTML-escaped. The file is written atomically (temporary file beside it,
then os.replace).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "physworld-metrics"
FORMAT_VERSION = 1

MODEL = "model"
FLOOR = "chaos_floor"
SPLITS = ("seen", "heldout", "all")
PLOT_SPLITS = ("seen", "heldout")
SPLIT_TITLE = {"seen": "Seen types", "heldout": "Held-out types", "all": "All types"}
SPLIT_SHORT = {"seen": "seen", "heldout": "held-out", "all": "all"}
SPLIT_PHRASE = {"seen": "On seen types", "heldout": "On held-out types", "all": "Over all types"}
METHOD_NAMES = {
    "constant_position": "constant position",
    "constant_velocity": "constant velocity",
    "ballistic": "ballistic",
    "chaos_floor": "chaos floor",
}
# (colour, SVG dash pattern, line width) per method; models are solid, baselines dashed, the floor dotted
METHOD_STYLE = {
    "model": ("#1f5fbf", "", 2.6),
    "constant_position": ("#d98400", "7 4", 1.7),
    "constant_velocity": ("#2a9d4b", "7 4", 1.7),
    "ballistic": ("#8e44ad", "7 4", 1.7),
    "chaos_floor": ("#444444", "2 3", 1.7),
}
OTHER_STYLE = ("#888888", "4 2", 1.5)
MODEL_PALETTE = ("#1f5fbf", "#d62728", "#0f9aa8", "#8c564b", "#e377c2", "#7f7f00", "#000080", "#b8860b")

# The page may load data: images and use its own inline style, nothing else (no script, no request).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #ffffff; --panel: #f5f7fa;
        --win: #1e7b3a; --winbg: #e7f5ec; --loss: #b3261e; --lossbg: #fdecea; --model: #eef4fd; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 17px; margin: 22px 0 8px; }
p.sub, .muted { color: var(--muted); }
nav { margin: 12px 0 4px; font-size: 14px; }
nav a { margin-right: 14px; color: #1f5fbf; text-decoration: none; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 12px 0;
          background: var(--panel); padding: 12px 16px; border-radius: 6px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
ul.verdicts { list-style: none; padding: 0; margin: 12px 0; }
ul.verdicts li { padding: 8px 12px; margin: 6px 0; border-left: 5px solid var(--line); background: var(--panel);
                 border-radius: 0 6px 6px 0; }
ul.verdicts li.loss { border-color: var(--loss); background: var(--lossbg); }
ul.verdicts li.win { border-color: var(--win); background: var(--winbg); }
.notice { padding: 8px 12px; margin: 10px 0; border-left: 5px solid #c77c00; background: #fff5e0;
          border-radius: 0 6px 6px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); }
th { background: var(--panel); font-weight: 600; text-align: center; }
td.l { white-space: nowrap; }
td.split { background: #fff !important; font-style: normal !important; color: var(--fg) !important; }
th.l, td.l { text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.model td { background: var(--model); }
tr.floor td { color: var(--muted); font-style: italic; }
td.loss { color: var(--loss); font-weight: 600; }
td.win { color: var(--win); font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 18px; }
figure.plot { margin: 0; }
figure.plot svg { max-width: 100%; height: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: #333; }
.gifs { display: flex; flex-wrap: wrap; gap: 18px; }
figure.gif { margin: 0; padding: 8px; background: var(--panel); border-radius: 6px; }
figure.gif img { display: block; max-width: 100%; height: auto; image-rendering: pixelated; }
figure.gif figcaption { font-size: 13px; margin-top: 4px; }
.key { font-size: 13px; color: var(--muted); }
.key .gt { color: #1e8a3a; font-weight: 600; } .key .pred { color: #1f5fbf; font-weight: 600; }
details.model { margin: 18px 0; border: 1px solid var(--line); border-radius: 8px; padding: 0 16px; }
details.model > summary { cursor: pointer; padding: 12px 0; font-size: 18px; font-weight: 600; }
details.model[open] > summary { border-bottom: 1px solid var(--line); }
footer { margin-top: 40px; font-size: 13px; color: var(--muted); }
"""


# ---------------------------------------------------------------- loading


def load_metrics(eval_dir) -> dict:
    """Read `<eval_dir>/metrics.json` (or the .json file given), check its format; return the dict.

    FileNotFoundError when the file is missing; ValueError, naming the file, when it is not valid
    JSON, not a physworld metrics file, of another format_version, or lacks a required part.
    """
    path = Path(eval_dir)
    if path.suffix != ".json" or path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no metrics file (an evaluation directory holds the metrics.json "
            "that `physworld evaluate` writes)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: not a physworld metrics file (format {found!r}, expected {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {data.get('format_version')!r}; this report reads "
            f"format_version {FORMAT_VERSION} (see docs/METRICS.md)"
        )
    for key, kind in (
        ("model", dict),
        ("dataset", dict),
        ("settings", dict),
        ("methods", list),
        ("aggregate", dict),
    ):
        if not isinstance(data.get(key), kind):
            raise ValueError(
                f"{path}: missing or malformed {key!r} (expected a JSON {kind.__name__ if kind is list else 'object'})"
            )
    horizons = data["settings"].get("horizons")
    if not (isinstance(horizons, list) and horizons and all(isinstance(h, int) and h > 0 for h in horizons)):
        raise ValueError(
            f"{path}: settings.horizons must be a non-empty list of positive integers, got {horizons!r}"
        )
    if not all(isinstance(m, str) for m in data["methods"]) or MODEL not in data["methods"]:
        raise ValueError(f"{path}: methods {data['methods']!r} do not include {MODEL!r}")
    return data


# ---------------------------------------------------------------- numbers and words


def _e(value) -> str:
    """HTML-escape any value (every string from metrics.json goes through here)."""
    return html.escape(str(value), quote=True)


def _num(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _finite(x) -> bool:
    v = _num(x)
    return v is not None and math.isfinite(v)


def fmt(x, digits: int = 3) -> str:
    """A number for people: `digits` significant figures (12.3, 8.10, 0.0412), thousands grouped
    (1,234), scientific below 0.001; "—" when missing; NaN and ∞ shown as such, never hidden."""
    v = _num(x)
    if v is None:
        return "—"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 0.001:
        decimals = max(0, digits - 1 - math.floor(math.log10(a)))
        return f"{v:.{decimals}f}"
    return f"{v:.{digits - 1}e}"


def fmt_count(x) -> str:
    """A count (scenes, parse failures): a whole number, thousands grouped."""
    v = _num(x)
    return f"{int(v):,}" if v is not None and math.isfinite(v) and v.is_integer() else fmt(v)


def fmt_pct(x) -> str:
    v = _num(x)
    return fmt(v) if v is None or not math.isfinite(v) else f"{fmt(100 * v)} %"


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """Format two different numbers with enough digits that they read different."""
    for digits in range(3, 8):
        fa, fb = fmt(a, digits), fmt(b, digits)
        if fa != fb:
            break
    return fa, fb


def method_name(method: str, model_label: str = "the model") -> str:
    if method == MODEL:
        return model_label
    return METHOD_NAMES.get(method, method.replace("_", " "))


def _rank_key(v) -> tuple:
    """Sort finite values first (ascending), then NaN/inf, then missing."""
    n = _num(v)
    if n is None:
        return (2, 0.0)
    if not math.isfinite(n):
        return (1, 0.0)
    return (0, n)


def _value(row: dict | None, metric: str, key: str):
    if not isinstance(row, dict):
        return None
    table = row.get(metric)
    return table.get(key) if isinstance(table, dict) else None


def _compare(
    model_v, baselines: list[tuple[str, object]], lead: str, subject: str, where: str
) -> tuple[str, str]:
    """One sentence comparing the model's error with every baseline's; returns (text, kind)."""
    words = " ".join(w for w in (lead, subject) if w)
    at = f" {where}" if where else ""
    base = [(name, _num(v)) for name, v in baselines if _finite(v)]
    m = _num(model_v)
    if not base:
        return f"{words} has no baseline to compare with{at} ({fmt(m)} px).", "none"
    best_name, best_v = min(base, key=lambda nv: nv[1])
    if m is None or not math.isfinite(m):
        # the evaluator writes null for a diverged rollout (JSON has no NaN): no number is a loss, not a pass
        why = "missing (null in metrics.json: a diverged rollout)" if m is None else f"not finite ({fmt(m)})"
        return (
            f"{words} loses to every baseline{at}: its position error is {why}; "
            f"the best baseline, {best_name}, has {fmt(best_v)} px.",
            "loss",
        )
    losses = sorted(((n, v) for n, v in base if v < m), key=lambda nv: nv[1])
    ties = [n for n, v in base if v == m]
    if losses:
        (n0, v0), rest = losses[0], losses[1:]
        fm, fb = _fmt_pair(m, v0)
        text = f"{words} loses to the {n0} baseline{at} ({fm} px vs {fb} px)"
        if rest:
            text += "; it also loses to " + ", ".join(f"{n} ({_fmt_pair(m, v)[1]} px)" for n, v in rest)
        if ties:
            text += " and ties with " + ", ".join(ties)
        return text + ".", "loss"
    if ties:
        others = [n for n, v in base if v != m]
        tail = " and beats every other baseline" if others else ""
        return f"{words} ties with the {' and '.join(ties)} baseline{at} ({fmt(m)} px each){tail}.", "tie"
    fm, fb = _fmt_pair(m, best_v)
    return f"{words} beats every baseline{at} ({fm} px vs {fb} px for {best_name}, the best baseline).", "win"


def unparsed(metrics: dict, split: str) -> tuple[int, int]:
    """(predicted frames that could not be parsed in full, predicted frames) of the model in a split.
    Only a language model has them: the bodies the parser could not read move at constant velocity so
    the rollout goes on, which makes the model's numbers partly that baseline's."""
    row = ((metrics.get("aggregate") or {}).get(split) or {}).get(MODEL) or {}
    failures = int(_num(row.get("parse_failures")) or 0)
    scenes = sum(
        int(t.get("num_scenes", 0))
        for t in (metrics.get("per_type") or {}).values()
        if split == "all" or t.get("split") == split
    )
    return failures, scenes * int(metrics["settings"]["rollout_frames"])


def no_score(failures: int, frames: int) -> bool:
    """No predicted frame parsed in full: the numbers are not the model's own."""
    return frames > 0 and failures >= frames


def verdict(metrics: dict, split: str, subject: str = "the model") -> tuple[str, str]:
    """Plain-language verdict for one split from the aggregate numbers: (text, kind), kind one of
    "loss" (the model loses to at least one baseline, at the largest horizon or over the full
    rollout), "win", "tie" or "none" (no numbers). The text names every baseline the model loses to."""
    agg = (metrics.get("aggregate") or {}).get(split) or {}
    top = str(max(metrics["settings"]["horizons"]))
    baselines = [m for m in metrics["methods"] if m not in (MODEL, FLOOR)]
    lead = SPLIT_PHRASE.get(split, f"On {split}")
    if not isinstance(agg.get(MODEL), dict):
        return f"{lead} there are no model numbers in this evaluation.", "none"
    failures, frames = unparsed(metrics, split)
    if no_score(failures, frames):
        return (
            f"{lead} {subject} wrote no frame that could be parsed in full ({fmt_count(failures)} of "
            f"{fmt_count(frames)} predicted frames had bodies the parser could not read, and those moved at "
            "constant velocity): its numbers are not its own, so it has no score here, which counts as a loss.",
            "loss",
        )
    sentences, kinds = [], []
    for key, where, lead_k, subj in (
        (top, f"at horizon {top}", lead, subject),
        ("all", "", "Over the full rollout", "it"),
    ):
        pairs = [(method_name(b), _value(agg.get(b), "position_error_px", key)) for b in baselines]
        text, kind = _compare(_value(agg[MODEL], "position_error_px", key), pairs, lead_k, subj, where)
        sentences.append(text)
        kinds.append(kind)
    m_top = _num(_value(agg[MODEL], "position_error_px", top))
    floor = _num(_value(agg.get(FLOOR), "position_error_px", top)) if FLOOR in metrics["methods"] else None
    if floor is not None and math.isfinite(floor) and m_top is not None and math.isfinite(m_top):
        if m_top < floor:
            sentences.append(
                f"Its error at horizon {top} is below the chaos floor ({fmt(m_top)} px vs "
                f"{fmt(floor)} px), which no model should beat: check that no ground truth "
                "leaks into the rollout."
            )
        else:
            sentences.append(f"The chaos floor at horizon {top} is {fmt(floor)} px.")
    if failures:
        sentences.append(
            f"{fmt_count(failures)} of {fmt_count(frames)} predicted frames ({100 * failures / frames:.0f}%) "
            "could not be parsed in full; their unreadable bodies moved at constant velocity, so these "
            "numbers are partly that baseline's."
        )
    kind = next((k for k in ("loss", "tie", "win") if k in kinds), "none")
    return " ".join(sentences), kind


# ---------------------------------------------------------------- SVG plots


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    p = 10 ** math.floor(math.log10(raw))
    for k in (1, 2, 2.5, 5, 10):
        if raw <= k * p:
            return k * p
    return 10 * p


def _tick_label(v: float, step: float | None = None) -> str:
    if step is not None and step < 1:
        return f"{v:.{max(0, -math.floor(math.log10(step) + 1e-9))}f}"
    if abs(v) >= 1 and float(v).is_integer():
        return f"{int(round(v)):,}"
    return f"{v:g}"


@dataclass
class Series:
    name: str
    values: list
    color: str
    dash: str = ""
    width: float = 2.0


def svg_line_plot(series: list[Series], title: str, marks=(), ylabel: str = "position error (px)") -> str:
    """An inline SVG line plot of error against horizon (x = 1 .. len(values)); log y when the
    values span more than a factor 20 and are all positive. Non-finite points break the line."""
    finite = [float(v) for s in series for v in s.values if _finite(v)]
    n = max((len(s.values) for s in series), default=0)
    if not finite or n == 0:
        return f'<p class="muted">{_e(title)}: no error-versus-horizon data.</p>'
    log = min(finite) > 0 and max(finite) / min(finite) > 20
    pw, ph, left, top, right = 410, 250, 60, 34, 14
    legend_top, legend_rows = top + ph + 58, (len(series) + 1) // 2  # legend below, in two columns
    width, height = left + pw + right, legend_top + 18 * legend_rows
    if log:
        lo, hi = math.floor(math.log10(min(finite))), math.ceil(math.log10(max(finite)))
        hi = hi if hi > lo else lo + 1

        def ymap(v):
            return top + ph - (math.log10(v) - lo) / (hi - lo) * ph

        yticks = []
        for k in range(lo, hi + 1):
            yticks.append((10.0**k, True))
            if hi - lo <= 2 and k < hi:
                yticks += [(2 * 10.0**k, False), (5 * 10.0**k, False)]
        ytick_labels = [(v, _tick_label(float(f"{v:.6g}"))) for v, _ in yticks]
    else:
        ymin = min(0.0, min(finite))
        step = _nice_step((max(finite) - ymin) / 5 or 1.0)
        ymax = math.ceil(max(finite) / step) * step or step
        ymin = math.floor(ymin / step) * step

        def ymap(v):
            return top + ph - (v - ymin) / (ymax - ymin) * ph

        count = int(round((ymax - ymin) / step))
        ytick_labels = [(ymin + i * step, _tick_label(ymin + i * step, step)) for i in range(count + 1)]
    x0, x1 = (0.5, 1.5) if n == 1 else (1.0, float(n))

    def xmap(x):
        return left + (x - x0) / (x1 - x0) * pw

    xstep = next(k * 10**p for p in range(9) for k in (1, 2, 5) if k * 10**p >= n / 6)
    xticks = sorted({1, *range(xstep, n + 1, xstep)})  # 1, 5, 10, 15, 20 for 20 frames
    out = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(title)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="20" style="font-weight:600;font-size:13px">{_e(title)}</text>',
    ]
    for v, text in ytick_labels:
        y = ymap(v)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e6e9ef"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(text)}</text>')
    for x in xticks:
        px = xmap(x)
        out.append(f'<line x1="{px:.1f}" y1="{top + ph}" x2="{px:.1f}" y2="{top + ph + 4}" stroke="#555"/>')
        out.append(f'<text x="{px:.1f}" y="{top + ph + 17}" text-anchor="middle">{x}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{top + ph + 38}" text-anchor="middle">'
        "horizon (predicted frame)</text>"
    )
    ylab = ylabel + (", log scale" if log else "")
    out.append(
        f'<text transform="translate(14 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{_e(ylab)}</text>"
    )
    marks = [h for h in marks if 1 <= h <= n]
    for s in series:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f"<g><title>{_e(s.name)}</title>")
        segment: list[str] = []
        points = list(enumerate(s.values, start=1)) + [(None, None)]
        for x, v in points:
            ok = x is not None and _finite(v) and (not log or float(v) > 0)
            if ok:
                segment.append(f"{xmap(x):.1f},{ymap(float(v)):.1f}")
                continue
            if len(segment) > 1:
                out.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" stroke="{s.color}" '
                    f'stroke-width="{s.width}"{dash} stroke-linejoin="round"/>'
                )
            elif len(segment) == 1:
                cx, cy = segment[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{s.color}"/>')
            segment = []
        for h in marks:
            if h <= len(s.values) and _finite(s.values[h - 1]) and (not log or float(s.values[h - 1]) > 0):
                out.append(
                    f'<circle cx="{xmap(h):.1f}" cy="{ymap(float(s.values[h - 1])):.1f}" r="2.6" '
                    f'fill="{s.color}"/>'
                )
        out.append("</g>")
    for i, s in enumerate(series):
        lx, y = 14 + (i % 2) * (width // 2), legend_top + 18 * (i // 2)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        name = s.name if len(s.name) <= 30 else s.name[:29] + "…"
        out.append(
            f'<line x1="{lx}" y1="{y}" x2="{lx + 26}" y2="{y}" stroke="{s.color}" '
            f'stroke-width="{s.width}"{dash}/>'
        )
        out.append(f'<text x="{lx + 32}" y="{y + 4}"><title>{_e(s.name)}</title>{_e(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


# ---------------------------------------------------------------- one evaluation


@dataclass
class _Eval:
    path: Path  # the evaluation directory
    metrics: dict
    label: str = ""
    prefix: str = ""  # id prefix, unique per evaluation on the page
    notices: list = field(default_factory=list)

    @property
    def horizons(self) -> list[int]:
        return list(self.metrics["settings"]["horizons"])

    @property
    def top(self) -> str:
        return str(max(self.horizons))

    @property
    def methods(self) -> list[str]:
        return list(self.metrics["methods"])

    def agg(self, split: str) -> dict:
        return (self.metrics.get("aggregate") or {}).get(split) or {}

    def per_type(self) -> dict:
        return self.metrics.get("per_type") or {}

    def name(self, method: str) -> str:
        return method_name(method, self.label)


def _eval_dir(p: Path) -> Path:
    return p.parent if p.suffix == ".json" and not p.is_dir() else p


def _meta(ev: _Eval) -> str:
    m, ds, st = ev.metrics["model"], ev.metrics["dataset"], ev.metrics["settings"]
    seen, held = ds.get("seen_types") or [], ds.get("heldout_types") or []

    def types(ts):
        return ", ".join(_e(t) for t in ts) if ts else '<span class="muted">none</span>'

    rows = [
        ("model", f'{_e(ev.label)} <span class="muted">({_e(m.get("name", "?"))})</span>'),
        ("checkpoint", f"<code>{_e(m.get('checkpoint', '—'))}</code>"),
        (
            "dataset",
            f"<code>{_e(ds.get('val_dir', '—'))}</code>, {_e(fmt_count(ds.get('num_scenes')))} scenes",
        ),
        (
            "rollout",
            f"{_e(st.get('context_frames', '?'))} context frames (ground truth), then "
            f"{_e(st.get('rollout_frames', '?'))} predicted frames; horizons "
            f"{', '.join(_e(h) for h in ev.horizons)}",
        ),
        ("scenes per type", f"at most {_e(st.get('max_scenes_per_type', '—'))}"),
        ("chaos floor", f"initial positions perturbed by {_e(st.get('chaos_epsilon_px', '—'))} px"),
        (f"seen types ({len(seen)})", types(seen)),
        (f"held-out types ({len(held)})", types(held)),
    ]
    fps = (ev.metrics.get("timing") or {}).get("rollout_frames_per_s")
    if fps is not None:
        rows.append(("rollout speed", f"{_e(fmt(fps))} frames/s"))
    rows.append(("evaluation directory", f"<code>{_e(ev.path)}</code>"))
    return '<dl class="meta">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _split_scenes(ev: _Eval, split: str) -> str:
    if split == "all":
        n = _num(ev.metrics["dataset"].get("num_scenes"))
        ntypes = len(ev.per_type())
    else:
        entries = [t for t in ev.per_type().values() if isinstance(t, dict) and t.get("split") == split]
        ntypes = len(entries)
        n = sum(_num(t.get("num_scenes")) or 0 for t in entries) if entries else None
    if n is None:
        return ""
    return f" ({ntypes} type{'s' if ntypes != 1 else ''}, {fmt_count(n)} scenes)"


def _verdicts_html(ev: _Eval, subject: str = "the model") -> str:
    items = []
    for split in SPLITS:
        if not ev.agg(split):
            continue
        text, kind = verdict(ev.metrics, split, subject)
        items.append(f'<li class="{kind}">{_e(text)}</li>')
    if not items:
        return '<p class="notice">metrics.json has no aggregate numbers.</p>'
    return '<ul class="verdicts">' + "".join(items) + "</ul>"


def _best_cells(values: dict[str, object], methods: list[str]) -> set[str]:
    """Methods holding the lowest finite value among methods other than the chaos floor."""
    cands = [(m, _num(values.get(m))) for m in methods if m != FLOOR and _finite(values.get(m))]
    if not cands:
        return set()
    best = min(v for _, v in cands)
    return {m for m, v in cands if v == best}


def _num_cell(v, bold: bool = False, cls: str = "") -> str:
    text = _e(fmt(v))
    return f'<td class="n{(" " + cls) if cls else ""}">{f"<strong>{text}</strong>" if bold else text}</td>'


def _headline_table(ev: _Eval, split: str) -> str:
    agg = ev.agg(split)
    keys = [str(h) for h in ev.horizons] + ["all"]
    metrics = [("position_error_px", "position error (px)"), ("position_mse_px2", "position MSE (px²)")]
    head1 = (
        '<tr><th class="l" rowspan="2">method</th>'
        + "".join(f'<th colspan="{len(keys)}">{label}</th>' for _, label in metrics)
        + "</tr>"
    )
    head2 = (
        "<tr>"
        + "".join(f"<th>{'h=' + _e(k) if k != 'all' else 'full rollout'}</th>" for _ in metrics for k in keys)
        + "</tr>"
    )
    best = {
        (metric, k): _best_cells({m: _value(agg.get(m), metric, k) for m in ev.methods}, ev.methods)
        for metric, _ in metrics
        for k in keys
    }
    rows = []
    for m in ev.methods:
        cls = "model" if m == MODEL else "floor" if m == FLOOR else ""
        name = _e(ev.name(m))
        cells = "".join(
            _num_cell(_value(agg.get(m), metric, k), m in best[(metric, k)])
            for metric, _ in metrics
            for k in keys
        )
        rows.append(f'<tr class="{cls}"><td class="l">{name}</td>{cells}</tr>')
    return f'<div class="scroll"><table>{head1}{head2}{"".join(rows)}</table></div>'


def _headline(ev: _Eval) -> str:
    parts = []
    for split in SPLITS:
        parts.append(
            f'<h3 id="{ev.prefix}headline-{split}">{SPLIT_TITLE[split]}{_e(_split_scenes(ev, split))}</h3>'
        )
        if not ev.agg(split):
            parts.append(f'<p class="muted">No {SPLIT_SHORT[split]} scenes in this evaluation.</p>')
            continue
        parts.append(_headline_table(ev, split))
    return "\n".join(parts)


def _type_table(ev: _Eval, names: list[str]) -> str:
    top = ev.top
    baselines = [m for m in ev.methods if m not in (MODEL, FLOOR)]
    head = (
        '<tr><th class="l" rowspan="2">scenario type</th><th rowspan="2">split</th>'
        '<th rowspan="2">scenes</th>'
        f'<th colspan="3">position error at horizon {_e(top)} (px)</th>'
        '<th colspan="3">position error over the full rollout (px)</th>'
        f'<th class="l" rowspan="2">at horizon {_e(top)}</th></tr>'
        "<tr>" + "<th>model</th><th>best baseline</th><th>chaos floor</th>" * 2 + "</tr>"
    )
    rows, wins, losses = [], 0, []
    for t in names:
        entry = ev.per_type()[t]
        cells, verdict_cell = [], ""
        unscored = no_score(
            int(_num((entry.get(MODEL) or {}).get("parse_failures")) or 0),
            int(entry.get("num_scenes") or 0) * int(ev.metrics["settings"]["rollout_frames"]),
        )
        for key in (top, "all"):
            mv = _value(entry.get(MODEL), "position_error_px", key)
            base = sorted(
                (
                    (b, _value(entry.get(b), "position_error_px", key))
                    for b in baselines
                    if _finite(_value(entry.get(b), "position_error_px", key))
                ),
                key=lambda bv: (float(bv[1]), bv[0]),
            )
            if base:
                bn, bv = base[0]
                lost = not _finite(mv) or float(mv) > float(bv)
                cls = "loss" if lost else "tie" if _num(mv) == float(bv) else "win"
            else:
                bn, bv, cls, lost = None, None, "", False
            cells.append(_num_cell(mv, cls=cls))
            cells.append(
                f'<td class="n">{_e(fmt(bv))}'
                f"{f' <span class=muted>({_e(method_name(bn))})</span>' if bn else ''}</td>"
            )
            cells.append(f'<td class="n">{_e(fmt(_value(entry.get(FLOOR), "position_error_px", key)))}</td>')
            if key == top:
                if unscored:  # every frame had bodies moved by the constant-velocity fallback
                    losses.append(t)
                    verdict_cell = '<td class="l loss">no frame parsed in full: no score</td>'
                elif not cls:
                    verdict_cell = '<td class="l muted">no comparison</td>'
                elif lost:
                    losses.append(t)
                    verdict_cell = f'<td class="l loss">loses to {_e(method_name(bn))}</td>'
                elif cls == "tie":
                    verdict_cell = f'<td class="l">ties with {_e(method_name(bn))}</td>'
                else:
                    wins += 1
                    verdict_cell = '<td class="l win">beats every baseline</td>'
        rows.append(
            f'<tr><td class="l">{_e(t)}</td><td>{_e(SPLIT_SHORT.get(entry.get("split"), entry.get("split")))}'
            f'</td><td class="n">{_e(fmt_count(entry.get("num_scenes")))}</td>{"".join(cells)}{verdict_cell}</tr>'
        )
    summary = (
        f"<p>The model beats every baseline at horizon {_e(top)} on {wins} of {len(names)} "
        f"type{'s' if len(names) != 1 else ''}"
        + (f"; it loses to a baseline on {_e(', '.join(losses))}" if losses else "")
        + ".</p>"
    )
    return summary + f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def _types_by_split(ev: _Eval) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for t, entry in ev.per_type().items():
        if isinstance(entry, dict):
            groups.setdefault(str(entry.get("split")), []).append(t)
    order = [s for s in ("seen", "heldout") if s in groups] + sorted(
        s for s in groups if s not in ("seen", "heldout")
    )
    return [(s, sorted(groups[s])) for s in order]


def _per_type(ev: _Eval) -> str:
    groups = dict(_types_by_split(ev))
    parts = []
    for split in ("seen", "heldout"):
        parts.append(f'<h3 id="{ev.prefix}types-{split}">{SPLIT_TITLE[split]}</h3>')
        parts.append(
            _type_table(ev, groups.pop(split))
            if split in groups
            else f'<p class="muted">No {SPLIT_SHORT[split]} types in this evaluation.</p>'
        )
    for split, names in groups.items():
        parts.append(f"<h3>Types with split {_e(split)}</h3>" + _type_table(ev, names))
    return "\n".join(parts)


def _method_series(ev: _Eval, split: str, skip=()) -> list[Series]:
    evh = (ev.metrics.get("error_vs_horizon") or {}).get(split) or {}
    out = []
    for m in ev.methods:
        if m not in skip and isinstance(evh.get(m), list):
            color, dash, width = METHOD_STYLE.get(m, OTHER_STYLE)
            out.append(Series(ev.name(m), evh[m], color, dash, width))
    return out


def _plots(ev: _Eval) -> str:
    figs = []
    for split in PLOT_SPLITS:
        title = f"{SPLIT_TITLE[split]}: position error vs horizon"
        figs.append(
            f'<figure class="plot">{svg_line_plot(_method_series(ev, split), title, ev.horizons)}</figure>'
        )
    return '<div class="plots">' + "".join(figs) + "</div>"


def _plausibility(ev: _Eval) -> str:
    head = (
        '<tr><th class="l">split</th><th class="l">method</th><th>energy drift</th>'
        "<th>penetration (px)</th><th>static penetration (px)</th><th>parse failures</th></tr>"
    )
    rows = []
    for split in SPLITS:
        agg = ev.agg(split)
        if not agg:
            continue
        methods = [m for m in ev.methods if isinstance(agg.get(m), dict)]
        for i, m in enumerate(methods):
            r = agg[m]
            cls = "model" if m == MODEL else "floor" if m == FLOOR else ""
            split_cell = (
                f'<td class="l split" rowspan="{len(methods)}">{SPLIT_SHORT[split]}</td>' if i == 0 else ""
            )
            rows.append(
                f'<tr class="{cls}">{split_cell}<td class="l">{_e(ev.name(m))}</td>'
                f'<td class="n">{_e(fmt_pct(r.get("energy_drift")))}</td>'
                f"{_num_cell(r.get('penetration_px'))}{_num_cell(r.get('static_penetration_px'))}"
                f'<td class="n">{_e(fmt_count(r.get("parse_failures")))}</td></tr>'
            )
    if not rows:
        return '<p class="muted">No aggregate numbers.</p>'
    note = (
        '<p class="key">Energy drift: |E(last predicted frame) − E(last context frame)| / |E(last context '
        "frame)|, mean over scenes. Penetration: deepest overlap between two bodies (static: between a body "
        "and static geometry) over the predicted frames, mean over scenes. The chaos floor row is a "
        "re-simulation, so its drift and penetration are the simulator's own.</p>"
    )
    return note + f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def _gif_dims(data: bytes) -> tuple[int, int] | None:
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    return None


def _gif_paths(ev: _Eval) -> dict[str, str]:
    gifs = ev.metrics.get("gifs")
    if isinstance(gifs, dict):
        return {str(k): str(v) for k, v in gifs.items()}
    folder = ev.path / "comparison_gifs"  # no "gifs" entry: take what the evaluator left on disk
    found = sorted(folder.glob("*_cmp.gif")) if folder.is_dir() else []
    return {p.name[: -len("_cmp.gif")]: f"comparison_gifs/{p.name}" for p in found}


def _gifs(ev: _Eval) -> str:
    paths = _gif_paths(ev)
    if not paths:
        return '<p class="muted">No comparison GIFs in this evaluation.</p>'
    split_of = {t: str(e.get("split")) for t, e in ev.per_type().items() if isinstance(e, dict)}
    rank = {"seen": 0, "heldout": 1}
    figs = []
    for t in sorted(paths, key=lambda t: (rank.get(split_of.get(t, ""), 2), t)):
        rel = paths[t]
        path = Path(rel) if os.path.isabs(rel) else ev.path / rel
        split = SPLIT_SHORT.get(split_of.get(t, ""), split_of.get(t, ""))
        caption = f"<strong>{_e(t)}</strong>" + (f" · {_e(split)}" if split else "")
        try:
            data = path.read_bytes()
        except OSError as e:
            msg = f"comparison GIF for {t} not readable: {path} ({e.strerror or e})"
            ev.notices.append(msg)
            warnings.warn(msg, stacklevel=4)
            figs.append(
                f'<figure class="gif"><p class="notice">{_e(msg)}</p><figcaption>{caption}</figcaption></figure>'
            )
            continue
        dims = _gif_dims(data)
        if dims is None:
            msg = f"comparison GIF for {t} is not a GIF file: {path}"
            ev.notices.append(msg)
            warnings.warn(msg, stacklevel=4)
            figs.append(
                f'<figure class="gif"><p class="notice">{_e(msg)}</p><figcaption>{caption}</figcaption></figure>'
            )
            continue
        w, h = dims
        scale = max(1, min(3, 420 // max(1, w)))  # small renders are shown up to 3x, pixels kept sharp
        uri = "data:image/gif;base64," + base64.b64encode(data).decode("ascii")
        figs.append(
            f'<figure class="gif"><img src="{uri}" width="{w * scale}" height="{h * scale}" '
            f'alt="{_e(f"ground truth and prediction for {t}")}"><figcaption>{caption}</figcaption></figure>'
        )
    key = (
        '<p class="key">Each animation: <span class="gt">ground truth left (green)</span>, '
        '<span class="pred">prediction right (blue)</span>.</p>'
    )
    return key + '<div class="gifs">' + "".join(figs) + "</div>"


def _model_section(ev: _Eval, heading: int = 2) -> str:
    """Everything about one evaluation (the body of a single-model page, a section of a leaderboard)."""
    h = f"h{heading}"
    gifs = _gifs(ev)  # first, so that its notices show at the top
    notices = "".join(f'<p class="notice">{_e(n)}</p>' for n in ev.notices)
    return "\n".join(
        [
            _meta(ev),
            notices,
            _verdicts_html(ev),
            f'<{h} id="{ev.prefix}headline">Headline results</{h}>',
            '<p class="key">Position error: mean distance between predicted and true body centres (px); '
            "position MSE: mean squared error per coordinate (px²). Horizon h is the h-th predicted frame. "
            "Bold: the best method in each column, the chaos floor aside (two simulations of the same scene "
            "diverging from a tiny perturbation: no model can be expected to beat it). —: no value (null "
            "in metrics.json, which the evaluator writes for a diverged rollout; a model's null counts as a "
            "loss).</p>",
            _headline(ev),
            f'<{h} id="{ev.prefix}plots">Error versus horizon</{h}>',
            _plots(ev),
            f'<{h} id="{ev.prefix}types">Per scenario type</{h}>',
            _per_type(ev),
            f'<{h} id="{ev.prefix}plausibility">Physical plausibility</{h}>',
            _plausibility(ev),
            f'<{h} id="{ev.prefix}gifs">Comparison GIFs</{h}>',
            gifs,
        ]
    )


# ---------------------------------------------------------------- several evaluations


def _check_same_scenes(evals: list[_Eval]) -> None:
    first = evals[0]
    ds0, st0 = first.metrics["dataset"], first.metrics["settings"]
    for ev in evals[1:]:
        ds, st = ev.metrics["dataset"], ev.metrics["settings"]
        where = f"{first.path} and {ev.path}"
        a, b = ds0.get("val_dir"), ds.get("val_dir")
        if a is None or b is None or os.path.normpath(str(a)) != os.path.normpath(str(b)):
            raise ValueError(f"{where} were evaluated on different scenes: val_dir {a!r} vs {b!r}")
        ids0, ids = ds0.get("scene_ids"), ds.get("scene_ids")
        if not isinstance(ids0, list) or not isinstance(ids, list):
            raise ValueError(
                f"{where}: scene_ids missing in {first.path if not isinstance(ids0, list) else ev.path}"
            )
        if sorted(ids0, key=repr) != sorted(ids, key=repr):
            only0 = sorted(set(map(repr, ids0)) - set(map(repr, ids)))
            only1 = sorted(set(map(repr, ids)) - set(map(repr, ids0)))
            detail = f"{len(ids0)} vs {len(ids)} scenes"
            if only0:
                detail += f"; only in the first: {', '.join(only0[:5])}{' …' if len(only0) > 5 else ''}"
            if only1:
                detail += f"; only in the second: {', '.join(only1[:5])}{' …' if len(only1) > 5 else ''}"
            if not only0 and not only1:
                detail += " (the same ids, repeated differently)"
            raise ValueError(f"{where} were evaluated on different scenes: scene_ids differ ({detail})")
        for key in ("context_frames", "rollout_frames", "horizons"):
            if st0.get(key) != st.get(key):
                raise ValueError(
                    f"{where} used different settings: {key} {st0.get(key)!r} vs {st.get(key)!r}"
                )


def _numeric_diff(a, b, path: str) -> str | None:
    """The first place where two JSON values differ (numbers compared to 1e-6 relative), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k} present in only one"
            d = _numeric_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _numeric_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    x, y = _num(a), _num(b)
    if x is not None and y is not None:
        same = (math.isnan(x) and math.isnan(y)) or x == y or math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12)
        return None if same else f"{path} {x!r} vs {y!r}"
    return None if a == b else f"{path} {a!r} vs {b!r}"


def _check_baselines(evals: list[_Eval]) -> list[str]:
    first, notes = evals[0], []
    baselines = [m for m in first.methods if m != MODEL]
    for ev in evals[1:]:
        for split in SPLITS:
            for m in baselines:
                d = _numeric_diff(first.agg(split).get(m), ev.agg(split).get(m), f"aggregate.{split}.{m}")
                if d:
                    msg = (
                        f"baselines differ between {first.path} and {ev.path} ({d}); the leaderboard "
                        f"uses those of {first.path}"
                    )
                    notes.append(msg)
                    warnings.warn(msg, stacklevel=3)
                    break
            else:
                continue
            break
    return notes


def _same_splits(evals: list[_Eval]) -> bool:
    def key(ev):
        ds = ev.metrics["dataset"]
        return sorted(map(str, ds.get("seen_types") or [])), sorted(map(str, ds.get("heldout_types") or []))

    return all(key(ev) == key(evals[0]) for ev in evals[1:])


def _leaderboard_table(evals: list[_Eval], split: str) -> str:
    first, top = evals[0], evals[0].top
    cols = [
        ("position_error_px", top, f"position error h={top} (px)"),
        ("position_error_px", "all", "position error, full rollout (px)"),
        ("position_mse_px2", top, f"position MSE h={top} (px²)"),
        ("position_mse_px2", "all", "position MSE, full rollout (px²)"),
    ]
    entries = []  # (name, kind, row)
    unscored = set()
    for ev in evals:
        failures, frames = unparsed(ev.metrics, split)
        if no_score(failures, frames):
            unscored.add(ev.label)
            entries.append((ev.label, "model: no frame parsed in full", None))  # not its own numbers
        else:
            share = f" ({100 * failures / frames:.0f}% of frames unparsed)" if failures else ""
            entries.append((ev.label + share, "model", ev.agg(split).get(MODEL)))
    for m in first.methods:
        if m not in (MODEL, FLOOR):
            entries.append((method_name(m), "baseline", first.agg(split).get(m)))
    ranked = sorted(entries, key=lambda e: (_rank_key(_value(e[2], *cols[0][:2])), e[1] != "model", e[0]))
    best = {}
    for metric, key, _ in cols:
        vals = [_num(_value(r, metric, key)) for _, _, r in entries if _finite(_value(r, metric, key))]
        best[(metric, key)] = min(vals) if vals else None
    head = (
        '<tr><th>rank</th><th class="l">method</th><th class="l">kind</th>'
        + "".join(f"<th>{_e(c)}</th>" for _, _, c in cols)
        + "</tr>"
    )
    rows, rank, prev = [], 0, object()
    for i, (name, kind, row) in enumerate(ranked):
        k = _rank_key(_value(row, *cols[0][:2]))
        if k != prev:
            rank, prev = i + 1, k
        cells = "".join(
            _num_cell(
                _value(row, metric, key),
                _finite(_value(row, metric, key)) and _num(_value(row, metric, key)) == best[(metric, key)],
            )
            for metric, key, _ in cols
        )
        rows.append(
            f'<tr class="{"model" if kind.startswith("model") else ""}"><td class="n">{rank if k[0] < 2 else "—"}</td>'
            f'<td class="l">{_e(name)}</td><td class="l">{kind}</td>{cells}</tr>'
        )
    if FLOOR in first.methods:
        row = first.agg(split).get(FLOOR)
        cells = "".join(_num_cell(_value(row, metric, key)) for metric, key, _ in cols)
        rows.append(
            f'<tr class="floor"><td class="n">—</td><td class="l">chaos floor</td>'
            f'<td class="l">floor, not ranked</td>{cells}</tr>'
        )
    # one sentence: who is best, and which models lose to the best baseline
    base = [
        (n, _num(_value(r, *cols[0][:2])))
        for n, kind, r in entries
        if kind == "baseline" and _finite(_value(r, *cols[0][:2]))
    ]
    words = []
    if ranked and _rank_key(_value(ranked[0][2], *cols[0][:2]))[0] == 0:
        n0, kind0, r0 = ranked[0]
        words.append(
            f"{SPLIT_PHRASE[split]} the best at horizon {top} is {n0}"
            f"{' (a baseline)' if kind0 == 'baseline' else ''}, with "
            f"{fmt(_value(r0, *cols[0][:2]))} px."
        )
    if base:
        bn, bv = min(base, key=lambda nv: nv[1])
        scores = [
            (ev.label, None if ev.label in unscored else _num(_value(ev.agg(split).get(MODEL), *cols[0][:2])))
            for ev in evals
        ]
        losers = [n for n, v in scores if not (v is not None and math.isfinite(v) and v <= bv)]
        if losers:
            words.append(
                f"{len(losers)} of {len(evals)} models {'loses' if len(losers) == 1 else 'lose'} to the {bn} "
                f"baseline ({fmt(bv)} px): {', '.join(losers)}."
            )
        else:
            words.append(f"Every model beats the best baseline, {bn} ({fmt(bv)} px).")
    kind = "loss" if base and losers else "win" if base else "none"
    sentence = f'<ul class="verdicts"><li class="{kind}">{_e(" ".join(words))}</li></ul>' if words else ""
    return sentence + f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def _leaderboard_plots(evals: list[_Eval], splits) -> str:
    first, figs = evals[0], []
    for split in splits:
        series = []
        for i, ev in enumerate(evals):
            values = ((ev.metrics.get("error_vs_horizon") or {}).get(split) or {}).get(MODEL)
            if isinstance(values, list):
                series.append(Series(ev.label, values, MODEL_PALETTE[i % len(MODEL_PALETTE)], "", 2.4))
        series += _method_series(first, split, skip=(MODEL,))
        title = f"{SPLIT_TITLE[split]}: position error vs horizon"
        figs.append(f'<figure class="plot">{svg_line_plot(series, title, first.horizons)}</figure>')
    return '<div class="plots">' + "".join(figs) + "</div>"


def _leaderboard(evals: list[_Eval], notices: list[str]) -> str:
    first = evals[0]
    ds, st = first.metrics["dataset"], first.metrics["settings"]
    same_splits = _same_splits(evals)
    if not same_splits:
        notices.append(
            "The models were trained on different scenario types, so their seen and held-out "
            "splits differ: only the ranking over all types compares them on the same scenes. "
            "Each model's own section keeps its split."
        )
    splits = SPLITS if same_splits else ("all",)
    listing = "".join(
        f'<tr><td class="l"><a href="#{ev.prefix}section">{_e(ev.label)}</a></td>'
        f'<td class="l"><code>{_e(ev.metrics["model"].get("checkpoint", "—"))}</code></td>'
        f'<td class="l"><code>{_e(ev.path)}</code></td></tr>'
        for ev in evals
    )
    parts = [
        '<dl class="meta">'
        f"<dt>dataset</dt><dd><code>{_e(ds.get('val_dir'))}</code>, {_e(fmt_count(ds.get('num_scenes')))} scenes</dd>"
        f"<dt>rollout</dt><dd>{_e(st.get('context_frames'))} context frames, {_e(st.get('rollout_frames'))} "
        f"predicted frames; ranked by position error at horizon {_e(first.top)}</dd>"
        f"<dt>baselines</dt><dd>from <code>{_e(first.path)}</code></dd></dl>",
        "".join(f'<p class="notice">{_e(n)}</p>' for n in notices),
        '<div class="scroll"><table><tr><th class="l">model</th><th class="l">checkpoint</th>'
        f'<th class="l">evaluation directory</th></tr>{listing}</table></div>',
        '<h2 id="ranking">Ranking</h2>',
    ]
    for split in splits:
        parts.append(f'<h3 id="ranking-{split}">{SPLIT_TITLE[split]}{_e(_split_scenes(first, split))}</h3>')
        if not any(ev.agg(split) for ev in evals):
            parts.append(f'<p class="muted">No {SPLIT_SHORT[split]} scenes.</p>')
            continue
        parts.append(_leaderboard_table(evals, split))
    parts.append('<h2 id="plots">Error versus horizon</h2>')
    parts.append(
        _leaderboard_plots(evals, [s for s in PLOT_SPLITS if s in splits])
        if same_splits
        else '<p class="muted">Not drawn: the models\' seen and held-out types differ (see each model).</p>'
    )
    parts.append('<h2 id="models">Models</h2>')
    for ev in evals:
        kinds = {s: verdict(ev.metrics, s)[1] for s in SPLITS if ev.agg(s)}
        lost = [SPLIT_SHORT[s] for s, k in kinds.items() if k == "loss"]
        if lost:
            tag = f"loses to a baseline ({', '.join(lost)})"
        elif kinds and all(k == "win" for k in kinds.values()):
            tag = "beats every baseline"
        else:
            tag = "ties a baseline" if "tie" in kinds.values() else ""
        parts.append(
            f'<details class="model" id="{ev.prefix}section"><summary>{_e(ev.label)}'
            f"{f' <span class=muted>— {tag}</span>' if tag else ''}</summary>"
            f"{_model_section(ev, heading=3)}</details>"
        )
    return "\n".join(parts)


# ---------------------------------------------------------------- the page


def _page(title: str, nav: list[tuple[str, str]], body: str) -> str:
    links = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="physworld.evaluation.report">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_e(title)}</h1>\n"
        '<p class="sub">physworld evaluation report: learned simulators against analytic baselines on the '
        "same rollouts (see docs/METRICS.md).</p>\n"
        f"<nav>{links}</nav>\n{body}\n"
        "<footer>Generated by <code>physworld.evaluation.report</code> from metrics.json "
        f"(format {FORMAT} version {FORMAT_VERSION}). Self-contained: no external requests.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def _labels(evals: list[_Eval]) -> None:
    """Each evaluation's display label (model.label, else model.name), made unique with its directory."""
    for ev in evals:
        m = ev.metrics["model"]
        ev.label = str(m.get("label") or m.get("name") or ev.path.name)
    counts: dict[str, int] = {}
    for ev in evals:
        counts[ev.label] = counts.get(ev.label, 0) + 1
    seen: dict[str, int] = {}
    for ev in evals:
        if counts[ev.label] > 1:
            seen[ev.label] = seen.get(ev.label, 0) + 1
            ev.label = f"{ev.label} [{ev.path.name or ev.path}#{seen[ev.label]}]"


def render_report(eval_dirs, title: str | None = None) -> str:
    """The report's HTML as a string (write_report writes it)."""
    if isinstance(eval_dirs, (str, os.PathLike)):
        eval_dirs = [eval_dirs]
    paths = [Path(d) for d in eval_dirs]
    if not paths:
        raise ValueError("write_report needs at least one evaluation directory")
    evals = [_Eval(_eval_dir(p), load_metrics(p)) for p in paths]
    _labels(evals)
    if len(evals) == 1:
        ev = evals[0]
        nav = [
            (f"{ev.prefix}headline", "Headline"),
            (f"{ev.prefix}plots", "Error vs horizon"),
            (f"{ev.prefix}types", "Per type"),
            (f"{ev.prefix}plausibility", "Plausibility"),
            (f"{ev.prefix}gifs", "GIFs"),
        ]
        return _page(title or f"Evaluation: {ev.label}", nav, _model_section(ev))
    _check_same_scenes(evals)
    for i, ev in enumerate(evals):
        ev.prefix = f"m{i + 1}-"
    notices = _check_baselines(evals)
    nav = [("ranking", "Ranking"), ("plots", "Error vs horizon"), ("models", "Models")]
    body = _leaderboard(evals, notices)
    default = f"Leaderboard: {len(evals)} models on {evals[0].metrics['dataset'].get('val_dir')}"
    return _page(title or default, nav, body)


def write_report(eval_dirs: list[Path], out_html: Path, title: str | None = None) -> Path:
    """Write one self-contained HTML page for one evaluation directory, or a leaderboard for several
    (same val_dir, scene_ids and rollout settings; ValueError otherwise). Atomic; returns the path."""
    text = render_report(eval_dirs, title)
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def headline_table(metrics: dict) -> str:
    """Position error (px) at the largest horizon and over the rollout, per split and method."""
    h = str(max(metrics["settings"]["horizons"]))
    lines = [
        f"{'split':8s} {'method':18s} {'err@' + h + ' px':>11s} {'err all px':>11s} {'mse@' + h + ' px2':>13s}"
    ]
    for split in ("seen", "heldout"):
        for method, m in metrics["aggregate"].get(split, {}).items():
            err, mse = m["position_error_px"], m["position_mse_px2"]
            fmt = lambda v, w: f"{v:{w}.2f}" if v is not None else f"{'diverged':>{w}s}"  # noqa: E731
            note = ""
            if method == "model" and m.get("parse_failures"):
                failures, frames = unparsed(metrics, split)
                note = f"  {failures} of {frames} frames not parsed in full" + (
                    ": no score of its own" if failures >= frames else ""
                )
            lines.append(
                f"{split:8s} {method:18s} {fmt(err.get(h), 11)} {fmt(err.get('all'), 11)} {fmt(mse.get(h), 13)}"
                + note
            )
    return "\n".join(lines)
