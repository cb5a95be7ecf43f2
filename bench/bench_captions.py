"""Answer statistics of the caption questions: the majority-answer rate per question type and template.

A question set whose answers are mostly one value is useless for evaluation: "always say yes" would
score well on it. The majority-answer rate (the share of the most common answer) is the accuracy of
that blind guess, the baseline a video-language model must beat. Also: events per scene by kind, and
the cost of describe_scene beside the simulation of the scene itself (both timed in this run).

    python bench/bench_captions.py                       # all 35 2D types, difficulties 1-5, 2 seeds
    python bench/bench_captions.py --scenes-per-type 1 --types collision stacking
"""

from __future__ import annotations

import argparse
import collections
import time

from tqdm.auto import tqdm

from physworld.data.captions import KIND_ORDER, describe_scene
from physworld.data.generate import make_record, scene_seed
from physworld.worlds.registry import DIFFICULTIES, resolve_types


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--types", nargs="+", default=["all"])
    p.add_argument("--scenes-per-type", type=int, default=2, help="seeds per type and difficulty")
    p.add_argument("--frames", type=int, default=120, help="clip length in frames (60 per second)")
    p.add_argument("--predict-frames", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    types = resolve_types(args.types)
    plan = [(t, d, k) for t in types for d in DIFFICULTIES for k in range(args.scenes_per_type)]
    answers: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    templates: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    template_type: dict[str, str] = {}
    events = collections.Counter()
    sim_s = describe_s = 0.0
    for scenario_type, difficulty, k in tqdm(plan, unit="scene"):
        seed = scene_seed(args.seed, scenario_type, difficulty * 1000 + k)
        t0 = time.perf_counter()
        record = make_record(0, scenario_type, difficulty, seed, args.frames)
        t1 = time.perf_counter()
        out = describe_scene(record, predict_frames=args.predict_frames)
        t2 = time.perf_counter()
        sim_s, describe_s = sim_s + (t1 - t0), describe_s + (t2 - t1)
        events.update(e["kind"] for e in out["events"])
        for q in out["questions"]:
            answers[q["type"]][q["answer"]] += 1
            templates[q["template"]][q["answer"]] += 1
            template_type[q["template"]] = q["type"]

    n = len(plan)
    print(
        f"\n{n} scenes ({len(types)} types x difficulties 1-5 x {args.scenes_per_type} seeds), "
        f"{args.frames}-frame clips, predictive horizon {args.predict_frames} frames\n"
    )
    print("| question type | questions | per scene | distinct answers | majority answer | majority rate |")
    print("|---|---|---|---|---|---|")
    for qtype in ("descriptive", "explanatory", "predictive", "counterfactual"):
        c = answers[qtype]
        total = sum(c.values())
        if not total:
            print(f"| {qtype} | 0 | 0 | - | - | - |")
            continue
        top, count = c.most_common(1)[0]
        print(f"| {qtype} | {total} | {total / n:.2f} | {len(c)} | {top} | {count / total:.3f} |")
    print("\n| template | type | questions | majority answer | majority rate | top answers |")
    print("|---|---|---|---|---|---|")
    for name in sorted(templates, key=lambda t: (template_type[t], t)):
        c = templates[name]
        total = sum(c.values())
        top, count = c.most_common(1)[0]
        spread = ", ".join(f"{a} {v / total:.2f}" for a, v in c.most_common(4))
        print(f"| {name} | {template_type[name]} | {total} | {top} | {count / total:.3f} | {spread} |")
    print("\nevents per scene: " + ", ".join(f"{k} {events[k] / n:.2f}" for k in KIND_ORDER))
    print(
        f"time per scene: simulation {1000 * sim_s / n:.1f} ms, describe_scene {1000 * describe_s / n:.1f} ms "
        f"({describe_s / sim_s:.1f}x the simulation, measured in this run)"
    )


if __name__ == "__main__":
    main()
