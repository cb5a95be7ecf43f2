"""The report's two vision sections (evaluation/report.py SECTIONS), read from files beside an
evaluation's metrics.json:

- vision_loop.json (evaluation/vision_loop.py): "Vision in the loop", the PhysicsExpert rolled out from
  the Visual Expert's estimates beside the same rollout from the true states, per horizon;
- supervisor_ood.json (`write_ood`, bench/bench_supervisor.py): "Out of distribution", the Visual
  Expert before and after the Supervisor's fine-tune, the fine-tune without L_phys, the tracker and
  the training-mean parameters, held-out types and the parameter shift in separate tables.

Each returns None when its file is absent, so the section is left out of other evaluations' pages.
"""

from __future__ import annotations

import json
from pathlib import Path

OOD_FILE = "supervisor_ood.json"
OOD_ROWS = {
    "before": "Visual Expert before fine-tuning",
    "full": "fine-tuned: full Supervisor",
    "no_phys": "fine-tuned: lambda_phys = 0",
    "tracker": "tracker (centroids of the true masks)",
    "mean_params": "training-mean parameters",
}
OOD_COLUMNS = (
    ("position_error", "position (px)", 1),
    ("velocity_error", "velocity (px/s)", 1),
    ("log_mass_rel_error", "log mass (rel.)", 3),
    ("friction_error", "friction", 3),
    ("restitution_error", "restitution", 3),
)
SPLIT_TITLES = {
    "heldout_types": "held-out scenario types (parameters as written)",
    "param_shift": "training types, parameters shifted (heavier, slipperier, bouncier)",
}


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _cell(x, digits: int) -> str:
    return "–" if not isinstance(x, (int, float)) else f"{x:.{digits}f}"


def write_ood(eval_dir, result: dict) -> Path:
    """supervisor_ood.json from bench_supervisor's result (its "splits")."""
    from physworld.fileio import atomic_write_json

    return atomic_write_json(Path(eval_dir) / OOD_FILE, {"format": "physworld-supervisor-ood", **result})


def ood_values(eval_dir) -> dict | None:
    data = _read(Path(eval_dir) / OOD_FILE)
    if data is None or not isinstance(data.get("splits"), dict):
        return None
    tables = []
    for split, s in data["splits"].items():
        rows = []
        for key, name in OOD_ROWS.items():
            r = s.get("rows", {}).get(key)
            if isinstance(r, dict):
                rows.append({"cells": [name] + [_cell(r.get(k), d) for k, _, d in OOD_COLUMNS]})
        counts = s.get("counts", {})
        tables.append(
            {
                "caption": SPLIT_TITLES.get(split, split),
                "note": f"{counts.get('windows', '?')} windows, {counts.get('pairs', '?')} (body, frame) pairs; "
                "errors are means over matched bodies (parameters: dynamic bodies); lower is better.",
                "columns": ["method"] + [c for _, c, _ in OOD_COLUMNS],
                "rows": rows,
            }
        )
    intro = (
        "The Visual Expert fine-tuned on unlabelled clips (RGB only) with L_vis + L_phys + L_consistency "
        "against the frozen PhysicsExpert, scored on other unlabelled clips of the same kind whose labels "
        "only the scoring reads."
    )
    return {"intro": intro, "tables": tables}


def vision_loop_values(eval_dir) -> dict | None:
    from physworld.evaluation.vision_loop import FILE, ROW_NAMES, ROWS

    data = _read(Path(eval_dir) / FILE)
    if data is None or not isinstance(data.get("groups"), dict):
        return None
    tables = []
    for group, g in data["groups"].items():
        rows_in = g.get("rows", {})
        width = max((len(r.get("position_error_px", [])) for r in rows_in.values()), default=0)
        rows = [
            {"cells": [ROW_NAMES.get(k, k)] + [_cell(v, 1) for v in r.get("position_error_px", [])]
             + [_cell(r.get("mean_over_horizons_px"), 1)]}
            for k in ROWS
            if isinstance(r := rows_in.get(k), dict)
        ]  # fmt: skip
        tables.append(
            {
                "caption": f"{group}: {g.get('clips', '?')} clips, {g.get('bodies', '?')} bodies",
                "note": "",
                "columns": ["rollout"] + [f"h{h}" for h in range(width)] + ["mean h1.."],
                "rows": rows,
            }
        )
    intro = (
        f"Position error (px) at clip frames after the Visual Expert's {data.get('context_frames', '?')}-frame "
        f"context (at {data.get('fps', '?')} frames/s; h0 is the estimate itself): the PhysicsExpert rolled "
        "out from the Visual Expert's estimated states, parameters and mask geometry, beside the same "
        "PhysicsExpert from the true states and constant velocity from each."
    )
    return {"intro": intro, "tables": tables}
