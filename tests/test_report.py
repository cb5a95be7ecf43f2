"""The HTML evaluation report: verdicts from the numbers, self-containment, the leaderboard, a real browser.

Every metrics.json here is hand-built test data following docs/METRICS.md; errors grow linearly with
the horizon (error(h) = coefficient * h), so the numbers the page must show are easy to work out.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from physworld.evaluation.report import (
    CSP,
    Series,
    fmt,
    load_metrics,
    render_report,
    svg_line_plot,
    verdict,
    write_report,
)

HORIZONS = [1, 5, 10, 20]
ROLLOUT = 20
METHODS = ["model", "constant_position", "constant_velocity", "ballistic", "chaos_floor"]
SEEN = ["billiards", "stacking_tower"]
HELDOUT = ["pong"]
SCENES = {"billiards": 2, "stacking_tower": 3, "pong": 2}
# error per frame of horizon (px); the model's coefficients are per test
BASELINE_COEF = {"constant_position": 1.0, "constant_velocity": 0.6, "ballistic": 0.405, "chaos_floor": 0.002}


def method_row(coef: float, drift: float = 0.01, failures: int = 0) -> dict:
    err = {h: coef * h for h in range(1, ROLLOUT + 1)}
    keys = {str(h): err[h] for h in HORIZONS}
    keys["all"] = sum(err.values()) / ROLLOUT  # = 10.5 * coef
    return {
        "position_error_px": dict(keys),
        "position_mse_px2": {k: v * v / 2 for k, v in keys.items()},
        "velocity_error": {k: 60 * v for k, v in keys.items()},
        "angle_error_rad": {k: v / 100 for k, v in keys.items()},
        "energy_drift": drift,
        "penetration_px": 0.3 * coef,
        "static_penetration_px": 0.0,
        "parse_failures": failures,
    }


def make_metrics(
    label="physics-expert (quickstart)",
    model_seen=0.1,
    model_heldout=0.615,
    scene_ids=None,
    val_dir="data/quickstart/val",
    baseline_scale=1.0,
) -> dict:
    coefs = {"seen": model_seen, "heldout": model_heldout}
    coefs["all"] = (5 * model_seen + 2 * model_heldout) / 7  # scenes weighted equally: 5 seen, 2 held-out

    def rows(split, type_factor=1.0):
        out = {"model": method_row(coefs[split] * type_factor, drift=0.05)}
        for m, c in BASELINE_COEF.items():
            out[m] = method_row(c * type_factor * baseline_scale)
        return out

    per_type = {}
    for t in SEEN + HELDOUT:
        split = "seen" if t in SEEN else "heldout"
        factor = 1.2 if t == "stacking_tower" else 1.0
        per_type[t] = {"split": split, "num_scenes": SCENES[t], **rows(split, factor)}
    aggregate = {split: rows(split) for split in ("seen", "heldout", "all")}
    evh = {
        split: {
            m: [c * h for h in range(1, ROLLOUT + 1)]
            for m, c in [("model", coefs[split]), *BASELINE_COEF.items()]
        }
        for split in ("seen", "heldout")
    }
    return {
        "format": "physworld-metrics",
        "format_version": 1,
        "model": {
            "name": "physics-expert",
            "label": label,
            "checkpoint": "runs/quickstart/checkpoints/best.safetensors",
        },
        "dataset": {
            "val_dir": val_dir,
            "num_scenes": 7,
            "scene_ids": list(range(7)) if scene_ids is None else scene_ids,
            "seen_types": SEEN,
            "heldout_types": HELDOUT,
        },
        "settings": {
            "context_frames": 10,
            "rollout_frames": ROLLOUT,
            "horizons": HORIZONS,
            "max_scenes_per_type": 100,
            "chaos_epsilon_px": 0.001,
        },
        "methods": METHODS,
        "per_type": per_type,
        "aggregate": aggregate,
        "error_vs_horizon": evh,
        "gifs": {t: f"comparison_gifs/{t}_cmp.gif" for t in SEEN + HELDOUT},
        "timing": {"rollout_frames_per_s": 1234.5},
    }


def comparison_frames(seed: int) -> np.ndarray:
    """A tiny comparison animation: ground truth (green ball) left, prediction (blue ball) right."""
    frames = np.full((4, 30, 80, 3), 250, dtype=np.uint8)
    frames[:, :, 40, :] = 0
    for i in range(4):
        x = 5 + 6 * i + seed
        frames[i, 10:18, x : x + 8] = (30, 160, 60)
        frames[i, 10:18, 40 + x + 2 : 40 + x + 10] = (30, 90, 200)
    return frames


def make_eval_dir(root: Path, name: str, **kwargs) -> Path:
    from physworld.data.render import write_gif

    d = root / name
    (d / "comparison_gifs").mkdir(parents=True)
    metrics = make_metrics(**kwargs)
    (d / "metrics.json").write_text(json.dumps(metrics, indent=2))
    for i, t in enumerate(metrics["gifs"]):
        write_gif(d / "comparison_gifs" / f"{t}_cmp.gif", comparison_frames(i), fps=10)
    return d


@pytest.fixture
def eval_dir(tmp_path) -> Path:
    return make_eval_dir(tmp_path, "eval_expert")


@pytest.fixture
def page(eval_dir, tmp_path) -> str:
    return write_report([eval_dir], tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def section(html: str, start_id: str, end_id: str) -> str:
    return html[html.index(f'id="{start_id}"') : html.index(f'id="{end_id}"')]


# ---------------------------------------------------------------- one evaluation


def test_page_is_one_self_contained_file(eval_dir, tmp_path):
    out = write_report([eval_dir], tmp_path / "out" / "report.html")
    assert out == tmp_path / "out" / "report.html"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temp file left behind
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert not re.search(r"https?://", html), "the page must make no external request"
    assert "<link" not in html and "@import" not in html and "url(" not in html and "<script" not in html
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/gif;base64,") for s in srcs)
    assert CSP in html  # the browser refuses anything but data: images and the inline style


def test_verdicts_say_beats_and_loses_from_the_numbers(page):
    # seen: model 0.1 px/frame, best baseline ballistic 0.405 -> at h=20: 2.00 vs 8.10
    assert (
        "On seen types the model beats every baseline at horizon 20 (2.00 px vs 8.10 px for ballistic" in page
    )
    # held-out: model 0.615 -> 12.3 px, loses to ballistic (8.10) AND constant velocity (12.0): both named
    assert (
        "On held-out types the model loses to the ballistic baseline at horizon 20 (12.3 px vs 8.10 px); "
        "it also loses to constant velocity (12.0 px)." in page
    )
    assert "Over the full rollout it loses to the ballistic baseline (6.46 px vs 4.25 px)" in page
    assert 'class="loss"' in page and 'class="win"' in page
    assert "The chaos floor at horizon 20 is 0.0400 px." in page


def test_verdict_function_wording():
    m = make_metrics(model_seen=0.5, model_heldout=0.01)
    text, kind = verdict(m, "seen")
    assert kind == "loss" and text.startswith(
        "On seen types the model loses to the ballistic baseline at horizon 20"
    )
    text, kind = verdict(m, "heldout")
    assert kind == "win" and "beats every baseline at horizon 20" in text
    # a model below the chaos floor is suspicious, and said so
    assert "below the chaos floor" in verdict(make_metrics(model_heldout=0.0001), "heldout")[0]
    # a diverged model (NaN) loses, it is never hidden
    nan = make_metrics()
    nan["aggregate"]["seen"]["model"]["position_error_px"]["20"] = float("nan")
    text, kind = verdict(nan, "seen")
    assert kind == "loss" and "loses to every baseline at horizon 20" in text and "NaN" in text
    # so does one whose error the evaluator wrote as null (it does so for a diverged rollout)
    null = make_metrics()
    null["aggregate"]["heldout"]["model"]["position_error_px"]["20"] = None
    text, kind = verdict(null, "heldout")
    assert kind == "loss" and "loses to every baseline at horizon 20: its position error is missing" in text
    # parse failures of a language model are reported
    lm = make_metrics()
    lm["aggregate"]["seen"]["model"]["parse_failures"] = 3
    assert (
        "3 of 100 predicted frames (3%) could not be parsed in full" in verdict(lm, "seen")[0]
    )  # 5 scenes x 20


def test_numbers_are_formatted(page):
    assert [fmt(x) for x in (12.3, 8.1, 0.04, 0.000123, 1234.5, 0, None, float("nan"))] == [
        "12.3", "8.10", "0.0400", "1.23e-04", "1,234", "0", "—", "NaN"
    ]  # fmt: skip
    assert "1,234 frames/s" in page  # timing
    assert "5.00 %" in page  # model energy drift 0.05 as a percentage
    assert "0.123456" not in page and "12.299999" not in page  # no raw floats leak through
    assert '<td class="n">75.6</td>' in page  # held-out model MSE at h=20: 12.3² / 2 = 75.645


def test_headline_table_bolds_the_best_non_floor_method(page):
    seen = section(page, "headline-seen", "headline-heldout")
    # constant position at h=1 is 1.00, the model 0.100, the chaos floor 0.00200 (lower, but not bold)
    assert "<strong>0.100</strong>" in seen and "<strong>0.00200</strong>" not in seen
    held = section(page, "headline-heldout", "headline-all")
    assert "<strong>8.10</strong>" in held  # ballistic at h=20 beats the model's 12.3
    assert "<strong>12.3</strong>" not in held
    for method in (
        "constant position",
        "constant velocity",
        "ballistic",
        "chaos floor",
        "physics-expert (quickstart)",
    ):
        assert method in seen


def test_seen_and_heldout_sections(page):
    for anchor in (
        "headline-seen",
        "headline-heldout",
        "headline-all",
        "types-seen",
        "types-heldout",
        "plots",
        "gifs",
    ):
        assert f'id="{anchor}"' in page
    seen_types = section(page, "types-seen", "types-heldout")
    held_types = section(page, "types-heldout", "plausibility")
    assert "billiards" in seen_types and "stacking_tower" in seen_types and "pong" not in seen_types
    assert "pong" in held_types and "billiards" not in held_types
    assert "loses to ballistic" in held_types and "beats every baseline" in seen_types
    assert "Seen types (2 types, 5 scenes)" in page and "Held-out types (1 type, 2 scenes)" in page
    # two error-vs-horizon plots, a line per method, log scale (errors span 0.002 .. 20 px)
    plots = section(page, "plots", "types")
    assert plots.count("<svg") == 2 and len(series_paths(plots)) == 10 and "log scale" in plots
    assert "Energy drift" in page and "static penetration" in page


def series_paths(svg: str) -> list[str]:
    """The path data of each plotted series (matplotlib groups a line under the id "...-series<i>")."""
    return re.findall(r'<g id="[^"]*-series\d+">\s*<path d="([^"]*)"', svg)


def series_dots(svg: str) -> int:
    return sum(
        g.count("<use") for g in re.findall(r'<g id="[^"]*-series\d+-dots">(.*?)</g>\s*</g>', svg, re.S)
    )


def test_plot_scales_and_gaps():
    # values within a factor 20: linear axis from 0; a NaN breaks the line into two pieces
    svg = svg_line_plot(
        [Series("a & b", [1.0, 2.0, float("nan"), 4.0, 5.0], "#123456")], "t <1>", marks=[1, 5]
    )
    (path,) = series_paths(svg)
    assert "log scale" not in svg and path.count("M ") == 2 and ">0</text>" in svg
    assert "a &amp; b" in svg and "t &lt;1&gt;" in svg and series_dots(svg) == 2  # the marked horizons
    assert not re.search(r"https?://|url\(|<\?xml|DOCTYPE", svg)  # an element for the page, no references
    # one horizon only: a single point; no data at all: a sentence instead of an empty plot
    assert series_dots(svg_line_plot([Series("m", [3.0], "#000")], "one")) == 1
    assert "no error-versus-horizon data" in svg_line_plot([Series("m", [None, None], "#000")], "none")
    log = svg_line_plot([Series("m", [0.001, 0.1, 10.0], "#000")], "log")
    assert "log scale" in log and ">0.001</text>" in log and ">10</text>" in log
    assert svg_line_plot([Series("m", [0.001, 0.1, 10.0], "#000")], "log") == log  # deterministic


def test_gifs_are_embedded_with_captions(eval_dir, page):
    for t in SEEN + HELDOUT:
        data = (eval_dir / "comparison_gifs" / f"{t}_cmp.gif").read_bytes()
        assert "data:image/gif;base64," + base64.b64encode(data).decode() in page
    gifs = page[page.index('id="gifs"') :]
    assert gifs.index("billiards") < gifs.index("stacking_tower") < gifs.index("pong")  # seen first
    assert "ground truth left (green)" in gifs and "prediction right (blue)" in gifs
    assert 'width="240" height="90"' in gifs  # an 80 x 30 GIF is shown at 3x


def test_missing_gif_is_reported_not_fatal(eval_dir, tmp_path):
    (eval_dir / "comparison_gifs" / "pong_cmp.gif").unlink()
    with pytest.warns(UserWarning, match="pong"):
        html = render_report([eval_dir])
    assert "comparison GIF for pong not readable" in html
    assert html.count("data:image/gif;base64,") == 2


def test_output_is_deterministic_and_atomic(eval_dir, tmp_path):
    a = write_report([eval_dir], tmp_path / "a.html")
    b = write_report([eval_dir], tmp_path / "b.html")
    assert a.read_bytes() == b.read_bytes()
    a.write_text("old")
    write_report([eval_dir], a)  # replaces an existing file
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html", "eval_expert"]


def test_strings_from_metrics_are_escaped(tmp_path):
    d = make_eval_dir(tmp_path, "evil", label="<script>alert(1)</script>")
    m = json.loads((d / "metrics.json").read_text())
    m["model"]["checkpoint"] = 'runs/"x"&<b>'
    m["per_type"]["<img src=x onerror=alert(2)>"] = m["per_type"].pop("pong")
    m["gifs"] = {}
    (d / "metrics.json").write_text(json.dumps(m))
    html = render_report([d])
    assert "<script" not in html and "<img src=x" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "runs/&#34;x&#34;&amp;&lt;b&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


def test_no_heldout_types(tmp_path):
    d = make_eval_dir(tmp_path, "seen_only")
    m = json.loads((d / "metrics.json").read_text())
    del m["per_type"]["pong"], m["gifs"]["pong"], m["aggregate"]["heldout"], m["error_vs_horizon"]["heldout"]
    m["dataset"]["heldout_types"] = []
    (d / "metrics.json").write_text(json.dumps(m))
    html = render_report([d])
    assert (
        "No held-out scenes in this evaluation." in html and "No held-out types in this evaluation." in html
    )
    assert "no error-versus-horizon data" in html


# ---------------------------------------------------------------- load_metrics


def test_load_metrics_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nothing" / "metrics.json"))):
        load_metrics(tmp_path / "nothing")
    d = tmp_path / "bad"
    d.mkdir()
    (d / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metrics\.json: invalid JSON at line 1"):
        load_metrics(d)
    m = make_metrics()
    m["format_version"] = 2
    (d / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"bad/metrics\.json: format_version 2"):
        load_metrics(d)
    (d / "metrics.json").write_text(json.dumps({"format": "something-else", "format_version": 1}))
    with pytest.raises(ValueError, match="not a physworld metrics file"):
        load_metrics(d)
    m = make_metrics()
    del m["aggregate"]
    (d / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="'aggregate'"):
        load_metrics(d)
    (d / "metrics.json").write_text(json.dumps(make_metrics()))
    assert load_metrics(d)["format"] == "physworld-metrics"
    assert load_metrics(d / "metrics.json")["model"]["name"] == "physics-expert"


# ---------------------------------------------------------------- leaderboard


def ranking_rows(html: str, split: str, next_id: str) -> list[str]:
    table = section(html, f"ranking-{split}", next_id)
    return [
        re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r'<td class="l">(.*?)</td><td class="l">', table)
    ]


def test_leaderboard_ranks_models_and_baselines(tmp_path):
    # model A: good on seen (0.1), bad on held-out (0.615); model B: the reverse-ish
    a = make_eval_dir(tmp_path, "eval_a", label="model A")
    b = make_eval_dir(tmp_path, "eval_b", label="model B", model_seen=0.3, model_heldout=0.2)
    out = write_report([a, b], tmp_path / "board.html")
    html = out.read_text(encoding="utf-8")
    assert ranking_rows(html, "seen", "ranking-heldout") == [
        "model A",  # 2.00 px at h=20
        "model B",  # 6.00
        "ballistic",  # 8.10
        "constant velocity",  # 12.0
        "constant position",  # 20.0
        "chaos floor",  # listed last, not ranked
    ]
    assert ranking_rows(html, "heldout", "ranking-all") == [
        "model B",  # 4.00
        "ballistic",  # 8.10
        "constant velocity",  # 12.0
        "model A",  # 12.3
        "constant position",
        "chaos floor",
    ]
    assert "1 of 2 models loses to the ballistic baseline (8.10 px): model A." in html
    assert "On held-out types the best at horizon 20 is model B, with 4.00 px." in html
    assert not re.search(r"https?://", html)
    # plots: a line per model plus the four baselines, for seen and held-out
    plots = section(html, "plots", "models")
    assert plots.count("<svg") == 2 and len(series_paths(plots)) == 12
    # each model's section, collapsed, with unique anchors
    assert html.count('<details class="model"') == 2
    assert 'id="m1-headline-seen"' in html and 'id="m2-headline-seen"' in html
    assert "model A</a>" in html and "— loses to a baseline" in html
    assert out.read_bytes() == write_report([a, b], tmp_path / "board2.html").read_bytes()


def test_diverged_model_is_never_a_winner(tmp_path):
    """The evaluator writes null for a diverged rollout's error: the report counts that as a loss."""
    a = make_eval_dir(tmp_path, "eval_a", label="A")
    b = make_eval_dir(tmp_path, "eval_b", label="B", model_seen=0.01, model_heldout=0.01)
    m = json.loads((b / "metrics.json").read_text())
    m["aggregate"]["seen"]["model"]["position_error_px"]["20"] = None
    m["per_type"]["billiards"]["model"]["position_error_px"]["20"] = None
    (b / "metrics.json").write_text(json.dumps(m))
    html = render_report([a, b])
    assert ranking_rows(html, "seen", "ranking-heldout")[:2] == ["A", "ballistic"]  # B, with no number, last
    assert "1 of 2 models loses to the ballistic baseline (8.10 px): B." in html
    single = render_report([b])
    assert (
        "On seen types the model loses to every baseline at horizon 20: its position error is missing"
        in single
    )
    types = section(single, "types-seen", "types-heldout")
    assert "loses to ballistic" in types and "on 1 of 2 types; it loses to a baseline on billiards." in types


def test_a_model_that_parsed_no_frame_has_no_score(tmp_path):
    """A text model whose every frame failed to parse rolled out as constant velocity (the fallback):
    those numbers are the baseline's, so it is neither ranked nor said to tie or win."""
    a = make_eval_dir(tmp_path, "eval_a", label="A")
    b = make_eval_dir(
        tmp_path, "eval_b", label="gpt", model_seen=0.6, model_heldout=0.6
    )  # = constant velocity
    m = json.loads((b / "metrics.json").read_text())
    for split, scenes in (("seen", 5), ("heldout", 2), ("all", 7)):
        m["aggregate"][split]["model"]["parse_failures"] = scenes * ROLLOUT
    m["aggregate"]["heldout"]["model"]["position_error_px"]["20"] = 1.0  # would be the best held-out
    for t, n in SCENES.items():
        m["per_type"][t]["model"]["parse_failures"] = n * ROLLOUT
    m["per_type"]["pong"]["model"]["position_error_px"]["20"] = 1.0
    (b / "metrics.json").write_text(json.dumps(m))
    html = render_report([a, b])
    assert ranking_rows(html, "heldout", "ranking-all")[-2:] == ["gpt", "chaos floor"]  # unranked, last
    assert "the best at horizon 20 is gpt" not in html
    assert "2 of 2 models lose to the ballistic baseline (8.10 px): A, gpt." in html
    text, kind = verdict(m, "heldout")
    assert kind == "loss" and "wrote no frame that could be parsed in full (40 of 40 predicted frames" in text
    single = render_report([b])
    assert "ties with" not in section(single, "types-heldout", "plausibility")
    assert "no frame parsed in full: no score" in single


def test_leaderboard_refuses_different_scenes(tmp_path):
    a = make_eval_dir(tmp_path, "eval_a")
    b = make_eval_dir(tmp_path, "eval_b", scene_ids=[0, 1, 2, 3, 4, 5, 8])
    with pytest.raises(
        ValueError,
        match=r"eval_a and .*eval_b.*scene_ids differ \(7 vs 7 scenes; only in the first: 6; only in the second: 8\)",
    ):
        write_report([a, b], tmp_path / "board.html")
    c = make_eval_dir(tmp_path, "eval_c", val_dir="data/other/val")
    with pytest.raises(
        ValueError, match=r"eval_a and .*eval_c.*val_dir 'data/quickstart/val' vs 'data/other/val'"
    ):
        write_report([a, c], tmp_path / "board.html")
    assert not (tmp_path / "board.html").exists()


def test_leaderboard_warns_when_baselines_differ(tmp_path):
    a = make_eval_dir(tmp_path, "eval_a", label="A")
    b = make_eval_dir(tmp_path, "eval_b", label="B", baseline_scale=1.01)
    with pytest.warns(UserWarning, match="baselines differ between"):
        html = render_report([a, b])
    assert "baselines differ between" in html and "the leaderboard uses those of" in html
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        render_report([a, make_eval_dir(tmp_path, "eval_c", label="C")])  # identical baselines: no warning


def test_leaderboard_with_different_training_types_ranks_only_all(tmp_path):
    a = make_eval_dir(tmp_path, "eval_a", label="A")
    b = make_eval_dir(tmp_path, "eval_b", label="B")
    m = json.loads((b / "metrics.json").read_text())
    m["dataset"]["seen_types"] = ["billiards"]
    m["dataset"]["heldout_types"] = ["stacking_tower", "pong"]
    (b / "metrics.json").write_text(json.dumps(m))
    html = render_report([a, b])
    assert "seen and held-out splits differ" in html
    assert 'id="ranking-all"' in html and 'id="ranking-seen"' not in html


def test_duplicate_labels_are_told_apart(tmp_path):
    a = make_eval_dir(tmp_path, "eval_a")
    b = make_eval_dir(tmp_path, "eval_b")
    html = render_report([a, b])
    assert (
        "physics-expert (quickstart) [eval_a#1]" in html and "physics-expert (quickstart) [eval_b#2]" in html
    )


# ---------------------------------------------------------------- a real browser


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_chromium(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var d = document.createElement("div");
  d.id = "img-check";
  d.textContent = "images loaded " + ok + " of " + imgs.length;
  document.body.appendChild(d);
});
</script>
"""


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    browser = find_chromium()
    a = make_eval_dir(tmp_path, "eval_a", label="A")
    b = make_eval_dir(tmp_path, "eval_b", label="B", model_seen=0.3, model_heldout=0.2)
    single = write_report([a], tmp_path / "single.html")

    shot = tmp_path / "shot.png"
    r = run_chromium(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", single.as_uri())
    assert shot.exists(), f"no screenshot: {r.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 10, "the screenshot is blank"
    assert (pixels.reshape(-1, 3) < 100).all(axis=1).mean() > 0.002  # dark text was drawn

    # every <img> decodes, under the page's own Content-Security-Policy (only inline script allowed in)
    for page, expected in ((single, 3), (write_report([a, b], tmp_path / "board.html"), 6)):
        html = page.read_text(encoding="utf-8")
        assert CSP in html
        probe = tmp_path / f"probe_{page.name}"
        probe.write_text(
            html.replace(CSP, CSP + "; script-src 'unsafe-inline'").replace(
                "</body>", IMAGE_CHECK + "</body>"
            ),
            encoding="utf-8",
        )
        r = run_chromium(browser, tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
        found = re.search(r"images loaded (\d+) of (\d+)", r.stdout)
        assert found, f"the probe did not run: {r.stderr[-2000:]}"
        assert (int(found[1]), int(found[2])) == (expected, expected)


LAYOUT_CHECK = """<script>
window.addEventListener("load", function () {
  var cut = [], cells = document.querySelectorAll("table.types td.verdict, table.types th.verdict");
  cells.forEach(function (c) {
    var box = c.closest(".scroll").getBoundingClientRect(), r = c.getBoundingClientRect();
    if (r.right > box.right + 0.5 || r.right > document.documentElement.clientWidth + 0.5) cut.push(c.textContent);
  });
  var scrolled = Array.prototype.filter.call(document.querySelectorAll(".scroll"), function (s) {
    return s.scrollWidth > s.clientWidth + 1; }).length;
  var d = document.createElement("div");
  d.id = "layout-check";
  d.textContent = "verdict cells " + cells.length + " cut " + cut.length + " scrolled " + scrolled + " width " +
    document.documentElement.clientWidth;
  document.body.appendChild(d);
});
</script>
"""


def wide_type_table(tmp_path: Path) -> Path:
    """An evaluation of every scenario type where the best baseline has the longest name (constant
    velocity) and the model loses to it: the widest per-type table the report draws."""
    from physworld.worlds.registry import HELDOUT, SCENARIOS

    d = make_eval_dir(tmp_path, "wide", label="PhysicsExpert (quickstart, a long label)")
    m = json.loads((d / "metrics.json").read_text())
    template = m["per_type"]["billiards"]
    m["per_type"] = {}
    for t in sorted(SCENARIOS):
        entry = copy.deepcopy(template)
        entry["split"] = "heldout" if t in HELDOUT else "seen"
        entry["model"] = method_row(0.7)
        entry["constant_velocity"] = method_row(0.123456)
        m["per_type"][t] = entry
    m["gifs"] = {}
    (d / "metrics.json").write_text(json.dumps(m))
    return d


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed (apt-get install -y chromium)")
@pytest.mark.parametrize("width", [1400, 1920])
def test_per_type_verdicts_are_not_cut_off(tmp_path, width):
    """Issue 9: at 1400 and 1920 px the per-type table's verdict column was cut off. Screenshot the
    page at that width, and measure in the browser that every verdict cell lies inside its table's box
    and the window, with no table scrolled sideways."""
    from PIL import Image

    browser = find_chromium()
    page = write_report([wide_type_table(tmp_path)], tmp_path / "wide.html")
    shot = tmp_path / f"shot{width}.png"
    r = run_chromium(browser, tmp_path, f"--screenshot={shot}", f"--window-size={width},1600", page.as_uri())
    assert shot.exists(), f"no screenshot: {r.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (1600, width) and pixels.std() > 10
    probe = tmp_path / "probe.html"
    html = page.read_text(encoding="utf-8")
    probe.write_text(
        html.replace(CSP, CSP + "; script-src 'unsafe-inline'").replace("</body>", LAYOUT_CHECK + "</body>"),
        encoding="utf-8",
    )
    r = run_chromium(
        browser,
        tmp_path,
        f"--window-size={width},1600",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    )
    found = re.search(r"verdict cells (\d+) cut (\d+) scrolled (\d+) width (\d+)", r.stdout)
    assert found, f"the probe did not run: {r.stderr[-2000:]}"
    cells, cut, scrolled, seen_width = map(int, found.groups())
    assert seen_width > width - 40, f"the window was {seen_width} px wide, not {width}"
    assert cells == 2 + 35 and cut == 0 and scrolled == 0, found[0]


def test_fixture_follows_the_documented_format():
    """The test data has exactly the keys docs/METRICS.md shows (so the report is tested on that format)."""
    m = make_metrics()
    assert set(m) == {"format", "format_version", "model", "dataset", "settings", "methods", "per_type",
                      "aggregate", "error_vs_horizon", "gifs", "timing"}  # fmt: skip
    row = m["per_type"]["billiards"]["model"]
    assert set(row) == {"position_error_px", "position_mse_px2", "velocity_error", "angle_error_rad",
                        "energy_drift", "penetration_px", "static_penetration_px", "parse_failures"}  # fmt: skip
    assert set(row["position_error_px"]) == {"1", "5", "10", "20", "all"}
    assert copy.deepcopy(m) == json.loads(json.dumps(m))
