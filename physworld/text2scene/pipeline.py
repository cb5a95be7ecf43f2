"""`physworld text2scene "a red ball rolls down a ramp into a tower of five blocks"`: prompt -> parsed
scene -> knowledge-base properties -> layout -> spec -> simulation -> physics check -> MP4 (and GIF).

Writes into the output directory: scene.json (what was understood: the parsed scene, each object's
KB source and similarity, each relation and whether the layout satisfies it, the solver's report, the
physics findings), spec.json (the physworld scene spec, re-simulable by any physworld tool),
states.npy (the trajectory), video.mp4 and, on request, video.gif.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from physworld.fileio import atomic_write, atomic_write_json
from physworld.text2scene.kb import KnowledgeBase
from physworld.text2scene.layout import plan
from physworld.text2scene.parse import parse_rules
from physworld.text2scene.schema import SceneError, check_scene, from_compact


def parse_prompt(
    prompt: str, kb: KnowledgeBase, parser: str = "rules", checkpoint=None, dims=None
) -> tuple[dict, str]:
    """(scene, which parser produced it). The T5 parser falls back to the rules when its line does not
    decode into a valid scene (and says so)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise SceneError(
            "the prompt is empty; describe objects and how they are placed, e.g. 'a red ball on a box'"
        )
    if parser == "rules":
        return parse_rules(prompt, kb, dims=dims), "rules"
    if parser != "t5":
        raise ValueError(f"--parser must be rules or t5, got {parser!r}")
    if checkpoint is None:
        raise ValueError("--parser t5 needs --checkpoint (a run of `physworld train scene-parser`)")
    from physworld.models.scene_parser import load_scene_parser

    parse, _ = load_scene_parser(checkpoint)
    line = parse([prompt])[0]
    try:
        scene = from_compact(line)
    except SceneError as e:
        scene = parse_rules(prompt, kb, dims=dims)
        return scene, f"rules (the T5 line {line!r} did not decode: {e})"
    if dims is not None:
        scene["dims"] = dims
    return check_scene(scene, "T5 scene"), "t5"


def simulate_and_check(spec: dict, frames: int) -> tuple[np.ndarray, list[str]]:
    """(states, physics findings as strings): the checks `physworld validate --check-physics` runs."""
    from physworld.data.validate import check_physics
    from physworld.worlds.engine import simulate

    run = simulate(spec, frames)
    record = {"scene_id": 0, "scenario_type": "text2scene", "spec": spec, "states": run["states"]}
    findings = [f.message if hasattr(f, "message") else str(f) for f in check_physics(record, "text2scene")]
    return run["states"], findings


def render(
    spec: dict, states: np.ndarray, colours, width: int, motion_blur: bool, shadows: bool, grade_style
):
    """uint8 frames [F, H, W, 3] of the trajectory, with the requested post-processing."""
    from physworld.text2scene import post

    dims = spec["world"].get("dims", 2)
    if dims == 2:
        from physworld.data.render import render_frames

        def draw(s):
            return render_frames(spec, s, width=width, palette=colours)[0]

        rgb, masks = render_frames(spec, states, width=width, palette=colours)
        if motion_blur:
            rgb = post.motion_blur(draw, states, spec["world"]["dt"], 2)
        if shadows:
            rgb = post.drop_shadow(rgb, masks)
    else:
        from physworld.data.render3d import camera_3d, render_views

        height = int(round(width * 3 / 4))
        camera = camera_3d(spec["camera"], width, height)

        def draw(s):
            return render_views(spec, np.asarray(s)[..., :7], camera, shadows=shadows)["rgb"]

        rgb = post.motion_blur(draw, states, spec["world"]["dt"], 3) if motion_blur else draw(states)
    if grade_style:
        rgb = post.grade(rgb, grade_style)
    return rgb


def text2scene(
    prompt: str,
    output_dir,
    parser: str = "rules",
    checkpoint=None,
    dims: int | None = None,
    seconds: float = 3.0,
    width: int = 480,
    gif: bool = False,
    check_physics: bool = False,
    motion_blur: bool = False,
    shadows: bool = False,
    grade: str | None = None,
    kb_paths=(),
    kb: KnowledgeBase | None = None,
) -> dict:
    """Run the whole flow; returns the summary written to scene.json."""
    from physworld.data.render import write_gif, write_mp4

    kb = kb or KnowledgeBase(kb_paths)
    scene, used = parse_prompt(prompt, kb, parser, checkpoint, dims)
    planned = plan(scene, kb, description=prompt.strip())
    spec = planned["spec"]
    fps = 1.0 / spec["world"]["dt"]
    frames = max(1, int(round(seconds * fps)))
    states, findings = simulate_and_check(spec, frames)
    rgb = render(spec, states, planned["colours"], width, motion_blur, shadows, grade)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "prompt": prompt,
        "parser": used,
        "scene": scene,
        "objects": [
            {
                k: r[k]
                for k in (
                    "index",
                    "name",
                    "entry",
                    "how",
                    "similarity",
                    "source",
                    "shape",
                    "material",
                    "material_how",
                    "material_similarity",
                    "material_source",
                    "density",
                    "friction",
                    "restitution",
                )
            }  # fmt: skip
            for r in planned["resolved"]
        ],
        "relations": planned["relations"],
        "solver": planned["solver"],
        "physics_checked": bool(check_physics),
        "physics_findings": findings if check_physics else None,
        "frames": int(states.shape[0]),
        "fps": fps,
        "files": {"spec": "spec.json", "states": "states.npy", "video": "video.mp4"},
    }
    atomic_write_json(out / "spec.json", spec)

    def write_states(tmp):
        buf = io.BytesIO()
        np.save(buf, states, allow_pickle=False)
        Path(tmp).write_bytes(buf.getvalue())

    atomic_write(out / "states.npy", write_states)
    write_mp4(out / "video.mp4", rgb, fps=min(fps, 30.0) if fps > 30 else fps)
    if gif:
        step = max(1, int(round(fps / 15)))
        write_gif(out / "video.gif", rgb[::step], fps=fps / step)
        summary["files"]["gif"] = "video.gif"
    atomic_write_json(out / "scene.json", summary)
    return summary


def describe(summary: dict) -> str:
    """What physworld understood, for the terminal."""
    s = summary["scene"]
    lines = [f"understood ({summary['parser']} parser, {s['dims']}D):", "  objects:"]
    for o, r in zip(s["objects"], summary["objects"], strict=True):
        attrs = ", ".join(v for v in (o["size"], o["colour"]) if v)
        found = (
            ""
            if r["how"] == "exact"
            else f" (nearest KB entry to {o['name']!r}, similarity {r['similarity']:.2f})"
        )
        mat = f"{r['material']} ({'default for ' + r['entry'] if r['material_how'] == 'default' else r['material_how']}"
        mat += "" if r["material_how"] != "nearest" else f", similarity {r['material_similarity']:.2f}"
        lines.append(
            f"    [{r['index']}] {o['count']} x {r['entry']}{found}{' (' + attrs + ')' if attrs else ''}: {r['shape']}, "
            f"material {mat}, {r['material_source']}), density {r['density']:g} kg/m^3, friction {r['friction']:g}, "
            f"restitution {r['restitution']:g}; KB {r['source']}"
        )
    if summary["relations"]:
        lines.append("  relations:")
        for r in summary["relations"]:
            lines.append(
                f"    {r['relation']}: {'satisfied' if r['satisfied'] else 'NOT satisfied: ' + r['detail']}"
            )
    m = s["motion"]
    if m is not None:
        names = [o["name"] for o in s["objects"]]
        tgt = "" if m["target"] is None else f" towards {names[m['target']]}"
        lines.append(f"  motion: {names[m['object']]} {m['action']}s{tgt}")
    sol = summary["solver"]
    lines.append(
        f"layout: L-BFGS-B, {sol['iterations']} iterations, remaining penalty {sol['penalty']:.3g}; sizes "
        f"{sol['scale']:.2g}x the knowledge base's so the scene fills the frame"
    )
    if summary["physics_checked"]:
        f = summary["physics_findings"]
        lines.append(
            "physics (validate --check-physics): "
            + ("clean" if not f else f"{len(f)} finding(s): " + "; ".join(f[:3]))
        )
    return "\n".join(lines)


def dumps(summary: dict) -> str:
    return json.dumps(summary, indent=2)
