"""drawer_open speed and scores: env steps/s against the bare MuJoCo step, SAC updates/s, and every model
of a pipeline run beside its baseline.

All timings in one process, interleaved over --repeats rounds (the machine is shared; ratios measured
side by side are what to read), torch with one thread:

  mujoco bare     mujoco.mj_step x 5 (Meta-World's frame_skip) on the same model: the physics alone
  metaworld raw   SawyerDrawerOpenEnvV3.step (its own obs and reward), random actions
  wrapper state   physworld's DrawerOpenEnv, state observations (reward components, skill signal)
  wrapper pixels  the same with rendered 64 x 64 RGB observations (mujoco.Renderer, EGL)
  + segmentation  pixels plus the segmentation render of each frame (what the data build does)
  SAC updates/s   one gradient update of the multi-objective SAC (critic, actor, alpha, polyak) at
                  batch 256, hidden 256; beside SB3 SAC's `train(gradient_steps=...)` on its own buffer

    MUJOCO_GL=egl python bench/bench_robot.py [--steps 600] [--repeats 3] [--updates 200] [--run-dir DIR]

--run-dir: a finished pipeline run (physworld pipeline run ...): its evaluation/report.md, every
model's score beside its baseline, is printed after the timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")


def time_env(step_fn, reset_fn, steps: int) -> float:
    reset_fn()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
    t0 = time.perf_counter()
    for i in range(steps):
        if step_fn(actions[i]):
            reset_fn()
    return steps / (time.perf_counter() - t0)


def env_rates(steps: int, repeats: int) -> dict[str, float]:
    import mujoco
    from metaworld.envs.sawyer_drawer_open_v3 import SawyerDrawerOpenEnvV3

    from physworld.worlds.drawer_open import EnvConfig, make_env

    state_env = make_env(EnvConfig(obs_mode="state", max_steps=150))
    pixel_env = make_env(EnvConfig(obs_mode="pixels", image_size=64, max_steps=150))
    raw = SawyerDrawerOpenEnvV3()
    raw._partially_observable, raw._set_task_called, raw._freeze_rand_vec = False, True, False
    raw.max_path_length = 10**9
    model, data = state_env.model, state_env.data

    def bare_step(a):
        data.ctrl[:] = [a[3], -a[3]]
        for _ in range(5):
            mujoco.mj_step(model, data)
        return False

    def wrapped(env):
        def step(a):
            _, _, te, tr, _ = env.step(a)
            return te or tr

        return step

    def seg_step(a):
        _, _, te, tr, _ = pixel_env.step(a)
        pixel_env.segmentation()
        return te or tr

    cases = {
        "mujoco bare": (bare_step, lambda: state_env.reset(seed=0)),
        "metaworld raw": (lambda a: raw.step(a)[3], raw.reset),
        "wrapper state": (wrapped(state_env), lambda: state_env.reset(seed=0)),
        "wrapper pixels 64x64": (wrapped(pixel_env), lambda: pixel_env.reset(seed=0)),
        "pixels + segmentation": (seg_step, lambda: pixel_env.reset(seed=0)),
    }
    rates = {k: [] for k in cases}
    for _ in range(repeats):
        for name, (step, reset) in cases.items():
            n = steps if "pixel" not in name else max(steps // 4, 50)
            rates[name].append(time_env(step, reset, n))
    state_env.close()
    pixel_env.close()
    return {k: statistics.median(v) for k, v in rates.items()}


def sac_rates(updates: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    from physworld.recipes.sac import Networks, weights_vector
    from physworld.worlds.drawer_open import RewardWeights, make_env

    torch.set_num_threads(1)
    from physworld.models.sac import SACNetConfig

    cfg = SACNetConfig(hidden=256)
    nets = Networks(cfg, 0.1)
    opts = [
        torch.optim.Adam(nets.actor.parameters(), 3e-4),
        torch.optim.Adam(nets.critic.parameters(), 3e-4),
        torch.optim.Adam([nets.log_alpha], 3e-4),
    ]
    w = weights_vector(RewardWeights())
    g = torch.Generator().manual_seed(0)
    b = 256
    obs, act, rew = torch.randn(b, 39), torch.rand(b, 4) * 2 - 1, torch.randn(b, 4)
    skill = torch.randint(0, 3, (b,))

    def update():
        with torch.no_grad():
            na, nlp, _ = nets.actor.sample(obs, skill, g)
            qn = nets.critic_target(obs, na)
            qn = qn[(qn @ w).argmin(0), torch.arange(b)]
            target = rew + 0.99 * qn
        q = nets.critic(obs, act)
        loss = F.mse_loss(q, target.expand_as(q))
        opts[1].zero_grad()
        loss.backward()
        opts[1].step()
        nets.critic.requires_grad_(False)
        a, lp, _ = nets.actor.sample(obs, skill, g)
        al = (0.1 * lp - (nets.critic(obs, a) @ w).min(0).values).mean()
        opts[0].zero_grad()
        al.backward()
        nets.critic.requires_grad_(True)
        opts[0].step()
        alpha_loss = -(nets.log_alpha * (lp.detach() - 4)).mean()
        opts[2].zero_grad()
        alpha_loss.backward()
        opts[2].step()
        with torch.no_grad():
            for p, tp in zip(nets.critic.parameters(), nets.critic_target.parameters(), strict=True):
                tp.lerp_(p, 0.005)

    for _ in range(10):
        update()
    t0 = time.perf_counter()
    for _ in range(updates):
        update()
    ours = updates / (time.perf_counter() - t0)

    from stable_baselines3 import SAC

    env = make_env()
    model = SAC(
        "MlpPolicy",
        env,
        batch_size=b,
        learning_starts=0,
        buffer_size=10_000,
        device="cpu",
        seed=0,
        policy_kwargs={"net_arch": [256, 256]},
    )
    model.learn(total_timesteps=300, progress_bar=False)  # fills the buffer and initialises the logger
    t0 = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=b)
    sb3 = updates / (time.perf_counter() - t0)
    env.close()
    return {
        "multi-objective SAC (ours, 3 skill heads, 4 objectives)": ours,
        "SB3 SAC (single objective)": sb3,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps", type=int, default=600, help="env steps per timing (pixel cases: a quarter)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="a finished pipeline run to print the scores of"
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    print(
        f"# bench_robot: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"MUJOCO_GL={os.environ['MUJOCO_GL']}, torch threads 1, median of {args.repeats}"
    )
    rates = env_rates(args.steps, args.repeats)
    base = rates["mujoco bare"]
    print("\n| env step | steps/s | vs bare MuJoCo |\n|---|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {r:,.0f} | {r / base:.3g} |")
    sac = sac_rates(args.updates)
    print("\n| SAC, batch 256, hidden 256 | updates/s |\n|---|---|")
    for name, r in sac.items():
        print(f"| {name} | {r:,.1f} |")
    if args.run_dir is not None:
        report = args.run_dir / "evaluation" / "report.md"
        if not report.is_file():
            raise SystemExit(f"{report}: not found; finish the pipeline run first")
        print()
        print(report.read_text())


if __name__ == "__main__":
    main()
