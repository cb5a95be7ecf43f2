"""Answer statistics of the caption questions: the majority-answer rate per question type and template.

A question set whose answers are mostly one value is useless for evaluation: "always say yes" would
score well on it. The majority-answer rate (the share of the most common answer) is the accuracy of
that blind guess, the baseline a video-language model must beat. Also: events per scene by kind, and
the cost of describe_scene beside the simulation of the scene itself (both timed in this run).

    python bench/bench_captions.py               # every 2D and 3D type, difficulties 1-5, 2 seeds each
    python bench/bench_captions.py --scenes-per-type 1 --types collision movi_a
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict

from tqdm.auto import tqdm

from physworld.data.captions import KIND_ORDER, PREDICT_TIME, describe_scene
from physworld.data.generate import make_record, scene_seed
from physworld.worlds.registry import DIFFICULTIES, dims_of, resolve_types


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--types", nargs="+", default=["all", "3d"])
    p.add_argument("--scenes-per-type", type=int, default=2, help="seeds per type and difficulty")
    p.add_argument("--seconds", type=float, default=2.0, help="clip length (MOVi: 24 frames at 12 fps)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    types = resolve_types(args.types)
    plan = [(t, d, k) for t in types for d in DIFFICULTIES for k in range(args.scenes_per_type)]
    groups = {}  # "2D" / "3D" -> statistics
    for scenario_type, difficulty, k in tqdm(plan, unit="scene"):
        dims = dims_of(scenario_type)
        g = groups.setdefault(
            f"{dims}D",
            {"n": 0, "types": set(), "answers": defaultdict(Counter), "templates": defaultdict(Counter),
             "template_type": {}, "events": Counter(), "sim_s": 0.0, "describe_s": 0.0},
        )  # fmt: skip
        fps = 60 if dims == 2 else 24
        seed = scene_seed(args.seed, scenario_type, difficulty * 1000 + k)
        t0 = time.perf_counter()
        record = make_record(0, scenario_type, difficulty, seed, round(args.seconds * fps))
        t1 = time.perf_counter()
        out = describe_scene(record)
        t2 = time.perf_counter()
        g["n"] += 1
        g["types"].add(scenario_type)
        g["sim_s"] += t1 - t0
        g["describe_s"] += t2 - t1
        g["events"].update(e["kind"] for e in out["events"])
        for q in out["questions"]:
            g["answers"][q["type"]][q["answer"]] += 1
            g["templates"][q["template"]][q["answer"]] += 1
            g["template_type"][q["template"]] = q["type"]

    for name, g in groups.items():
        n = g["n"]
        print(f"\n### {name}: {n} scenes ({len(g['types'])} types x difficulties 1-5 x {args.scenes_per_type} "
              f"seeds), {args.seconds:g} s clips, predictive horizon {PREDICT_TIME:g} s\n")  # fmt: skip
        print(
            "| question type | questions | per scene | distinct answers | majority answer | majority rate |"
        )
        print("|---|---|---|---|---|---|")
        for qtype in ("descriptive", "explanatory", "predictive", "counterfactual"):
            c = g["answers"][qtype]
            total = sum(c.values())
            if not total:
                print(f"| {qtype} | 0 | 0 | - | - | - |")
                continue
            top, count = c.most_common(1)[0]
            print(f"| {qtype} | {total} | {total / n:.2f} | {len(c)} | {top} | {count / total:.3f} |")
        print("\n| template | type | questions | majority answer | majority rate | top answers |")
        print("|---|---|---|---|---|---|")
        for t in sorted(g["templates"], key=lambda t: (g["template_type"][t], t)):
            c = g["templates"][t]
            total = sum(c.values())
            top, count = c.most_common(1)[0]
            spread = ", ".join(f"{a} {v / total:.2f}" for a, v in c.most_common(4))
            print(f"| {t} | {g['template_type'][t]} | {total} | {top} | {count / total:.3f} | {spread} |")
        print("\nevents per scene: " + ", ".join(f"{k} {g['events'][k] / n:.2f}" for k in KIND_ORDER))
        print(f"time per scene: simulation {1000 * g['sim_s'] / n:.1f} ms, describe_scene "
              f"{1000 * g['describe_s'] / n:.1f} ms ({g['describe_s'] / g['sim_s']:.1f}x the simulation)")  # fmt: skip


if __name__ == "__main__":
    main()
