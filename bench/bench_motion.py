"""Text to motion on the DeepMimic fixture: MotionSSM with the PhysicsSSM gate, without it, and the
nearest-clip retrieval baseline, on the held-out windows (held-out phrasings), with PD playback.

    python bench/bench_motion.py --output-dir /tmp/motion_bench [--steps 600] [--playback 30]

Trains configs/motion/small.yaml twice through the recipe (model.gate=true, model.gate=false; the same
seed, data and step budget, one thread each), then scores on every held-out window, one held-out
phrasing each:
  - "MotionSSM + gate": the gated output (what text2motion renders);
  - "same weights, gate forced to 1": that model's ssm_out alone (what the gate adds at inference);
  - "MotionSSM, no gate": the model trained without the gate;
  - "retrieval": the training window whose phrasing is nearest by bag-of-words cosine;
  - "ground truth": the held-out windows themselves (physics errors of the motion capture; 0 MPJPE).
Metrics: evaluation/motion.py (MPJPE, penetration, floating, skating, jerk) and PD playback of the
first --playback windows (tracking error, share fallen, seconds upright). FID / R-precision: not
computed (no pretrained evaluator here). A rerun reuses finished training runs (their summary.json).
The fixture is 15 clips of one humanoid: not KIT-ML or HumanML3D.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train(out: Path, steps: int, gate: bool) -> tuple[Path, float]:
    from physworld.recipes import motion as recipe

    run = out / ("gate" if gate else "nogate")
    if (run / "summary.json").is_file() and json.loads((run / "summary.json").read_text())["steps"] == steps:
        return run / "checkpoints" / "latest.safetensors", float("nan")
    t0 = time.process_time()
    recipe.main(
        str(ROOT / "configs" / "motion" / "small.yaml"),
        [
            f"train.output_dir={run}",
            f"train.max_steps={steps}",
            f"model.gate={str(gate).lower()}",
            "train.threads=1",
        ],
        progress=True,
    )
    return run / "checkpoints" / "latest.safetensors", time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--playback", type=int, default=30, help="held-out windows played back per method")
    args = parser.parse_args()

    import numpy as np
    import torch

    from physworld.data.motion import build_fixture
    from physworld.evaluation import motion as E
    from physworld.models.motion_ssm import load_motion_model

    torch.set_num_threads(1)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_gate, cpu_gate = train(out, args.steps, gate=True)
    ckpt_nogate, cpu_nogate = train(out, args.steps, gate=False)

    data = build_fixture()
    queries = E.heldout_queries(data["test"])
    gated, info = load_motion_model(ckpt_gate)
    plain, _ = load_motion_model(ckpt_nogate)
    methods = {"MotionSSM + gate": E.generate_features(gated, queries)}
    gated.forced_gate = 1.0
    methods["same weights, gate forced to 1"] = E.generate_features(gated, queries)
    gated.forced_gate = None
    methods["MotionSSM, no gate"] = E.generate_features(plain, queries)
    methods["retrieval"] = data["train"]["features"][E.retrieve(data["train"]["texts"], queries)]
    gate_mean = float(gated.generate(queries[:64])["gate"].mean())

    # playback on windows spread over the held-out set (every clip appears)
    n = len(queries)
    pick = np.linspace(0, n - 1, min(args.playback, n)).round().astype(int)
    rows = E.evaluate_methods(methods, data, playback=0)
    if args.playback:
        from physworld.data.motion import features_to_poses

        for name, features in {"ground truth": data["test"]["features"], **methods}.items():
            poses = features_to_poses(features[pick])
            rows[name].update(E.playback_summary([E.play_back(p, data["fps"]) for p in poses]))

    result = {
        "steps": args.steps,
        "train_cpu_s": {"gate": cpu_gate, "nogate": cpu_nogate},
        "heldout_windows": n,
        "train_windows": len(data["train"]["features"]),
        "playback_windows": len(pick),
        "mean_gate": gate_mean,
        "rows": rows,
        "fid_r_precision": E.NO_EVALUATOR,
        "note": data["note"],
    }
    (out / "bench_motion.json").write_text(json.dumps(result, indent=2))
    cols = [
        "mpjpe_mm",
        "penetrate_mm",
        "float_mm",
        "skate_mm",
        "jerk",
        "speed_mm",
        "tracking_error_mm",
        "fell_share",
        "seconds_upright",
    ]
    print(
        f"held-out windows: {n} (train {result['train_windows']}), {args.steps} steps each; mean gate {gate_mean:.2f}"
    )
    print("| method | " + " | ".join(cols) + " |")
    print("|" + "---|" * (len(cols) + 1))
    for name, row in rows.items():
        cells = [
            f"{row[c]:.2f}" if c in ("fell_share", "seconds_upright") else f"{row[c]:.1f}"
            for c in cols
            if c in row
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(E.NO_EVALUATOR)


if __name__ == "__main__":
    main()
