"""`physworld quickstart`: the whole flow in minutes on a laptop, with honest numbers at the end.

    generate (seen types for training; every type, other seeds, for evaluation)
      -> train the PhysicsExpert (configs/physics_expert/quickstart.yaml)
      -> evaluate it beside constant-position, constant-velocity and ballistic baselines and the
         simulator's chaos floor, on seen and held-out types separately
      -> an HTML report and a headline table

Every stage resumes: rerunning the command after an interruption skips what is done.
"""

from __future__ import annotations

import time
from pathlib import Path

from physworld.data.generate import GenerateConfig, default_workers, generate

FAMILY = "physics-expert"  # an entry of physworld/evaluation/families.py: trained, then evaluated
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "physics_expert" / "quickstart.yaml"
TRAIN_SCENES_PER_TYPE = 8
VAL_SCENES_PER_TYPE = 2
FRAMES = 120


def quickstart(output_dir, seed: int = 0, progress: bool = True) -> int:
    from physworld.evaluation.evaluate import evaluate
    from physworld.evaluation.families import recipe_module
    from physworld.evaluation.report import headline_table, write_report

    if not CONFIG.exists():
        raise FileNotFoundError(
            f"{CONFIG}: the quickstart preset is missing; run from a checkout installed with "
            "`pip install -e .` (the presets live in the repository's configs/)"
        )
    out = Path(output_dir)
    t0 = time.perf_counter()
    workers = default_workers()
    train_dir, val_dir = out / "data" / "train", out / "data" / "val"
    data_reused = all((d / "manifest.json").exists() for d in (train_dir, val_dir))
    generate(
        GenerateConfig(
            scenario_types=("seen",),
            num_scenes_per_type=TRAIN_SCENES_PER_TYPE,
            seed=seed,
            frames_per_scene=FRAMES,
        ),
        train_dir,
        num_workers=workers,
        progress=progress,
    )
    generate(
        GenerateConfig(
            scenario_types=("all",),
            num_scenes_per_type=VAL_SCENES_PER_TYPE,
            seed=seed + 1_000_003,
            frames_per_scene=FRAMES,
        ),
        val_dir,
        num_workers=workers,
        progress=progress,
    )
    t_data = time.perf_counter()
    summary = recipe_module(FAMILY).main(
        str(CONFIG),
        [
            f"data.train_dir={train_dir}",
            f"data.val_dir={val_dir}",
            f"train.output_dir={out / 'model'}",
            f"train.seed={seed}",
        ],
        progress=progress,
    )
    t_train = time.perf_counter()
    checkpoint = out / "model" / "checkpoints" / "best.safetensors"
    metrics = evaluate(
        checkpoint,
        val_dir,
        out / "eval",
        model_name=FAMILY,
        context_frames=10,
        rollout_frames=20,
        label="PhysicsExpert (quickstart)",
        progress=progress,
    )
    report = write_report([out / "eval"], out / "report.html", title="physworld quickstart")
    t_end = time.perf_counter()
    print()
    print(headline_table(metrics))
    print()
    if data_reused:
        print(f"data: reused the datasets in {out / 'data'}; delete them to generate again")
    else:
        print(f"data: generated in {t_data - t0:.0f} s -> {out / 'data'}")
    if summary.get("reused"):
        print(
            f"training: reused the finished run in {out / 'model'} ({summary['steps']} steps); "
            "delete it to retrain"
        )
    else:
        print(f"training: {t_train - t_data:.0f} s ({summary['steps']} steps) -> {out / 'model'}")
    print(f"evaluation: {t_end - t_train:.0f} s; total {t_end - t0:.0f} s")
    print(f"report: {report}")
    return 0
