"""`physworld sweep`: hyperparameter search over any registered recipe with Optuna.

Each trial is a `physworld train <recipe> --config C key=value ...` subprocess (so every recipe in
evaluation/families.py works unchanged) writing into <study-dir>/trials/trial_NNNN. While it runs, the
sweep reads the trial's metrics.jsonl and reports the metric at every evaluation step to Optuna, whose
median pruner stops trials that fall behind (the subprocess is ended); the objective is the best value
of the metric over the trial's evaluations (the one its best checkpoint holds). TPE picks the values.
The study lives in SQLite, <study-dir>/study.db: rerunning the same command resumes, running only
the trials still missing (a trial that was running when the sweep was killed is marked failed and
replaced). After every trial, results.csv, results.md and sweep.png (objective per trial, best so far)
are rewritten atomically.

The search space is the W&B sweep YAML the guides use (optionally under `sweep_config:`):

    method: bayes                       # bayes (TPE), random or grid
    metric: {name: val_loss, goal: minimize}
    parameters:
      optim.lr: {min: 0.0001, max: 0.01, distribution: log_uniform_values}
      model.hidden: {values: [16, 32, 64]}
      train.seed: {value: 0}

Parameter names are the recipe's override keys (section.key).
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from physworld.fileio import atomic_write, atomic_write_bytes

SWEEP_HINT = 'Optuna is not installed: pip install "physworld[sweep]"'
DISTRIBUTIONS = ("uniform", "int_uniform", "log_uniform_values", "log_uniform", "categorical", "constant")


class SweepError(ValueError):
    """A mistake in the sweep's input or a trial that cannot run: one line."""


# ---------------------------------------------------------------- the search space (W&B format)


def load_space(path) -> dict:
    """Read a W&B-format sweep YAML into {"method", "metric": {"name", "goal"}, "parameters": {key:
    {"kind": "categorical"|"float"|"int"|"fixed", ...}}}, checking every field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SweepError(f"--space {path}: unreadable ({type(e).__name__}: {e})") from None
    return parse_space(data, str(path))


def parse_space(data, source: str = "the space") -> dict:
    if isinstance(data, dict) and isinstance(data.get("sweep_config"), dict):
        data = data["sweep_config"]
    if not isinstance(data, dict) or not isinstance(data.get("parameters"), dict) or not data["parameters"]:
        raise SweepError(f"{source}: needs `parameters:` mapping override keys to {{values|min/max|value}}")
    method = data.get("method", "bayes")
    if method not in ("bayes", "random", "grid"):
        raise SweepError(f"{source}: method {method!r}: use bayes, random or grid")
    metric = data.get("metric") or {"name": "val_loss", "goal": "minimize"}
    if not isinstance(metric, dict) or metric.get("goal", "minimize") not in ("minimize", "maximize"):
        raise SweepError(f"{source}: metric must be {{name: ..., goal: minimize|maximize}}, got {metric!r}")
    metric = {"name": str(metric.get("name", "val_loss")), "goal": metric.get("goal", "minimize")}
    params = {key: _parse_param(key, spec, source) for key, spec in data["parameters"].items()}
    if method == "grid" and any(p["kind"] in ("float", "int") for p in params.values()):
        raise SweepError(f"{source}: method grid needs `values:` (or `value:`) for every parameter")
    return {"method": method, "metric": metric, "parameters": params}


def _parse_param(key: str, spec, source: str) -> dict:
    where = f"{source}: parameters.{key}"
    if not isinstance(spec, dict):
        raise SweepError(f"{where}: expected a mapping with values, min/max or value")
    if "value" in spec:
        return {"kind": "fixed", "value": spec["value"]}
    if "values" in spec:
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise SweepError(f"{where}.values: expected a non-empty list")
        return {"kind": "categorical", "values": spec["values"]}
    if "min" not in spec or "max" not in spec:
        raise SweepError(f"{where}: give values: [...], value: x, or min: and max:")
    lo, hi = spec["min"], spec["max"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)) or lo > hi:
        raise SweepError(f"{where}: min and max must be numbers with min <= max, got {lo!r}, {hi!r}")
    both_int = isinstance(lo, int) and isinstance(hi, int)
    dist = spec.get("distribution", "int_uniform" if both_int else "uniform")
    if dist == "int_uniform":
        return {"kind": "int", "low": int(lo), "high": int(hi)}
    if dist == "uniform":
        return {"kind": "float", "low": float(lo), "high": float(hi), "log": False}
    if dist == "log_uniform_values":
        if lo <= 0:
            raise SweepError(f"{where}: log_uniform_values needs min > 0")
        return {"kind": "float", "low": float(lo), "high": float(hi), "log": True}
    if dist == "log_uniform":  # W&B: min and max are natural-log exponents
        return {"kind": "float", "low": math.exp(lo), "high": math.exp(hi), "log": True}
    raise SweepError(
        f"{where}: distribution {dist!r} is not supported; use one of {', '.join(DISTRIBUTIONS[:4])}"
    )


def suggest(trial, params: dict) -> dict:
    """One value per parameter from an Optuna trial."""
    out = {}
    for key, p in params.items():
        if p["kind"] == "fixed":
            out[key] = p["value"]
        elif p["kind"] == "categorical":
            out[key] = trial.suggest_categorical(key, p["values"])
        elif p["kind"] == "int":
            out[key] = trial.suggest_int(key, p["low"], p["high"])
        else:
            out[key] = trial.suggest_float(key, p["low"], p["high"], log=p["log"])
    return out


def _override(key: str, value) -> str:
    return f"{key}={json.dumps(value) if isinstance(value, str | list | dict | bool) or value is None else value}"


# ---------------------------------------------------------------- one trial


def _metric_values(trial_dir: Path, name: str) -> list[tuple[int, float]]:
    from physworld.training.metrics import METRICS_FILE, read_metrics

    path = trial_dir / METRICS_FILE
    if not path.is_file():
        return []
    out = []
    for record in read_metrics(path):
        value = record.get(name)
        if isinstance(value, int | float) and "step" in record:
            out.append((int(record["step"]), float(value)))
    return out


def run_trial(trial, sweep: dict, poll_s: float = 0.5) -> float:
    """Train one trial in a subprocess, report its metric to Optuna as it is logged, prune it when
    Optuna says so; returns the objective."""
    import optuna

    values = suggest(trial, sweep["space"]["parameters"])
    trial_dir = Path(sweep["study_dir"]) / "trials" / f"trial_{trial.number:04d}"
    cmd = [
        sys.executable,
        "-m",
        "physworld.cli",
        "train",
        sweep["recipe"],
        "--quiet",
        "--config",
        sweep["config"],
    ]
    cmd += [
        *sweep["overrides"],
        *(_override(k, v) for k, v in values.items()),
        f"train.output_dir={trial_dir}",
    ]
    trial.set_user_attr("output_dir", str(trial_dir))
    trial_dir.mkdir(parents=True, exist_ok=True)
    name, goal = sweep["space"]["metric"]["name"], sweep["space"]["metric"]["goal"]
    reported: set[int] = set()
    with (trial_dir / "sweep_trial.log").open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                finished = proc.poll() is not None
                for step, value in _metric_values(trial_dir, name):
                    if step not in reported:
                        reported.add(step)
                        trial.report(value, step)
                        if not finished and trial.should_prune():
                            raise optuna.TrialPruned(f"{name}={value:.6g} at step {step}")
                if finished:
                    break
                time.sleep(poll_s)
        finally:
            if proc.poll() is None:  # pruned or interrupted: end this trial's training process
                proc.kill()
                proc.wait(timeout=30)
    if proc.returncode != 0:
        tail = (trial_dir / "sweep_trial.log").read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise SweepError(f"trial {trial.number} failed (exit {proc.returncode}): {tail[0]}")
    found = [v for _, v in _metric_values(trial_dir, name) if math.isfinite(v)]
    if not found:
        raise SweepError(
            f"trial {trial.number} logged no {name!r} to {trial_dir}/metrics.jsonl: give the recipe a "
            "validation set (e.g. data.val_dir=...) or name a metric it logs in the space's metric.name"
        )
    return min(found) if goal == "minimize" else max(found)


# ---------------------------------------------------------------- the study


def _definition(recipe: str, config: str, space: dict, overrides: list[str]) -> dict:
    return {
        "recipe": recipe,
        "config": str(Path(config).resolve()),
        "space": space,
        "overrides": list(overrides),
    }


def sweep(
    recipe: str,
    config,
    space_path,
    trials: int,
    study_dir,
    overrides=(),
    parallel: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Run (or resume) the study until it holds `trials` finished trials; returns a summary."""
    try:
        import optuna
    except ModuleNotFoundError as e:
        raise SweepError(SWEEP_HINT) from e
    from optuna.trial import TrialState

    from physworld.evaluation.families import train_recipes

    if recipe not in train_recipes():
        raise SweepError(f"--recipe {recipe!r}: one of {', '.join(train_recipes())}")
    if trials < 1 or parallel < 1:
        raise SweepError(f"--trials and --parallel must be at least 1, got {trials} and {parallel}")
    if not Path(config).is_file():
        raise SweepError(f"--config {config}: no such file")
    space = load_space(space_path)
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    definition = _definition(recipe, config, space, list(overrides))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir.resolve() / 'study.db'}")
    sampler = {
        "bayes": lambda: optuna.samplers.TPESampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "grid": lambda: optuna.samplers.GridSampler(
            {k: p["values"] for k, p in space["parameters"].items() if p["kind"] == "categorical"}, seed=seed
        ),
    }[space["method"]]()
    study = optuna.create_study(
        study_name="physworld-sweep",
        storage=storage,
        sampler=sampler,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        direction=space["metric"]["goal"],
        load_if_exists=True,
    )
    old = study.user_attrs.get("definition")
    if old is None:
        study.set_user_attr("definition", json.loads(json.dumps(definition)))
    elif old != json.loads(json.dumps(definition)):
        diff = [k for k in definition if old.get(k) != json.loads(json.dumps(definition)).get(k)]
        raise SweepError(
            f"{study_dir} holds another sweep (differs in {', '.join(diff)}); rerun it with the same "
            "arguments to resume, or pass another --study-dir"
        )
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # killed with the last run
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    remaining = trials - len(study.get_trials(deepcopy=False, states=finished))
    settings = dict(definition, study_dir=str(study_dir), config=str(config))
    fatal: list[BaseException] = []
    lock = threading.Lock()

    def objective(trial):
        try:
            return run_trial(trial, settings)
        except SweepError as e:
            if trial.number == 0 or not study.get_trials(deepcopy=False, states=finished):
                fatal.append(e)  # no trial ever worked: a setup mistake, not a bad point in the space
                study.stop()
            raise

    def after_trial(study, trial):
        with lock:
            write_results(study, study_dir, space["metric"])
        if len(study.get_trials(deepcopy=False, states=finished)) >= trials:
            study.stop()

    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            n_jobs=parallel,
            callbacks=[after_trial],
            catch=(SweepError,),
            show_progress_bar=progress,
        )
    if fatal:
        raise fatal[0]
    write_results(study, study_dir, space["metric"])
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = (
        min(done, key=lambda t: t.value if space["metric"]["goal"] == "minimize" else -t.value)
        if done
        else None
    )
    return {
        "study_dir": str(study_dir),
        "trials": len(study.trials),
        "complete": len(done),
        "pruned": len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))),
        "best_value": best.value if best else None,
        "best_params": best.params if best else None,
        "best_output_dir": best.user_attrs.get("output_dir") if best else None,
    }


def write_results(study, study_dir: Path, metric: dict) -> None:
    """results.csv, results.md and sweep.png in the study directory, from every trial so far."""
    rows = []
    best = None
    sign = 1 if metric["goal"] == "minimize" else -1
    for t in sorted(study.trials, key=lambda t: t.number):
        complete = t.state.name == "COMPLETE"
        if complete and (best is None or sign * t.value < sign * best):
            best = t.value
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                metric["name"]: t.value,
                "best_so_far": best if complete else None,
                "seconds": round(seconds, 1) if seconds is not None else None,
                **{f"param:{k}": v for k, v in sorted(t.params.items())},
                "output_dir": t.user_attrs.get("output_dir", ""),
            }
        )
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(study_dir / "results.csv", buf.getvalue().encode())

    def cell(v):
        return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)

    md = [
        f"# Sweep: {metric['name']} ({metric['goal']})",
        "",
        "| " + " | ".join(c for c in columns if c != "output_dir") + " |",
        "|" + "---|" * (len(columns) - 1),
    ]
    md += ["| " + " | ".join(cell(r.get(c)) for c in columns if c != "output_dir") + " |" for r in rows]
    atomic_write_bytes(study_dir / "results.md", ("\n".join(md) + "\n").encode())
    _plot(rows, metric, study_dir / "sweep.png")


def _plot(rows: list[dict], metric: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = metric["name"]
    done = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned" and r[name] is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.scatter([r["trial"] for r in done], [r[name] for r in done], label="trial", color="#1f5fbf")
    if pruned:  # at the value they were stopped on
        ax.scatter(
            [r["trial"] for r in pruned],
            [r[name] for r in pruned],
            marker="x",
            color="#888888",
            label="pruned",
        )
    xs = [r["trial"] for r in done]
    ax.step(xs, [r["best_so_far"] for r in done], where="post", label="best so far", color="#d62728")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric['name']} ({metric['goal']})")
    ax.legend(loc="best")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
