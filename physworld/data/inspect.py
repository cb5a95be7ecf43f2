"""Readable text views of scenes for people (not the language-model codec): `physworld heldout-examples`."""

from __future__ import annotations

import numpy as np

from physworld.worlds.bullet import STATE_FIELDS_3D
from physworld.worlds.engine import STATE_FIELDS


def _body_line(i: int, b: dict) -> str:
    if b["shape"] == "circle":
        size = f"circle r={b['radius']:.1f}"
    elif b["shape"] == "box":
        size = f"box {b['width']:.1f}x{b['height']:.1f}"
    else:
        size = f"poly {len(b['vertices'])} vertices"
    kind = "kinematic" if b.get("kinematic") else f"mass={b['mass']:.3g} moment={b['moment']:.4g}"
    return (
        f"  [{i}] {size:18s} {kind:28s} friction={b['friction']:.2f} elasticity={b['elasticity']:.2f} "
        f"pos=({b['position'][0]:.1f}, {b['position'][1]:.1f}) vel=({b['velocity'][0]:.1f}, "
        f"{b['velocity'][1]:.1f}) angle={b['angle']:.2f}"
    )


def _body_line_3d(i: int, b: dict) -> str:
    if b["shape"] == "box":
        size = "box " + "x".join(f"{v:.2f}" for v in b["size"])
    elif b["shape"] == "sphere":
        size = f"sphere r={b['radius']:.2f}"
    else:
        size = f"{b['shape']} r={b['radius']:.2f} h={b['height']:.2f}"
    pos, vel = ", ".join(f"{v:.2f}" for v in b["position"]), ", ".join(f"{v:.2f}" for v in b["velocity"])
    return (
        f"  [{i}] {b['color']} {b['material']} {size:24s} mass={b['mass']:.3g} friction={b['friction']:.2f} "
        f"restitution={b['restitution']:.2f} (effective {b.get('effective_restitution', float('nan')):.2f}) "
        f"pos=({pos}) vel=({vel})"
    )


def _setting_lines(spec: dict, n_frames: int) -> list[str]:
    w = spec["world"]
    if w.get("dims", 2) == 3:
        return [
            f"3D world, bounds {w['bounds']['min']} to {w['bounds']['max']} m, gravity {w['gravity']} m/s^2, "
            f"dt {w['dt']:.5f} s x {w['substeps']} substeps, {n_frames} frames",
            f"static geometry: {', '.join(s['kind'] for s in spec['statics'])}",
            f"bodies ({len(spec['bodies'])}):",
            *(_body_line_3d(i, b) for i, b in enumerate(spec["bodies"])),
        ]
    return [
        f"world {w['width']:g}x{w['height']:g} px, gravity ({w['gravity'][0]:g}, {w['gravity'][1]:g}) px/s^2, "
        f"dt {w['dt']:.5f} s x {w['substeps']} substeps, {n_frames} frames",
        f"static geometry: {len(spec['statics'])} pieces; force fields: {', '.join(spec.get('fields') or {}) or 'none'}",
        f"bodies ({len(spec['bodies'])}):",
        *(_body_line(i, b) for i, b in enumerate(spec["bodies"])),
    ]


def scene_summary(record: dict, every: int = 20) -> str:
    """The scene's setting, bodies, constraints, contact onsets and its state every `every` frames
    (2D or 3D scenes)."""
    spec, states, ev = record["spec"], record["states"], record["events"]
    lines = [
        f"=== scene {record['scene_id']} | {record['scenario_type']} ({record['category']}) | difficulty "
        f"{record['difficulty']} | seed {record['seed']}",
        spec.get("description", ""),
        *_setting_lines(spec, states.shape[0]),
    ]
    if spec["constraints"]:
        lines.append(
            f"constraints ({len(spec['constraints'])}): "
            + ", ".join(f"{c['kind']}({c['a']}->{c['b']})" for c in spec["constraints"][:12])
            + (" ..." if len(spec["constraints"]) > 12 else "")
        )
    n_ev = len(ev["frame"])
    lines.append(
        f"contact onsets: {n_ev}"
        + (
            ": "
            + ", ".join(
                f"f{f}:{a}-{b}"
                for f, a, b in zip(ev["frame"][:10], ev["body_a"][:10], ev["body_b"][:10], strict=True)
            )
            + (" ..." if n_ev > 10 else "")
            if n_ev
            else ""
        )
    )
    fields = STATE_FIELDS_3D if states.shape[-1] == len(STATE_FIELDS_3D) else STATE_FIELDS
    header = "frame body " + " ".join(f"{f:>10s}" for f in fields)
    lines.append(header)
    frames = list(range(0, states.shape[0], every))
    if frames[-1] != states.shape[0] - 1:
        frames.append(states.shape[0] - 1)
    for f in frames:
        for i in range(states.shape[1]):
            vals = " ".join(f"{v:10.3f}" for v in np.asarray(states[f, i], dtype=np.float64))
            lines.append(f"{f:5d} {i:4d} {vals}")
    return "\n".join(lines) + "\n"
