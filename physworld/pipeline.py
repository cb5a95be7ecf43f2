"""The drawer_open golden path: one config, six steps, each a recipe that also runs alone.

    physworld pipeline run configs/pipeline/drawer_open.yaml [--skip STEP] [--only STEP] [--dry-run] [key=value ...]

Steps, in order, with the steps whose outputs each reads:

    data        episodes (expert, noisy expert, random): frames, masks, states, actions, rewards;
                and their LeRobotDataset v3 export                               (reads nothing)
    simclr      SimCLR backbone, frozen; linear probe vs a random encoder        (data)
    dynamics    ConvGRU forward dynamics; k-step error vs copy-last              (data, simclr)
    segmenter   U-Net, focal + dice, F1 gate; vs a colour threshold              (data)
    sac         multi-objective SAC with per-skill heads, and the SB3 baseline   (data)
    evaluation  policies over N episodes; every model beside its baseline        (all of the above)

Each step owns `<out_dir>/<step>/`. A finished step leaves `step.json`: its fingerprint (sha256 of its
config section and of its inputs' output checksums) and the sha256 of every file it produced
(checkpoints/ aside). On the next run a step whose fingerprint is unchanged and whose files are intact is
not rerun; a step that was interrupted (`running.json` with the same fingerprint) resumes from its own
checkpoints; a step whose config or inputs changed starts over in an emptied directory. `success.json`
is written only when every step of the config is finished and current, with each step's checksums and
timings; any run that changes something removes the old one first.

Everything the user can get wrong (an unknown step, a skip that starves a later step, a missing
environment package, a bad config value) is found before anything is written, and reported in one line.

How this maps to DVC / Snakemake: each step is a stage (DVC `stages:` / a Snakemake `rule`) whose `deps`
/ `input` are the config section plus the named input steps' outputs, and whose `outs` / `output` are
the step directory; `step.json` plays the part of `dvc.lock` (hashes of what went in and came out),
`--dry-run` is `dvc status` / `snakemake -n`, `--only STEP` is `dvc repro STEP --single-item` /
`snakemake --until`, and the runner's resume-from-checkpoint is what neither tool does by itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from physworld.data.episodes import DataConfig
from physworld.fileio import atomic_write_json, sha256_file
from physworld.recipes.dynamics import DynamicsRecipeConfig
from physworld.recipes.sac import SACRecipeConfig
from physworld.recipes.segmenter import SegmenterRecipeConfig
from physworld.recipes.simclr import SimCLRRecipeConfig
from physworld.training.config import ConfigError, config_to_dict, load_config

STEPS = ("data", "simclr", "dynamics", "segmenter", "sac", "evaluation")
INPUTS = {
    "data": (),
    "simclr": ("data",),
    "dynamics": ("data", "simclr"),
    "segmenter": ("data",),
    "sac": ("data",),
    "evaluation": ("data", "simclr", "dynamics", "segmenter", "sac"),
}
NEEDS_ENV = {"data", "sac", "evaluation"}
RECORD, RUNNING, SUCCESS = "step.json", "running.json", "success.json"
FORMAT_VERSION = 1
POLICIES = ("multi_objective_sac", "sb3_sac", "expert", "random")


class PipelineError(ValueError):
    """A user mistake in the pipeline's config or flags: one line, exit status 2."""


@dataclass
class EvaluationConfig:
    episodes: int = 50
    policies: tuple[str, ...] = POLICIES
    seed: int = 0


@dataclass
class PipelineConfig:
    out_dir: str
    steps: tuple[str, ...] = STEPS
    torch_threads: int = 1
    lerobot_export: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    simclr: SimCLRRecipeConfig = field(default_factory=SimCLRRecipeConfig)
    dynamics: DynamicsRecipeConfig = field(default_factory=DynamicsRecipeConfig)
    segmenter: SegmenterRecipeConfig = field(default_factory=SegmenterRecipeConfig)
    sac: SACRecipeConfig = field(default_factory=SACRecipeConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def validate(self):
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise ValueError(f"steps: unknown step {unknown[0]!r}; the steps are {', '.join(STEPS)}")
        if len(set(self.steps)) != len(self.steps):
            raise ValueError("steps: a step is named twice")
        if self.torch_threads < 1:
            raise ValueError("torch_threads must be at least 1")
        if self.evaluation.episodes < 1:
            raise ValueError("evaluation.episodes must be at least 1")
        bad = [p for p in self.evaluation.policies if p not in POLICIES]
        if bad:
            raise ValueError(f"evaluation.policies: unknown policy {bad[0]!r}; use {', '.join(POLICIES)}")


def load_pipeline_config(path, overrides=()):
    try:
        return load_config(path, PipelineConfig, overrides)
    except FileNotFoundError as e:
        raise PipelineError(f"{path}: no such config file") from e
    except ConfigError as e:
        raise PipelineError(str(e)) from e


# ---------------------------------------------------------------- fingerprints and records


def _section(cfg, step: str) -> dict:
    section = {
        "config": config_to_dict(getattr(cfg, step))
        if step != "evaluation"
        else config_to_dict(cfg.evaluation)
    }
    if step == "data":
        section["lerobot_export"] = cfg.lerobot_export
    if step == "evaluation":  # the policies are rebuilt from these sections
        section["sac"] = config_to_dict(cfg.sac)
    return section


def _outputs_digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record["outputs"], sort_keys=True).encode()).hexdigest()


def fingerprint(cfg, step: str, records: dict) -> str:
    payload = {
        "format": FORMAT_VERSION,
        "step": step,
        "section": _section(cfg, step),
        "inputs": {i: _outputs_digest(records[i]) for i in INPUTS[step]},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _is_current(cfg, step: str, records: dict) -> bool:
    record = records[step]
    if record is None or any(records[i] is None for i in INPUTS[step]):
        return False
    return record["fingerprint"] == fingerprint(cfg, step, records)


def output_checksums(step_dir: Path) -> dict[str, str]:
    out = {}
    for path in sorted(step_dir.rglob("*")):
        rel = path.relative_to(step_dir)
        # checkpoints are the step's scratch, timings.json wall-clock numbers: neither is an output
        if (
            not path.is_file()
            or rel.parts[0] == "checkpoints"
            or rel.name in (RECORD, RUNNING, "timings.json")
            or rel.name.startswith(".")
        ):
            continue
        out[str(rel)] = sha256_file(path)
    return out


def read_record(step_dir: Path) -> dict | None:
    """The finished step's record if it exists and every output it lists is intact, else None."""
    path = step_dir / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for rel, digest in record.get("outputs", {}).items():
        f = step_dir / rel
        if not f.is_file() or sha256_file(f) != digest:
            return None
    return record


# ---------------------------------------------------------------- the plan


def plan(cfg, skip=(), only=()) -> list[tuple[str, str, str]]:
    """[(step, action, why)] in order; action is run / resume / current / skip. Raises PipelineError for
    an unknown step, or a step that would run without its inputs. Touches nothing."""
    for name in (*skip, *only):
        if name not in STEPS:
            raise PipelineError(f"unknown step {name!r}; the steps are {', '.join(STEPS)}")
    out = Path(cfg.out_dir)
    records = {s: read_record(out / s) for s in STEPS}
    result, will_run = [], set()
    for step in STEPS:
        if step not in cfg.steps:
            continue
        if step in skip or (only and step not in only):
            why = "--skip" if step in skip else "not in --only"
            result.append(
                (
                    step,
                    "skip",
                    why + (" (finished outputs present)" if records[step] else " (no finished outputs)"),
                )
            )
            continue
        for needed in INPUTS[step]:
            if needed not in will_run and records[needed] is None:
                reason = "skipped" if needed in cfg.steps else "not in the config's steps"
                raise PipelineError(
                    f"step {step!r} needs the outputs of {needed!r}, which is {reason} and has no finished outputs in "
                    f"{out / needed}; run it first (physworld pipeline run CONFIG --only {needed})"
                )
        upstream_runs = [i for i in INPUTS[step] if i in will_run]
        record = records[step]
        if upstream_runs:
            action, why = (
                "run",
                f"after {', '.join(upstream_runs)} (skipped then if its inputs come out unchanged)",
            )
        else:
            fp = fingerprint(cfg, step, records)
            running = _read_json(out / step / RUNNING)
            if record is not None and record["fingerprint"] == fp:
                action, why = "current", f"finished, inputs unchanged (fingerprint {fp[:12]})"
            elif running is not None and running.get("fingerprint") == fp:
                action, why = "resume", "interrupted run with the same inputs: resumes from its checkpoints"
            elif record is not None:
                action, why = "run", "config section or inputs changed since it finished"
            else:
                action, why = "run", "never finished"
        if action != "current":
            will_run.add(step)
        result.append((step, action, why))
    return result


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def check_packages(cfg, steps_to_run) -> None:
    from physworld.worlds.drawer_open import require_robot_packages

    if NEEDS_ENV & set(steps_to_run):
        try:
            require_robot_packages()
        except ModuleNotFoundError as e:
            raise PipelineError(str(e)) from None
    wants_sb3 = ("sac" in steps_to_run and cfg.sac.sb3_baseline) or (
        "evaluation" in steps_to_run and "sb3_sac" in cfg.evaluation.policies
    )
    if wants_sb3:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            raise PipelineError(
                'stable-baselines3 is not installed (the SB3 SAC baseline); pip install -e ".[robot]" or set sac.sb3_baseline=false'
            ) from None
    if "data" in steps_to_run and cfg.lerobot_export:
        for name in ("imageio", "imageio_ffmpeg"):
            try:
                __import__(name)
            except ImportError:
                raise PipelineError(
                    f'{name} is not installed (the LeRobot MP4 export); pip install -e ".[robot]"'
                ) from None


# ---------------------------------------------------------------- steps


def _run_step(cfg, step: str, out: Path, progress: bool) -> dict:
    step_dir = out / step
    if step == "data":
        from physworld.data.episodes import build_episodes, export_lerobot

        manifest = build_episodes(cfg.data, step_dir, progress=progress)
        if cfg.lerobot_export:
            export_lerobot(step_dir, step_dir / "lerobot")
        return {"episodes": len(manifest["episodes"])}
    if step == "simclr":
        from physworld.recipes import simclr

        return simclr.run(cfg.simclr, out / "data", step_dir, progress)
    if step == "dynamics":
        from physworld.recipes import dynamics

        return dynamics.run(cfg.dynamics, out / "data", out / "simclr", step_dir, progress)
    if step == "segmenter":
        from physworld.recipes import segmenter

        return segmenter.run(cfg.segmenter, out / "data", step_dir, progress)
    if step == "sac":
        from physworld.recipes import sac

        return sac.run(cfg.sac, out / "data", step_dir, progress)
    return run_evaluation(cfg, out, progress)


def run_evaluation(cfg, out: Path, progress: bool) -> dict:
    from physworld.evaluation.robot import evaluate_policy, random_policy, results_table
    from physworld.fileio import atomic_write_bytes
    from physworld.recipes import sac
    from physworld.recipes.segmenter import SegmenterGateError, load_segmenter
    from physworld.worlds.drawer_open import expert_policy

    results = {
        name: json.loads((out / name / "metrics.json").read_text())
        for name in ("simclr", "dynamics", "segmenter", "sac")
    }
    try:
        load_segmenter(out / "segmenter")
        results["segmenter"]["active_downstream"] = True
    except SegmenterGateError as e:
        results["segmenter"]["active_downstream"] = False
        results["segmenter"]["inactive_reason"] = str(e)
    makers = {
        "multi_objective_sac": lambda: sac.load_policy(out / "sac"),
        "sb3_sac": lambda: sac.load_sb3_policy(out / "sac", cfg.sac),
        "expert": expert_policy,
        "random": lambda: random_policy(cfg.evaluation.seed),
    }
    policies = {}
    for name in cfg.evaluation.policies:
        if name == "sb3_sac" and not cfg.sac.sb3_baseline:
            continue
        policies[name] = evaluate_policy(
            makers[name](),
            cfg.sac.env,
            cfg.evaluation.episodes,
            cfg.evaluation.seed,
            progress=progress,
            desc=f"eval {name}",
        )
    results["policies"] = policies
    step_dir = out / "evaluation"
    atomic_write_json(step_dir / "results.json", results)
    atomic_write_bytes(step_dir / "report.md", results_table(results).encode())
    return {"policies": {k: v["success_rate"] for k, v in policies.items()}}


def run(cfg, skip=(), only=(), dry_run: bool = False, progress: bool = True, echo=print) -> dict:
    """Run the pipeline; returns {"plan": ..., "timings": ..., "success": bool}."""
    import torch

    steps = plan(cfg, skip, only)
    to_run = [s for s, action, _ in steps if action in ("run", "resume")]
    check_packages(cfg, to_run)
    out = Path(cfg.out_dir)
    for step, action, why in steps:
        echo(f"{step:<11} {action:<8} {why}")
    if dry_run:
        echo("dry run: nothing was run or written")
        return {"plan": steps, "timings": {}, "success": False}
    torch.set_num_threads(cfg.torch_threads)
    if to_run:
        (out / SUCCESS).unlink(missing_ok=True)
    timings = {}
    records = {s: read_record(out / s) for s in STEPS}
    for step, action, _ in steps:
        if action in ("skip", "current"):
            continue
        fp = fingerprint(cfg, step, records)
        step_dir = out / step
        record = records[step] = read_record(step_dir)  # again: another process may have finished it
        if record is not None and record["fingerprint"] == fp:
            echo(f"{step:<11} current  finished meanwhile, or its inputs came out unchanged")
            continue
        running = _read_json(step_dir / RUNNING)
        if step_dir.exists() and not (running is not None and running.get("fingerprint") == fp):
            shutil.rmtree(step_dir)  # another config or other inputs: start clean
        atomic_write_json(step_dir / RUNNING, {"fingerprint": fp, "step": step})
        t0 = time.perf_counter()
        summary = _run_step(cfg, step, out, progress)
        seconds = time.perf_counter() - t0
        outputs = output_checksums(step_dir)
        records[step] = {
            "step": step,
            "fingerprint": fp,
            "outputs": outputs,
            "seconds": seconds,
            "summary": summary,
        }
        atomic_write_json(step_dir / RECORD, records[step])
        (step_dir / RUNNING).unlink(missing_ok=True)
        timings[step] = seconds
        echo(f"{step:<11} done     {seconds:.1f} s, {len(outputs)} files")
    records = {s: read_record(out / s) for s in STEPS}  # again: parallel --only runs may have finished some
    current = {s: r for s, r in records.items() if s in cfg.steps and _is_current(cfg, s, records)}
    success = len(current) == len(cfg.steps)
    if success:
        atomic_write_json(
            out / SUCCESS,
            {
                "pipeline": "drawer_open",
                "steps": {
                    s: {"outputs_sha256": _outputs_digest(r), "files": r["outputs"], "seconds": r["seconds"]}
                    for s, r in current.items()
                },
                "seconds_this_run": timings,
            },
        )
        echo(f"all {len(cfg.steps)} steps finished and current: {out / SUCCESS}")
    else:
        missing = [s for s in cfg.steps if s not in current]
        echo(f"success.json not written: not finished or not current: {', '.join(missing)}")
    return {"plan": steps, "timings": timings, "success": success}


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["run"], help="run the pipeline")
    parser.add_argument("config", help="pipeline YAML, e.g. configs/pipeline/drawer_open.yaml")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="STEP",
        help=f"leave a step out (one of {', '.join(STEPS)}); repeatable",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="STEP", help="run only these steps; repeatable"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would run and why; run and write nothing"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main_from_args(args, overrides=()) -> int:
    cfg = load_pipeline_config(args.config, overrides)
    result = run(cfg, skip=args.skip, only=args.only, dry_run=args.dry_run, progress=not args.quiet)
    return 0 if (result["success"] or args.dry_run or args.skip or args.only) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physworld.pipeline", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args, extra = parser.parse_known_args(argv)
    bad = [a for a in extra if a.startswith("-") or "=" not in a]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (overrides are key=value)")
    try:
        return main_from_args(args, extra)
    except (PipelineError, ModuleNotFoundError) as e:
        print(f"physworld pipeline: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
