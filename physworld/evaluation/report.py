"""One self-contained HTML page from one or several `physworld evaluate` output directories.

    from physworld.evaluation.report import write_report
    write_report([Path("runs/eval/expert")], Path("report.html"))                  # one evaluation
    write_report([Path("runs/eval/a"), Path("runs/eval/b")], Path("board.html"))   # a leaderboard

Each directory holds the metrics.json described in docs/METRICS.md and, beside it, the comparison
GIFs the evaluator renders (comparison_gifs/<type>_cmp.gif: ground truth, prediction and both overlaid,
the context and the predicted frames marked).

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

How it is built. Python decides everything that is a judgement (verdicts, the best cell of a column,
wins and losses, rankings) into plain dicts; Jinja2 templates (templates/*.html.j2, autoescaped, so
every string taken from metrics.json is HTML-escaped) lay them out; matplotlib draws the plots as
inline SVG (Agg-free SVG canvas, text kept as text, no timestamps). A model section is a list of
sections, SECTIONS: a family that is not a trajectory predictor (a captioner, a parser, a policy)
adds its own entry (an id, a title, a template and a function from the evaluation to the template's
values, or None when the evaluation has nothing for it) without touching the others.

The page needs nothing outside itself: inline CSS, no script, inline SVG plots, GIFs as base64 data
URIs, and a Content-Security-Policy that forbids any request other than data: images, so a stray
reference would fail visibly instead of leaking a request. Output is deterministic (no timestamps,
fixed number formatting, input order or sorted names): the same inputs give the same bytes. The file
is written atomically (temporary file beside it, then os.replace).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import io
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from physworld.evaluation import vision_report

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
# (colour, matplotlib dash pattern, line width) per method; models solid, baselines dashed, the floor dotted
METHOD_STYLE = {
    "model": ("#1f5fbf", "-", 2.2),
    "constant_position": ("#d98400", (0, (5, 3)), 1.4),
    "constant_velocity": ("#2a9d4b", (0, (5, 3)), 1.4),
    "ballistic": ("#8e44ad", (0, (5, 3)), 1.4),
    "chaos_floor": ("#444444", (0, (1.5, 2)), 1.4),
}
OTHER_STYLE = ("#888888", (0, (3, 1.5)), 1.2)
MODEL_PALETTE = ("#1f5fbf", "#d62728", "#0f9aa8", "#8c564b", "#e377c2", "#7f7f00", "#000080", "#b8860b")

# The page may load data: images and use its own inline style, nothing else (no script, no request).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def units_of(metrics: dict) -> dict:
    """The metric names and unit of an evaluation (evaluation/metrics.units): px for 2D, metres for 3D
    (settings.dims; evaluations written before 3D support are 2D)."""
    from physworld.evaluation.metrics import units

    return units(3 if (metrics.get("settings") or {}).get("dims") == 3 else 2)


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
    model_v, baselines: list[tuple[str, object]], lead: str, subject: str, where: str, unit: str = "px"
) -> tuple[str, str]:
    """One sentence comparing the model's error with every baseline's; returns (text, kind)."""
    words = " ".join(w for w in (lead, subject) if w)
    at = f" {where}" if where else ""
    base = [(name, _num(v)) for name, v in baselines if _finite(v)]
    m = _num(model_v)
    if not base:
        return f"{words} has no baseline to compare with{at} ({fmt(m)} {unit}).", "none"
    best_name, best_v = min(base, key=lambda nv: nv[1])
    if m is None or not math.isfinite(m):
        # the evaluator writes null for a diverged rollout (JSON has no NaN): no number is a loss, not a pass
        why = "missing (null in metrics.json: a diverged rollout)" if m is None else f"not finite ({fmt(m)})"
        return (
            f"{words} loses to every baseline{at}: its position error is {why}; "
            f"the best baseline, {best_name}, has {fmt(best_v)} {unit}.",
            "loss",
        )
    losses = sorted(((n, v) for n, v in base if v < m), key=lambda nv: nv[1])
    ties = [n for n, v in base if v == m]
    if losses:
        (n0, v0), rest = losses[0], losses[1:]
        fm, fb = _fmt_pair(m, v0)
        text = f"{words} loses to the {n0} baseline{at} ({fm} {unit} vs {fb} {unit})"
        if rest:
            text += "; it also loses to " + ", ".join(f"{n} ({_fmt_pair(m, v)[1]} {unit})" for n, v in rest)
        if ties:
            text += " and ties with " + ", ".join(ties)
        return text + ".", "loss"
    if ties:
        others = [n for n, v in base if v != m]
        tail = " and beats every other baseline" if others else ""
        return f"{words} ties with the {' and '.join(ties)} baseline{at} ({fmt(m)} {unit} each){tail}.", "tie"
    fm, fb = _fmt_pair(m, best_v)
    return (
        f"{words} beats every baseline{at} ({fm} {unit} vs {fb} {unit} for {best_name}, the best baseline).",
        "win",
    )


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
    names = units_of(metrics)
    error, unit = names["error"], names["unit"]
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
        pairs = [(method_name(b), _value(agg.get(b), error, key)) for b in baselines]
        text, kind = _compare(_value(agg[MODEL], error, key), pairs, lead_k, subj, where, unit)
        sentences.append(text)
        kinds.append(kind)
    m_top = _num(_value(agg[MODEL], error, top))
    floor = _num(_value(agg.get(FLOOR), error, top)) if FLOOR in metrics["methods"] else None
    if floor is not None and math.isfinite(floor) and m_top is not None and math.isfinite(m_top):
        if m_top < floor:
            sentences.append(
                f"Its error at horizon {top} is below the chaos floor ({fmt(m_top)} {unit} vs "
                f"{fmt(floor)} {unit}), which no model should beat: check that no ground truth "
                "leaks into the rollout."
            )
        else:
            sentences.append(f"The chaos floor at horizon {top} is {fmt(floor)} {unit}.")
    if failures:
        sentences.append(
            f"{fmt_count(failures)} of {fmt_count(frames)} predicted frames ({100 * failures / frames:.0f}%) "
            "could not be parsed in full; their unreadable bodies moved at constant velocity, so these "
            "numbers are partly that baseline's."
        )
    kind = next((k for k in ("loss", "tie", "win") if k in kinds), "none")
    return " ".join(sentences), kind


# ---------------------------------------------------------------- plots (matplotlib, inline SVG)


def _tick_label(v: float, step: float | None = None) -> str:
    if step is not None and step < 1:
        return f"{v:.{max(0, -math.floor(math.log10(step) + 1e-9))}f}"
    if abs(v) >= 1 and float(v).is_integer():
        return f"{int(round(v)):,}"
    return f"{float(f'{v:.6g}'):g}"


@dataclass
class Series:
    name: str
    values: list
    color: str
    dash: object = "-"  # a matplotlib linestyle: "-", or (offset, (on, off, ...)) in points
    width: float = 2.0


# matplotlib settings for the report's plots: SVG text stays text (selectable, small), ids are derived
# from a fixed salt (the same inputs give the same bytes), fonts as the page's.
PLOT_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "physworld-report",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.edgecolor": "#888888",
    "axes.grid": True,
    "grid.color": "#e6e9ef",
    "xtick.color": "#555555",
    "ytick.color": "#555555",
}
# What an inline SVG does without: the XML prolog, doctype and metadata, and the clip paths (every line
# lies inside its axes' limits, and a url(#...) reference would look like a request to a reader
# checking the page for them)
_SVG_NOISE = re.compile(
    r'<\?xml[^>]*>\s*|<!DOCTYPE[^>]*>\s*|<metadata>.*?</metadata>\s*|\s*clip-path="url\(#[^)]*\)"'
    r"|<clipPath .*?</clipPath>\s*",
    re.S,
)


def svg_line_plot(series: list[Series], title: str, marks=(), ylabel: str = "position error (px)") -> str:
    """An inline SVG line plot (matplotlib) of error against horizon (x = 1 .. len(values)); log y
    when the values span more than a factor 20 and are all positive. Non-finite points break the
    line; a point alone between gaps, and the values at `marks` (the reported horizons), get a dot.
    Each series is a group with id "<plot>-series<i>" (its name as the tooltip)."""
    finite = [float(v) for s in series for v in s.values if _finite(v)]
    n = max((len(s.values) for s in series), default=0)
    if not finite or n == 0:
        return f'<p class="muted">{_e(title)}: no error-versus-horizon data.</p>'
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    log = min(finite) > 0 and max(finite) / min(finite) > 20
    with matplotlib.rc_context(PLOT_RC):
        # Fixed margins rather than a layout engine (constrained layout measures every text twice and
        # doubled the time of a plot): the legend, two columns, goes in the band below the axes.
        rows = (len(series) + 1) // 2
        height = 3.0 + 0.2 * rows  # inches
        fig = Figure(figsize=(5.4, height))
        FigureCanvasSVG(fig)
        bottom = (0.55 + 0.2 * rows) / height
        ax = fig.add_axes((0.12, bottom, 0.85, 1 - bottom - 0.3 / height))
        marks = [h for h in marks if 1 <= h <= n]
        for i, s in enumerate(series):
            y = [float(v) if _finite(v) and (not log or float(v) > 0) else math.nan for v in s.values]
            x = list(range(1, len(y) + 1))
            (line,) = ax.plot(x, y, color=s.color, linestyle=s.dash, linewidth=s.width, label=s.name)
            alone = [
                k
                for k in range(len(y))
                if math.isfinite(y[k])
                and (k == 0 or not math.isfinite(y[k - 1]))
                and (k == len(y) - 1 or not math.isfinite(y[k + 1]))
            ]
            dots = sorted({*alone, *(h - 1 for h in marks if h <= len(y) and math.isfinite(y[h - 1]))})
            (points,) = ax.plot(
                [x[k] for k in dots], [y[k] for k in dots], "o", color=s.color, markersize=3.2
            )
            line.set_gid(f"series{i}")
            points.set_gid(f"series{i}-dots")
        if log:
            lo, hi = math.floor(math.log10(min(finite))), math.ceil(math.log10(max(finite)))
            ax.set_yscale("log")
            ax.set_ylim(10.0**lo, 10.0 ** max(hi, lo + 1))
            # decades, and 2 and 5 between them when there are few; no minor ticks (each costs a text)
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if hi - lo <= 2 else (1.0,)))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick_label(v)))
        else:
            ax.set_ylim(bottom=min(0.0, min(finite)))
        ax.set_xlim(0.5, 1.5) if n == 1 else ax.set_xlim(1, n)
        step = next(k * 10**p for p in range(9) for k in (1, 2, 5) if k * 10**p >= n / 6)
        ax.set_xticks(sorted({1, *range(step, n + 1, step)}))  # 1, 5, 10, 15, 20 for 20 frames
        ax.set_title(title, loc="left")
        ax.set_xlabel("horizon (predicted frame)")
        ax.set_ylabel(ylabel + (", log scale" if log else ""))
        fig.legend(
            loc="lower center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=2,
            frameon=False,
            fontsize=8.5,
            handlelength=2.6,
        )
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return _inline_svg(buf.getvalue(), title)


def _inline_svg(svg: str, title: str) -> str:
    """matplotlib's SVG document as an element to put inside HTML: no XML prolog, doctype or
    metadata, no namespace URLs (the HTML parser puts inline <svg> in the SVG namespace itself), its
    ids given a prefix unique on the page, and scalable to its container."""
    svg = _SVG_NOISE.sub("", svg)
    prefix = "p" + hashlib.sha1(svg.encode()).hexdigest()[:8] + "-"  # the same plot, the same ids
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}{m[1]}"', svg)
    svg = re.sub(r"(url\(#|href=\"#)", lambda m: m[1] + prefix, svg)
    svg = re.sub(
        r'<svg width="([\d.]+)pt" height="([\d.]+)pt"',
        lambda m: (
            f'<svg role="img" aria-label="{_e(title)}" width="{float(m[1]) * 4 / 3:.0f}" '
            f'height="{float(m[2]) * 4 / 3:.0f}"'
        ),
        svg,
        count=1,
    )
    return svg.strip()


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


def _scenes_per_type(ev: _Eval) -> str:
    """How many scenes each type really had ("2", "1 to 3"), and the cap that was asked for."""
    counts = [
        int(n)
        for t in ev.per_type().values()
        if isinstance(t, dict)
        for n in [_num(t.get("num_scenes"))]
        if n
    ]
    cap = ev.metrics["settings"].get("max_scenes_per_type")
    asked = f" (at most {fmt_count(cap)} asked for)" if _num(cap) is not None else ""
    if not counts:
        return "—" + asked
    lo, hi = min(counts), max(counts)
    return (fmt_count(lo) if lo == hi else f"{fmt_count(lo)} to {fmt_count(hi)}") + asked


def _meta(ev: _Eval) -> dict:
    m, ds, st = ev.metrics["model"], ev.metrics["dataset"], ev.metrics["settings"]
    fps = (ev.metrics.get("timing") or {}).get("rollout_frames_per_s")
    return {
        "label": ev.label,
        "name": m.get("name", "?"),
        "checkpoint": m.get("checkpoint", "—"),
        "val_dir": ds.get("val_dir", "—"),
        "num_scenes": ds.get("num_scenes"),
        "context_frames": st.get("context_frames", "?"),
        "rollout_frames": st.get("rollout_frames", "?"),
        "horizons": ev.horizons,
        "scenes_per_type": _scenes_per_type(ev),
        "chaos_epsilon": st.get("chaos_epsilon_m", st.get("chaos_epsilon_px", "—")),
        "unit": units_of(ev.metrics)["unit"],
        "seen_types": ds.get("seen_types") or [],
        "heldout_types": ds.get("heldout_types") or [],
        "rollout_fps": fps,
        "path": str(ev.path),
    }


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


def _verdicts(ev: _Eval, subject: str = "the model") -> list[dict]:
    out = []
    for split in SPLITS:
        if ev.agg(split):
            text, kind = verdict(ev.metrics, split, subject)
            out.append({"text": text, "kind": kind})
    return out


def _best_cells(values: dict[str, object], methods: list[str]) -> set[str]:
    """Methods holding the lowest finite value among methods other than the chaos floor."""
    cands = [(m, _num(values.get(m))) for m in methods if m != FLOOR and _finite(values.get(m))]
    if not cands:
        return set()
    best = min(v for _, v in cands)
    return {m for m, v in cands if v == best}


def _row_class(method: str) -> str:
    return "model" if method == MODEL else "floor" if method == FLOOR else ""


def _headline(ev: _Eval) -> list[dict]:
    keys = [str(h) for h in ev.horizons] + ["all"]
    u = units_of(ev.metrics)
    metrics = [(u["error"], f"position error ({u['unit']})"), (u["mse"], f"position MSE ({u['unit2']})")]
    out = []
    for split in SPLITS:
        agg = ev.agg(split)
        table = None
        if agg:
            best = {
                (metric, k): _best_cells({m: _value(agg.get(m), metric, k) for m in ev.methods}, ev.methods)
                for metric, _ in metrics
                for k in keys
            }
            table = {
                "groups": [label for _, label in metrics],
                "keys": keys,
                "rows": [
                    {
                        "name": ev.name(m),
                        "cls": _row_class(m),
                        "cells": [
                            {"v": _value(agg.get(m), metric, k), "bold": m in best[(metric, k)]}
                            for metric, _ in metrics
                            for k in keys
                        ],
                    }
                    for m in ev.methods
                ],
            }
        out.append({"split": split, "title": SPLIT_TITLE[split] + _split_scenes(ev, split), "table": table})
    return out


def _type_rows(ev: _Eval, names: list[str]) -> dict:
    """One row per type: the model, the best baseline and the chaos floor at the largest horizon and
    over the rollout, and who wins at the largest horizon."""
    top = ev.top
    error = units_of(ev.metrics)["error"]
    baselines = [m for m in ev.methods if m not in (MODEL, FLOOR)]
    rows, wins, losses = [], 0, []
    for t in names:
        entry = ev.per_type()[t]
        unscored = no_score(
            int(_num((entry.get(MODEL) or {}).get("parse_failures")) or 0),
            int(entry.get("num_scenes") or 0) * int(ev.metrics["settings"]["rollout_frames"]),
        )
        cells, outcome = [], None
        for key in (top, "all"):
            mv = _value(entry.get(MODEL), error, key)
            base = sorted(
                (
                    (b, _value(entry.get(b), error, key))
                    for b in baselines
                    if _finite(_value(entry.get(b), error, key))
                ),
                key=lambda bv: (float(bv[1]), bv[0]),
            )
            if base:
                bn, bv = base[0]
                lost = not _finite(mv) or float(mv) > float(bv)
                cls = "loss" if lost else "tie" if _num(mv) == float(bv) else "win"
            else:
                bn, bv, cls, lost = None, None, "", False
            cells.append(
                {
                    "model": mv,
                    "cls": cls,
                    "baseline": bv,
                    "baseline_name": method_name(bn) if bn else None,
                    "floor": _value(entry.get(FLOOR), error, key),
                }
            )
            if key == top:
                if unscored:  # every frame had bodies moved by the constant-velocity fallback
                    losses.append(t)
                    outcome = ("loss", "no frame parsed in full: no score")
                elif not cls:
                    outcome = ("muted", "no comparison")
                elif lost:
                    losses.append(t)
                    outcome = ("loss", f"loses to {method_name(bn)}")
                elif cls == "tie":
                    outcome = ("", f"ties with {method_name(bn)}")
                else:
                    wins += 1
                    outcome = ("win", "beats every baseline")
        rows.append(
            {
                "type": t,
                "split": SPLIT_SHORT.get(entry.get("split"), entry.get("split")),
                "scenes": entry.get("num_scenes"),
                "cells": cells,
                "outcome": {"cls": outcome[0], "text": outcome[1]},
            }
        )
    return {"top": top, "rows": rows, "wins": wins, "losses": losses, "count": len(names)}


def _types_by_split(ev: _Eval) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for t, entry in ev.per_type().items():
        if isinstance(entry, dict):
            groups.setdefault(str(entry.get("split")), []).append(t)
    order = [s for s in ("seen", "heldout") if s in groups] + sorted(
        s for s in groups if s not in ("seen", "heldout")
    )
    return [(s, sorted(groups[s])) for s in order]


def _per_type(ev: _Eval) -> list[dict]:
    groups = dict(_types_by_split(ev))
    out = []
    for split in ("seen", "heldout"):
        out.append(
            {
                "id": f"types-{split}",
                "title": SPLIT_TITLE[split],
                "empty": f"No {SPLIT_SHORT[split]} types in this evaluation.",
                "table": _type_rows(ev, groups.pop(split)) if split in groups else None,
            }
        )
    for split, names in groups.items():
        out.append(
            {"id": None, "title": f"Types with split {split}", "empty": "", "table": _type_rows(ev, names)}
        )
    return out


def _method_series(ev: _Eval, split: str, skip=()) -> list[Series]:
    evh = (ev.metrics.get("error_vs_horizon") or {}).get(split) or {}
    out = []
    for m in ev.methods:
        if m not in skip and isinstance(evh.get(m), list):
            color, dash, width = METHOD_STYLE.get(m, OTHER_STYLE)
            out.append(Series(ev.name(m), evh[m], color, dash, width))
    return out


def _plots(ev: _Eval) -> list[str]:
    return [
        svg_line_plot(
            _method_series(ev, split),
            f"{SPLIT_TITLE[split]}: position error vs horizon",
            ev.horizons,
            ylabel=f"position error ({units_of(ev.metrics)['unit']})",
        )
        for split in PLOT_SPLITS
    ]


def _plausibility(ev: _Eval) -> list[dict]:
    groups = []
    for split in SPLITS:
        agg = ev.agg(split)
        methods = [m for m in ev.methods if isinstance(agg.get(m), dict)] if agg else []
        if methods:
            groups.append(
                {
                    "split": SPLIT_SHORT[split],
                    "rows": [{"name": ev.name(m), "cls": _row_class(m), **agg[m]} for m in methods],
                }
            )
    return groups


def _orientation(ev: _Eval) -> dict | None:
    """3D evaluations only: orientation error (geodesic angle, degrees), angular velocity and
    velocity errors per split and method, at the largest horizon and over the rollout."""
    if units_of(ev.metrics)["unit"] != "m":
        return None
    top = ev.top
    cols = [("orientation_error_deg", top), ("orientation_error_deg", "all"),
            ("angular_velocity_error", top), ("velocity_error", top)]  # fmt: skip
    groups = []
    for split in SPLITS:
        agg = ev.agg(split)
        methods = [m for m in ev.methods if isinstance(agg.get(m), dict)] if agg else []
        if methods:
            best = {c: _best_cells({m: _value(agg.get(m), *c) for m in methods}, methods) for c in cols}
            rows = [
                {"name": ev.name(m), "cls": _row_class(m),
                 "cells": [{"v": _value(agg.get(m), *c), "bold": m in best[c]} for c in cols]}
                for m in methods
            ]  # fmt: skip
            groups.append({"split": SPLIT_SHORT[split], "rows": rows})
    return {"groups": groups, "top": top}


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


def _gifs(ev: _Eval) -> dict:
    """The comparison GIFs as data URIs (seen types first), each with its caption, or a notice naming
    the file that could not be read."""
    paths = _gif_paths(ev)
    split_of = {t: str(e.get("split")) for t, e in ev.per_type().items() if isinstance(e, dict)}
    rank = {"seen": 0, "heldout": 1}
    figures = []
    for t in sorted(paths, key=lambda t: (rank.get(split_of.get(t, ""), 2), t)):
        rel = paths[t]
        path = Path(rel) if os.path.isabs(rel) else ev.path / rel
        figure = {"type": t, "split": SPLIT_SHORT.get(split_of.get(t, ""), split_of.get(t, ""))}
        try:
            data = path.read_bytes()
        except OSError as e:
            figure["error"] = f"comparison GIF for {t} not readable: {path} ({e.strerror or e})"
        else:
            dims = _gif_dims(data)
            if dims is None:
                figure["error"] = f"comparison GIF for {t} is not a GIF file: {path}"
            else:
                w, h = dims
                scale = max(
                    1, min(3, 420 // max(1, w))
                )  # small renders are shown up to 3x, pixels kept sharp
                figure.update(
                    uri="data:image/gif;base64," + base64.b64encode(data).decode("ascii"),
                    width=w * scale,
                    height=h * scale,
                )
        if "error" in figure:
            ev.notices.append(figure["error"])
            warnings.warn(figure["error"], stacklevel=5)
        figures.append(figure)
    layout = ev.metrics["settings"].get("comparison_gif") or {}
    return {
        "figures": figures,
        "three_panels": layout.get("panels") == ["ground truth", "prediction", "overlay"],
    }


# The sections of one evaluation, in page order: (id, title, template, values(ev) -> dict | None).
# A family that is not a trajectory predictor appends its own (values returning None where an
# evaluation has nothing for it, so the section and its link are left out).
SECTIONS: list[dict] = [
    {"id": "headline", "title": "Headline results", "nav": "Headline", "template": "headline.html.j2",
     "values": lambda ev: {"splits": _headline(ev), "units": units_of(ev.metrics)}},
    {"id": "plots", "title": "Error versus horizon", "nav": "Error vs horizon", "template": "plots.html.j2",
     "values": lambda ev: {"plots": _plots(ev)}},
    {"id": "types", "title": "Per scenario type", "nav": "Per type", "template": "types.html.j2",
     "values": lambda ev: {"groups": _per_type(ev), "units": units_of(ev.metrics)}},
    {"id": "plausibility", "title": "Physical plausibility", "nav": "Plausibility",
     "template": "plausibility.html.j2",
     "values": lambda ev: {"groups": _plausibility(ev), "units": units_of(ev.metrics)}},
    {"id": "orientation", "title": "Orientation and velocities (3D)", "nav": "Orientation",
     "template": "orientation.html.j2", "values": lambda ev: _orientation(ev)},
    {"id": "gifs", "title": "Comparison GIFs", "nav": "GIFs", "template": "gifs.html.j2", "values": _gifs},
    # evaluation/vision_report.py: from vision_loop.json and supervisor_ood.json beside metrics.json
    {"id": "vision-loop", "title": "Vision in the loop", "nav": "Vision loop", "template": "tables.html.j2",
     "values": lambda ev: vision_report.vision_loop_values(ev.path)},
    {"id": "ood", "title": "Out of distribution: the Supervisor's fine-tune", "nav": "OOD",
     "template": "tables.html.j2",
     "values": lambda ev: vision_report.ood_values(ev.path)},
]  # fmt: skip


def _model_section(ev: _Eval, heading: int = 2) -> dict:
    """Everything about one evaluation (the body of a single-model page, a section of a leaderboard)."""
    sections = []
    for section in SECTIONS:
        values = section["values"](ev)
        if values is not None:
            sections.append({**section, "values": values})
    return {
        "ev": ev,
        "meta": _meta(ev),
        "notices": list(ev.notices),  # after the sections: reading the GIFs may add some
        "verdicts": _verdicts(ev),
        "heading": heading,
        "prefix": ev.prefix,
        "sections": sections,
    }


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


def _leaderboard_table(evals: list[_Eval], split: str) -> dict:
    first, top = evals[0], evals[0].top
    u = units_of(first.metrics)
    unit = u["unit"]
    cols = [
        (u["error"], top, f"position error h={top} ({unit})"),
        (u["error"], "all", f"position error, full rollout ({unit})"),
        (u["mse"], top, f"position MSE h={top} ({u['unit2']})"),
        (u["mse"], "all", f"position MSE, full rollout ({u['unit2']})"),
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
    rows, rank, prev = [], 0, object()
    for i, (name, kind, row) in enumerate(ranked):
        k = _rank_key(_value(row, *cols[0][:2]))
        if k != prev:
            rank, prev = i + 1, k
        rows.append(
            {
                "rank": rank if k[0] < 2 else None,
                "name": name,
                "kind": kind,
                "cls": "model" if kind.startswith("model") else "",
                "cells": [
                    {
                        "v": _value(row, metric, key),
                        "bold": _finite(_value(row, metric, key))
                        and _num(_value(row, metric, key)) == best[(metric, key)],
                    }
                    for metric, key, _ in cols
                ],
            }
        )
    if FLOOR in first.methods:
        row = first.agg(split).get(FLOOR)
        rows.append(
            {
                "rank": None,
                "name": "chaos floor",
                "kind": "floor, not ranked",
                "cls": "floor",
                "cells": [{"v": _value(row, metric, key), "bold": False} for metric, key, _ in cols],
            }
        )
    # one sentence: who is best, and which models lose to the best baseline
    base = [
        (n, _num(_value(r, *cols[0][:2])))
        for n, kind, r in entries
        if kind == "baseline" and _finite(_value(r, *cols[0][:2]))
    ]
    words, losers = [], []
    if ranked and _rank_key(_value(ranked[0][2], *cols[0][:2]))[0] == 0:
        n0, kind0, r0 = ranked[0]
        words.append(
            f"{SPLIT_PHRASE[split]} the best at horizon {top} is {n0}"
            f"{' (a baseline)' if kind0 == 'baseline' else ''}, with "
            f"{fmt(_value(r0, *cols[0][:2]))} {unit}."
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
                f"baseline ({fmt(bv)} {unit}): {', '.join(losers)}."
            )
        else:
            words.append(f"Every model beats the best baseline, {bn} ({fmt(bv)} {unit}).")
    kind = "loss" if base and losers else "win" if base else "none"
    return {
        "columns": [c for _, _, c in cols],
        "rows": rows,
        "sentence": {"text": " ".join(words), "kind": kind} if words else None,
    }


def _leaderboard_plots(evals: list[_Eval], splits) -> list[str]:
    first, figs = evals[0], []
    unit = units_of(first.metrics)["unit"]
    for split in splits:
        series = []
        for i, ev in enumerate(evals):
            values = ((ev.metrics.get("error_vs_horizon") or {}).get(split) or {}).get(MODEL)
            if isinstance(values, list):
                series.append(Series(ev.label, values, MODEL_PALETTE[i % len(MODEL_PALETTE)], "-", 2.0))
        series += _method_series(first, split, skip=(MODEL,))
        figs.append(
            svg_line_plot(
                series,
                f"{SPLIT_TITLE[split]}: position error vs horizon",
                first.horizons,
                ylabel=f"position error ({unit})",
            )
        )
    return figs


def _model_tag(ev: _Eval) -> str:
    kinds = {s: verdict(ev.metrics, s)[1] for s in SPLITS if ev.agg(s)}
    lost = [SPLIT_SHORT[s] for s, k in kinds.items() if k == "loss"]
    if lost:
        return f"loses to a baseline ({', '.join(lost)})"
    if kinds and all(k == "win" for k in kinds.values()):
        return "beats every baseline"
    return "ties a baseline" if "tie" in kinds.values() else ""


def _leaderboard(evals: list[_Eval], notices: list[str]) -> dict:
    first = evals[0]
    same_splits = _same_splits(evals)
    if not same_splits:
        notices.append(
            "The models were trained on different scenario types, so their seen and held-out "
            "splits differ: only the ranking over all types compares them on the same scenes. "
            "Each model's own section keeps its split."
        )
    splits = SPLITS if same_splits else ("all",)
    ranking = []
    for split in splits:
        ranking.append(
            {
                "split": split,
                "title": SPLIT_TITLE[split] + _split_scenes(first, split),
                "empty": f"No {SPLIT_SHORT[split]} scenes.",
                "table": _leaderboard_table(evals, split) if any(ev.agg(split) for ev in evals) else None,
            }
        )
    return {
        "first": first,
        "dataset": first.metrics["dataset"],
        "settings": first.metrics["settings"],
        "notices": notices,
        "evals": evals,
        "ranking": ranking,
        "plots": _leaderboard_plots(evals, [s for s in PLOT_SPLITS if s in splits]) if same_splits else None,
        "models": [{"tag": _model_tag(ev), "section": _model_section(ev, heading=3)} for ev in evals],
    }


# ---------------------------------------------------------------- the page


@functools.cache
def _environment():
    """The Jinja2 environment over templates/ (package data): autoescaped, strict about undefined
    names, with the report's number formats as filters."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("physworld.evaluation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, fmt_count=fmt_count, fmt_pct=fmt_pct)
    env.globals.update(FORMAT=FORMAT, FORMAT_VERSION=FORMAT_VERSION, CSP=CSP)
    return env


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
    env = _environment()
    if len(evals) == 1:
        ev = evals[0]
        section = _model_section(ev)
        nav = [(f"{ev.prefix}{s['id']}", s["nav"]) for s in section["sections"]]
        return env.get_template("single.html.j2").render(
            title=title or f"Evaluation: {ev.label}", nav=nav, model=section
        )
    _check_same_scenes(evals)
    for i, ev in enumerate(evals):
        ev.prefix = f"m{i + 1}-"
    notices = _check_baselines(evals)
    nav = [("ranking", "Ranking"), ("plots", "Error vs horizon"), ("models", "Models")]
    board = _leaderboard(evals, notices)
    default = f"Leaderboard: {len(evals)} models on {evals[0].metrics['dataset'].get('val_dir')}"
    return env.get_template("leaderboard.html.j2").render(title=title or default, nav=nav, board=board)


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
    """Position error (px; 3D: m) at the largest horizon and over the rollout, per split and method."""
    h = str(max(metrics["settings"]["horizons"]))
    u = units_of(metrics)
    unit, unit2 = u["unit"], {"px": "px2", "m": "m2"}[u["unit"]]
    lines = [
        f"{'split':8s} {'method':18s} {'err@' + h + ' ' + unit:>11s} {'err all ' + unit:>11s} "
        f"{'mse@' + h + ' ' + unit2:>13s}"
    ]
    for split in ("seen", "heldout"):
        for method, m in metrics["aggregate"].get(split, {}).items():
            err, mse = m[u["error"]], m[u["mse"]]
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
