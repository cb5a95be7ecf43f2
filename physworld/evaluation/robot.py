"""Evaluation of drawer_open policies and the robot pipeline's results table.

`evaluate_policy` runs a policy (state -> action) for N episodes on seeds no training episode used and
reports success rate, the return of each reward component, the energy spent, the economic value
(completions per unit time and effort) and the steps to success. `results_table` puts every model of the
pipeline beside its baseline, as markdown.
"""

from __future__ import annotations

import numpy as np

from physworld.data.episodes import REWARD_COMPONENTS
from physworld.worlds.drawer_open import EnvConfig, make_env

EVAL_SEED_BASE = 20_000_000  # training seeds are 10_000_000 + ..., data build seeds below 1e6 * seed + count


def evaluate_policy(
    act, env_cfg: EnvConfig, episodes: int, seed: int = 0, progress: bool = False, desc: str = "eval"
) -> dict:
    from tqdm.auto import tqdm

    env = make_env(env_cfg)
    successes, steps_to_success, economic, energy_per_step = [], [], [], []
    returns = {k: [] for k in REWARD_COMPONENTS}
    totals = []
    try:
        for i in tqdm(range(episodes), desc=desc, disable=not progress):
            state, _ = env.reset(seed=EVAL_SEED_BASE + seed * 100_000 + i)
            ep = dict.fromkeys(REWARD_COMPONENTS, 0.0)
            total, done, n, sq = 0.0, False, 0, 0.0
            while not done:
                action = np.asarray(act(state), dtype=np.float32)
                state, reward, terminated, truncated, info = env.step(action)
                done = terminated or truncated
                for k in REWARD_COMPONENTS:
                    ep[k] += info["reward_components"][k]
                total += reward
                sq += float(np.mean(np.square(np.clip(action, -1, 1))))
                n += 1
            succeeded = bool(info["success"]) or (env_cfg.terminate_on_success and terminated)
            successes.append(succeeded)
            if succeeded:
                steps_to_success.append(n)
            economic.append(info["economic_value"])
            energy_per_step.append(sq / n)
            totals.append(total)
            for k in REWARD_COMPONENTS:
                returns[k].append(ep[k])
    finally:
        env.close()
    return {
        "episodes": episodes,
        "success_rate": float(np.mean(successes)),
        "successes": int(np.sum(successes)),
        "mean_steps_to_success": float(np.mean(steps_to_success)) if steps_to_success else None,
        "mean_return": {k: float(np.mean(v)) for k, v in returns.items()},
        "mean_weighted_return": float(np.mean(totals)),
        "mean_action_sq_per_step": float(np.mean(energy_per_step)),
        "economic_value": float(np.mean(economic)),
    }


def random_policy(seed: int):
    rng = np.random.default_rng([seed, 7])
    return lambda state: rng.uniform(-1, 1, 4).astype(np.float32)


def _fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def results_table(results: dict) -> str:
    """Markdown: every model beside its baseline (the evaluation step's results.json)."""
    lines = ["## drawer_open pipeline results", ""]
    if "simclr" in results:
        s = results["simclr"]
        lines += [
            "### SimCLR backbone: linear probe R^2 on validation episodes (frozen features)",
            "",
            "| target | SimCLR | random encoder (baseline) |",
            "|---|---|---|",
        ]
        for name in s["probe"]:
            lines.append(
                f"| {name} | {_fmt(s['probe'][name]['r2_mean'])} | {_fmt(s['baseline_random_encoder_probe'][name]['r2_mean'])} |"
            )
        lines.append("")
    if "dynamics" in results:
        d = results["dynamics"]["val"]
        lines += [
            "### ConvGRU dynamics: k-step feature error / feature variance (validation)",
            "",
            "| k | ConvGRU | copy-last (baseline) |",
            "|---|---|---|",
        ]
        for k, (m, c) in enumerate(zip(d["model_relative"], d["copy_last_relative"], strict=True), start=1):
            lines.append(f"| {k} | {_fmt(m, 4)} | {_fmt(c, 4)} |")
        lines.append("")
    if "segmenter" in results:
        s = results["segmenter"]
        lines += [
            "### U-Net segmenter: per-class F1 / IoU (validation)",
            "",
            "| class | U-Net F1 | U-Net IoU | colour threshold F1 | colour threshold IoU |",
            "|---|---|---|---|---|",
        ]
        for c in s["val"]["f1"]:
            b = s["baseline_colour_threshold"]
            lines.append(
                f"| {c} | {_fmt(s['val']['f1'][c])} | {_fmt(s['val']['iou'][c])} | {_fmt(b['f1'][c])} | {_fmt(b['iou'][c])} |"
            )
        g = s["gate"]
        lines += [
            "",
            f"F1 gate {g['f1_gate']}: macro F1 (foreground) {_fmt(g['val_macro_f1_foreground'])} -> "
            f"{'passed: used downstream' if g['passed'] else 'NOT passed: not used downstream'}",
            "",
        ]
    if "policies" in results:
        lines += [
            "### Policies on drawer_open (evaluation seeds no training episode used)",
            "",
            "| policy | episodes | success | steps to success | task return | efficiency return | energy return | mean action^2 | economic value |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in results["policies"].items():
            m = r["mean_return"]
            lines.append(
                f"| {name} | {r['episodes']} | {_fmt(r['success_rate'], 2)} | {_fmt(r['mean_steps_to_success'], 1)} | "
                f"{_fmt(m['task'], 2)} | {_fmt(m['efficiency'], 3)} | {_fmt(m['energy'], 2)} | "
                f"{_fmt(r['mean_action_sq_per_step'])} | {_fmt(r['economic_value'])} |"
            )
        lines.append("")
        lines.append(
            "Task vs energy: a policy's task return against its energy return (more negative = more actuation)."
        )
        lines.append("")
    return "\n".join(lines)
