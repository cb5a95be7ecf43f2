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

# Words a question keeps once its objects' colours are blanked out: what a text-only model could use.
SHAPE_WORDS = {"ball", "square", "block", "triangle", "polygon", "sphere", "cube", "cylinder", "capsule", "ground",
               "ceiling", "wall", "ledge", "post", "ramp", "peg", "obstacle", "floor", "platform", "striped"}  # fmt: skip


def text_prior_accuracy(seen: list) -> dict:
    """Accuracy per question type of guessing, for each question, the answer most common in seed 0's
    questions with the same template and the same shape and scenery words (falling back to the
    template's most common answer): how much the question's text gives away without the video."""
    train = [q for k, q in seen if k == 0]
    test = [q for k, q in seen if k != 0]
    if not train or not test:
        return {}

    def key(q):
        words = tuple(w.strip("?,") for w in q["question"].lower().split() if w.strip("?,") in SHAPE_WORDS)
        return q["template"], words

    by_key, by_template = defaultdict(Counter), defaultdict(Counter)
    for q in train:
        by_key[key(q)][q["answer"]] += 1
        by_template[q["template"]][q["answer"]] += 1
    right, total = Counter(), Counter()
    for q in test:
        table = by_key.get(key(q)) or by_template.get(q["template"])
        guess = table.most_common(1)[0][0] if table else ""
        right[q["type"]] += guess == q["answer"]
        total[q["type"]] += 1
    return {
        t: right[t] / total[t]
        for t in ("descriptive", "explanatory", "predictive", "counterfactual")
        if total[t]
    }


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
             "template_type": {}, "events": Counter(), "sim_s": 0.0, "describe_s": 0.0, "seen": []},
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
            g["seen"].append((k, q))

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
        prior = text_prior_accuracy(g["seen"])
        if prior:
            print("\nquestion-text prior (majority answer per template and shape/scenery words, fitted on seed 0, "
                  "scored on the other seeds): " + ", ".join(f"{t} {a:.3f}" for t, a in prior.items()))  # fmt: skip
        print("\nevents per scene: " + ", ".join(f"{k} {g['events'][k] / n:.2f}" for k in KIND_ORDER))
        print(f"time per scene: simulation {1000 * g['sim_s'] / n:.1f} ms, describe_scene "
              f"{1000 * g['describe_s'] / n:.1f} ms ({g['describe_s'] / g['sim_s']:.1f}x the simulation)")  # fmt: skip


if __name__ == "__main__":
    main()
