"""text2scene, measured: the T5 parser beside the rules parser on the same prompts, the layout's
constraint satisfaction rate, and the share of generated scenes that pass validate --check-physics.

Parsing: exact match (the same facts and object count) and field-level micro F1 (each object
attribute, relation and the motion as one fact, objects keyed by name) on three prompt sets:
  - val: generated prompts in the training phrasings, scenes the model never saw;
  - heldout: generated prompts in phrasings held out of training (phrasing.py, ids ending in "h");
  - handwritten: tests/data/text2scene_prompts.jsonl (written by the author of the rules: the rules'
    score there is optimistic).
Layout: the expected scenes of the val and heldout sets laid out (knowledge base + L-BFGS-B); a scene
counts as satisfied when every relation holds on the final poses and the spawn, overlap and float
checks pass; the rest are listed by reason. Physics: those laid-out scenes simulated for --seconds
and run through validate's physics checks (spawn overlap, penetration, escapes).

    python bench/bench_text2scene.py                       # trains configs/scene_parser/default.yaml first if needed
    python bench/bench_text2scene.py --checkpoint runs/scene_parser --n 300 --physics 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from tqdm.auto import tqdm

from physworld.text2scene.kb import KnowledgeBase
from physworld.text2scene.layout import plan
from physworld.text2scene.parse import parse_rules
from physworld.text2scene.phrasing import corpus
from physworld.text2scene.schema import (
    SceneError,
    check_scene,
    f1,
    field_counts,
    from_compact,
    same_scene,
    to_compact,
)

ROOT = Path(__file__).resolve().parents[1]


def score(predicted: list, expected: list) -> dict:
    tp = got = want = exact = failed = 0
    for p, e in zip(predicted, expected, strict=True):
        a, b, c = field_counts(p, e)
        tp, got, want = tp + a, got + b, want + c
        exact += p is not None and same_scene(p, e)
        failed += p is None
    return {
        "exact_match": exact / len(expected),
        "field_f1": f1(tp, got, want),
        "failed": failed,
        "n": len(expected),
    }


def rules_parse(prompts, kb):
    out = []
    for p in prompts:
        try:
            out.append(parse_rules(p, kb))
        except SceneError:
            out.append(None)
    return out


def t5_parse(parse, prompts):
    out = []
    for line in parse(prompts):
        try:
            out.append(from_compact(line))
        except SceneError:
            out.append(None)
    return out


def losses(prompts, expected, rules, t5, limit=8) -> list[dict]:
    """Prompts the rules get right and T5 gets wrong: where T5 loses."""
    out = []
    for p, e, r, t in zip(prompts, expected, rules, t5, strict=True):
        if r is not None and same_scene(r, e) and not (t is not None and same_scene(t, e)):
            out.append({"prompt": p, "expected": to_compact(e), "t5": None if t is None else to_compact(t)})
    return out[:limit], len(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "runs" / "scene_parser")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "scene_parser" / "default.yaml")
    ap.add_argument("--n", type=int, default=300, help="generated prompts per set (val, heldout)")
    ap.add_argument("--physics", type=int, default=100, help="laid-out scenes simulated and checked")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument(
        "--seed", type=int, default=12345, help="the evaluation corpus' seed (not the training one)"
    )
    ap.add_argument("--output", type=Path, default=ROOT / "runs" / "bench_text2scene.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    if not (args.checkpoint / "checkpoints" / "latest.safetensors").is_file():
        print(f"training the T5 parser first: physworld train scene-parser --config {args.config}")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "physworld.cli", "train", "scene-parser", "--config", str(args.config),
                        f"train.output_dir={args.checkpoint}"], check=True)  # fmt: skip
        print(f"trained in {time.perf_counter() - t0:.0f} s wall")
    from physworld.models.scene_parser import load_scene_parser

    parse, info = load_scene_parser(args.checkpoint)
    summary_path = args.checkpoint / "summary.json"
    train_summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    kb = KnowledgeBase()

    sets = {
        "val (training phrasings, new scenes)": corpus(args.n, args.seed, "val"),
        "heldout phrasings": corpus(args.n, args.seed, "heldout"),
        "handwritten (tests/data)": [
            (h["prompt"], check_scene(h["scene"]))
            for h in map(json.loads, (ROOT / "tests/data/text2scene_prompts.jsonl").read_text().splitlines())
        ],
    }
    results = {"parameters": info.get("parameters"), "train_summary": train_summary, "parsing": {}}
    for name, pairs in sets.items():
        prompts = [p for p, _ in pairs]
        expected = [s for _, s in pairs]
        t0 = time.perf_counter()
        rules = rules_parse(prompts, kb)
        t_rules = time.perf_counter() - t0
        t0 = time.perf_counter()
        t5 = t5_parse(parse, prompts)
        t_t5 = time.perf_counter() - t0
        lost, lost_n = losses(prompts, expected, rules, t5)
        results["parsing"][name] = {
            "rules": dict(score(rules, expected), ms_per_prompt=1000 * t_rules / len(prompts)),
            "t5": dict(score(t5, expected), ms_per_prompt=1000 * t_t5 / len(prompts)),
            "t5_loses_to_rules": lost_n,
            "t5_wins_over_rules": sum(
                t is not None and same_scene(t, e) and not (r is not None and same_scene(r, e))
                for e, r, t in zip(expected, rules, t5, strict=True)
            ),
            "examples_where_t5_loses": lost,
        }

    # layout and physics on the expected scenes of the generated sets
    scenes = [s for name, pairs in list(sets.items())[:2] for _, s in pairs]
    reasons, laid = Counter(), []
    for s in tqdm(scenes, desc="layout"):
        try:
            laid.append(plan(json.loads(json.dumps(s)), kb))
        except ValueError as e:
            reasons[str(e).split(":")[0][:70]] += 1
    from physworld.text2scene.pipeline import simulate_and_check

    physics_ok, findings = 0, Counter()
    checked = laid[: args.physics]
    for out in tqdm(checked, desc="simulate + check"):
        spec = out["spec"]
        frames = int(round(args.seconds / spec["world"]["dt"]))
        _, found = simulate_and_check(spec, frames)
        physics_ok += not found
        for f in found:
            findings[f.split(" by ")[0][:60]] += 1
    results["layout"] = {
        "scenes": len(scenes),
        "satisfied": len(laid) / len(scenes),
        "relations_checked": sum(len(o["relations"]) for o in laid),
        "refusals": dict(reasons.most_common(10)),
    }
    results["physics"] = {"scenes": len(checked), "pass_check_physics": physics_ok / max(len(checked), 1),
                          "findings": dict(findings.most_common(10))}  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))

    print(f"T5 parser: {results['parameters']:,} parameters; training summary: "
          f"{ {k: train_summary.get(k) for k in ('steps', 'val_exact_match', 'heldout_phrasing_exact_match')} }")  # fmt: skip
    print(
        "| prompts | n | rules exact | rules F1 | T5 exact | T5 F1 | T5 undecodable | T5 loses / wins vs rules |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results["parsing"].items():
        ru, t5r = r["rules"], r["t5"]
        print(f"| {name} | {ru['n']} | {ru['exact_match']:.1%} | {ru['field_f1']:.3f} | {t5r['exact_match']:.1%} | "
              f"{t5r['field_f1']:.3f} | {t5r['failed']} | {r['t5_loses_to_rules']} / {r['t5_wins_over_rules']} |")  # fmt: skip
    for name, r in results["parsing"].items():
        for ex in r["examples_where_t5_loses"][:4]:
            print(
                f"  T5 loses ({name}): {ex['prompt']!r}\n      expected {ex['expected']}\n      T5       {ex['t5']}"
            )
    lay = results["layout"]
    print(f"layout: {lay['satisfied']:.1%} of {lay['scenes']} expected scenes laid out with every relation satisfied "
          f"({lay['relations_checked']} relations); refusals: {lay['refusals']}")  # fmt: skip
    ph = results["physics"]
    print(f"physics: {ph['pass_check_physics']:.1%} of {ph['scenes']} laid-out scenes pass validate --check-physics "
          f"({args.seconds:g} s each); findings: {ph['findings']}")  # fmt: skip
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
