"""Training throughput on one process against two (torchrun, DDP over gloo), same global batch.

Why: `torchrun --nproc_per_node N -m physworld.recipes.<recipe>` splits every global batch over N
processes (physworld/training/distributed.py). Whether that pays depends on the cores: each process
computes half the batch but all of them wait for the gradient all-reduce every step. This measures it
for the PhysicsExpert quickstart preset (hidden 64, 3 message-passing steps, global batch 16) on a small
generated dataset, one torch thread per process.

Runs alternate (1, 2, 1, 2, ...) so machine-wide drift hits both alike; each run trains `--steps`
optimizer steps and the throughput is the median of the logged windows/s (every process's windows,
from the second log on, so start-up is left out).

    python bench/bench_ddp.py [--steps 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from physworld.data import windows  # noqa: E402
from physworld.data.generate import GenerateConfig, generate  # noqa: E402
from physworld.training.metrics import read_metrics  # noqa: E402


def run(data: Path, out: Path, nproc: int, steps: int) -> float:
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    command = [
        sys.executable,
        *launch,
        "-m",
        "physworld.recipes.physics_expert",
        "--config",
        str(ROOT / "configs" / "physics_expert" / "quickstart.yaml"),
        "--quiet",
        f"data.train_dir={data}",
        "data.val_dir=null",
        f"train.output_dir={out}",
        f"train.max_steps={steps}",
        "optim.warmup_steps=2",
        "train.log_every=5",
        f"train.save_every={steps}",
        f"train.eval_every={steps}",
        "train.tensorboard=false",
        "train.threads=1",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    rates = [m["windows_per_s"] for m in read_metrics(out / "metrics.jsonl") if "windows_per_s" in m]
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(
            GenerateConfig(
                scenario_types=("pendulum", "billiards", "projectile"),
                num_scenes_per_type=4,
                frames_per_scene=60,
            ),
            data,
            progress=False,
        )
        windows.prepare(data, progress=False)
        rates: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.repeats):
            for nproc in (1, 2):
                rates[nproc].append(run(data, Path(tmp) / f"run{r}_{nproc}", nproc, args.steps))
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    result = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "steps": args.steps,
        "windows_per_s_1_process": rates[1],
        "windows_per_s_2_processes": rates[2],
        "speedup_2_vs_1": two / one,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
