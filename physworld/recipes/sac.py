"""Recipe: multi-objective SAC with per-skill actor heads on drawer_open (states), CleanRL-style, and the
single-objective Stable-Baselines3 SAC baseline trained with the same budget.

    physworld pipeline run configs/pipeline/drawer_open.yaml --only sac     (needs data if prefilling)

Why our own loop for the main agent and SB3 for the baseline: the per-skill heads (reach, grasp, pull,
chosen by worlds.drawer_open.skill_of) and the per-objective critics do not fit SB3's policy classes
without subclassing most of them, while an off-the-shelf SB3 SAC is exactly what a baseline should be.

The loop, top to bottom:
  1. env (state observations, reward weights from the config), networks: SkillActor, VectorCritic and
     its target copy, log alpha; three Adam optimizers
  2. optionally prefill the replay buffer with the data step's episodes (expert, noisy, random: their
     reward components are stored, so any weights apply); the SB3 baseline gets the same prefill
  3. each env step: act (uniform random for `learning_starts` steps), store (obs, skill, action, reward
     components, next obs, next skill, terminated); after `learning_starts`, per step:
       critic: target_c = r_c + gamma (1 - done) Qtarg_c(s', a'), with the entropy bonus as a 4th
               objective (-alpha log pi(a'|s')); the twin whose weighted sum is lower gives the target
       actor:  maximise w . min-twin Q(s, pi(s)) - alpha log pi; alpha tuned to the target entropy
       polyak update of the target critics
  4. checkpoints (networks, optimizers, RNG, replay buffer) at the first episode end after every
     `checkpoint_every` env steps, so a killed run resumes with the same episode seeds and buffer
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from physworld.data.episodes import REWARD_COMPONENTS, load_all
from physworld.fileio import atomic_write, atomic_write_json
from physworld.models.sac import SACNetConfig, SkillActor, VectorCritic
from physworld.training.checkpoint import CheckpointManager, load_checkpoint, restore, save_checkpoint
from physworld.training.loop_utils import NonFiniteGuard, progress_bar, seed_everything
from physworld.training.metrics import MetricLogger
from physworld.worlds.drawer_open import EnvConfig, RewardWeights, make_env, skill_of

POLICY_FILE = "policy.safetensors"
SB3_FILE = "sb3_sac_policy.safetensors"
TIMINGS_FILE = "timings.json"
TRAIN_SEED_BASE = 10_000_000  # training episode seeds; evaluation uses another range


@dataclass
class SACRecipeConfig:
    net: SACNetConfig = field(default_factory=SACNetConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    total_steps: int = 20000
    learning_starts: int = 1000
    buffer_size: int = 200000
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 0.1
    prefill_from_data: bool = True
    checkpoint_every: int = 2000
    sb3_baseline: bool = True  # train SB3 SAC on the task reward alone with the same budget
    seed: int = 0


class Replay:
    """A fixed-size ring of transitions in numpy arrays; saved and loaded whole with safetensors."""

    def __init__(self, size: int, obs_dim: int, action_dim: int, objectives: int):
        self.arrays = {
            "obs": np.zeros((size, obs_dim), np.float32),
            "next_obs": np.zeros((size, obs_dim), np.float32),
            "action": np.zeros((size, action_dim), np.float32),
            "reward": np.zeros((size, objectives), np.float32),
            "done": np.zeros((size,), np.float32),
        }
        self.size, self.pos, self.full = size, 0, False

    def add(self, obs, action, reward, next_obs, done):
        a = self.arrays
        a["obs"][self.pos], a["action"][self.pos], a["reward"][self.pos] = obs, action, reward
        a["next_obs"][self.pos], a["done"][self.pos] = next_obs, float(done)
        self.pos = (self.pos + 1) % self.size
        self.full = self.full or self.pos == 0

    def __len__(self):
        return self.size if self.full else self.pos

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(len(self), (n,), generator=generator).numpy()
        return {k: torch.from_numpy(v[idx]) for k, v in self.arrays.items()}

    def save(self, path):
        from safetensors.numpy import save_file

        meta = {"pos": str(self.pos), "full": str(int(self.full))}
        atomic_write(path, lambda tmp: save_file(self.arrays, tmp, metadata=meta))

    def load(self, path):
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
            for k in self.arrays:
                self.arrays[k] = f.get_tensor(k)
        self.pos, self.full = int(meta["pos"]), bool(int(meta["full"]))


def demo_transitions(data_dir):
    """(obs, action, reward components [T, 3], next_obs, terminated) of every stored episode."""
    for ep in load_all(data_dir, keys=("states", "actions", "rewards", "success")):
        states, steps = ep["states"], len(ep["actions"])
        for t in range(steps):
            terminated = bool(ep["success"][t])  # the data build terminates on success too
            yield states[t], ep["actions"][t], ep["rewards"][t], states[t + 1], terminated


def weights_vector(w: RewardWeights) -> torch.Tensor:
    return torch.tensor([w.task, w.efficiency, w.energy, 1.0])  # the 4th objective: the entropy bonus


class Networks(nn.Module):
    """Everything SAC learns, as one module so one checkpoint holds it."""

    def __init__(self, cfg: SACNetConfig, init_alpha: float):
        super().__init__()
        self.actor = SkillActor(cfg)
        self.critic = VectorCritic(cfg)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(float(np.log(init_alpha))))


def policy_fn(actor: SkillActor):
    """Deterministic action (tanh of the mean) for one state [39] -> action [4]."""

    @torch.no_grad()
    def act(state: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(state, dtype=torch.float32)[None]
        skill = torch.as_tensor(skill_of(state))[None]
        mean, _ = actor(obs, skill)
        return torch.tanh(mean)[0].numpy()

    return act


def run(cfg: SACRecipeConfig, data_dir, out_dir, progress: bool = True) -> dict:
    out = Path(out_dir)
    seed_everything(cfg.seed)
    if cfg.env.obs_mode != "state":
        raise ValueError(
            "sac.env.obs_mode must be 'state' (the agent reads states; pixels are the vision models' input)"
        )
    if cfg.learning_starts > cfg.total_steps:
        raise ValueError(
            f"sac.learning_starts ({cfg.learning_starts}) exceeds sac.total_steps ({cfg.total_steps})"
        )
    env = make_env(cfg.env)
    nets = Networks(cfg.net, cfg.init_alpha)
    actor_opt = torch.optim.Adam(nets.actor.parameters(), lr=cfg.actor_lr)
    critic_opt = torch.optim.Adam(nets.critic.parameters(), lr=cfg.critic_lr)
    alpha_opt = torch.optim.Adam([nets.log_alpha], lr=cfg.alpha_lr)
    target_entropy = -float(cfg.net.action_dim)
    weights = weights_vector(cfg.env.rewards)
    gen = torch.Generator().manual_seed(cfg.seed + 4)
    action_rng = np.random.default_rng([cfg.seed, 5])
    replay = Replay(cfg.buffer_size, cfg.net.obs_dim, cfg.net.action_dim, len(REWARD_COMPONENTS) + 1)
    ckpts = CheckpointManager(out / "checkpoints")
    step, episode, updates = 0, 0, 0
    episode_log: list[dict] = []
    if (latest := ckpts.latest_path()) is not None:
        meta = restore(load_checkpoint(latest), nets, actor_opt, extra_generators={"batches": gen})
        extra = meta["extra"]
        critic_opt.load_state_dict(extra["critic_optim"])
        alpha_opt.load_state_dict(extra["alpha_optim"])
        action_rng.bit_generator.state = json.loads(extra["action_rng"])
        step, episode, updates = meta["step"], extra["episode"], extra["updates"]
        episode_log = json.loads(extra["episode_log"])
        replay.load(out / "checkpoints" / f"replay_{step}.safetensors")
    elif cfg.prefill_from_data:
        for s, a, r, s2, d in demo_transitions(data_dir):
            replay.add(s, a, np.append(r, 0.0), s2, d)
    logger = MetricLogger(out, tensorboard=False, resume_step=step)
    guard = NonFiniteGuard()
    bar = progress_bar(cfg.total_steps, initial=step, desc="sac", disable=not progress)
    obs, _ = env.reset(seed=TRAIN_SEED_BASE + cfg.seed * 100_000 + episode)
    ep_return = np.zeros(len(REWARD_COMPONENTS))
    last_ckpt = step
    t_updates, session_updates = 0.0, 0
    while step < cfg.total_steps:
        if step < cfg.learning_starts:
            action = action_rng.uniform(-1, 1, cfg.net.action_dim).astype(np.float32)
        else:
            with torch.no_grad():
                o = torch.as_tensor(obs, dtype=torch.float32)[None]
                action = nets.actor.sample(o, torch.as_tensor(skill_of(obs))[None], gen)[0][0].numpy()
        next_obs, _, terminated, truncated, info = env.step(action)
        comps = np.array([info["reward_components"][k] for k in REWARD_COMPONENTS])
        replay.add(obs, action, np.append(comps, 0.0), next_obs, terminated)
        ep_return += comps
        obs = next_obs
        step += 1
        bar.update(1)

        if step >= cfg.learning_starts and len(replay) >= cfg.batch_size:
            t0 = time.perf_counter()
            b = replay.sample(cfg.batch_size, gen)
            skill, next_skill = (
                torch.from_numpy(skill_of(b["obs"].numpy())),
                torch.from_numpy(skill_of(b["next_obs"].numpy())),
            )
            alpha = nets.log_alpha.exp().detach()
            with torch.no_grad():
                next_action, next_logp, _ = nets.actor.sample(b["next_obs"], next_skill, gen)
                q_next = nets.critic_target(b["next_obs"], next_action)  # [2, B, 4]
                pick = (q_next @ weights).argmin(0)  # the twin with the lower weighted value, per sample
                q_next = q_next[pick, torch.arange(len(pick))]  # [B, 4]
                q_next[:, -1] = q_next[:, -1] - alpha * next_logp
                target = b["reward"] + cfg.gamma * (1 - b["done"])[:, None] * q_next
            q = nets.critic(b["obs"], b["action"])
            critic_loss = F.mse_loss(q, target.expand_as(q))
            critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            if guard.check(critic_loss, nets.critic):
                torch.nn.utils.clip_grad_norm_(nets.critic.parameters(), 10.0)
                critic_opt.step()

            nets.critic.requires_grad_(False)
            new_action, logp, _ = nets.actor.sample(b["obs"], skill, gen)
            q_pi = (nets.critic(b["obs"], new_action) @ weights).min(0).values
            actor_loss = (alpha * logp - q_pi).mean()
            actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            nets.critic.requires_grad_(True)
            if guard.check(actor_loss, nets.actor):
                actor_opt.step()
            alpha_loss = -(nets.log_alpha * (logp.detach() + target_entropy)).mean()
            alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            alpha_opt.step()
            with torch.no_grad():
                for p, tp in zip(nets.critic.parameters(), nets.critic_target.parameters(), strict=True):
                    tp.lerp_(p, cfg.tau)
            updates += 1
            session_updates += 1
            t_updates += time.perf_counter() - t0
            if updates % 100 == 0:
                q_mean = q.detach().mean(dim=(0, 1)).tolist()
                logger.log(
                    step,
                    critic_loss=float(critic_loss.detach()),
                    actor_loss=float(actor_loss.detach()),
                    alpha=float(alpha),
                    **{f"q_{k}": v for k, v in zip((*REWARD_COMPONENTS, "entropy"), q_mean, strict=True)},
                )

        if terminated or truncated:
            record = {
                "episode": episode,
                "step": step,
                "success": bool(info["success"]),
                **{f"return_{k}": float(v) for k, v in zip(REWARD_COMPONENTS, ep_return, strict=True)},
            }
            episode_log.append(record)
            logger.log(step, **{k: v for k, v in record.items() if k not in ("episode", "step")})
            episode += 1
            ep_return[:] = 0
            obs, _ = env.reset(seed=TRAIN_SEED_BASE + cfg.seed * 100_000 + episode)
            if step - last_ckpt >= cfg.checkpoint_every or step >= cfg.total_steps:
                replay.save(out / "checkpoints" / f"replay_{step}.safetensors")
                ckpts.save_latest(
                    nets,
                    actor_opt,
                    step=step,
                    config=cfg,
                    extra_generators={"batches": gen},
                    extra={
                        "critic_optim": critic_opt.state_dict(),
                        "alpha_optim": alpha_opt.state_dict(),
                        "action_rng": json.dumps(action_rng.bit_generator.state),
                        "episode": episode,
                        "updates": updates,
                        "episode_log": json.dumps(episode_log),
                    },
                )
                for old in (out / "checkpoints").glob("replay_*.safetensors"):
                    if old.name != f"replay_{step}.safetensors":
                        old.unlink()
                last_ckpt = step
    bar.close()
    logger.close()
    env.close()
    save_checkpoint(out / POLICY_FILE, nets.actor, rng=False, step=step, config=cfg, extra={"recipe": "sac"})
    recent = episode_log[-20:]
    summary = {
        "env_steps": step,
        "updates": updates,
        "train_episodes": len(episode_log),
        "train_success_last_20": float(np.mean([e["success"] for e in recent])) if recent else None,
        "alpha": float(nets.log_alpha.detach().exp()),
        "reward_weights": {
            "task": cfg.env.rewards.task,
            "efficiency": cfg.env.rewards.efficiency,
            "energy": cfg.env.rewards.energy,
        },
        "bad_steps": guard.bad_steps_total,
    }
    timings = {
        "updates_this_session": session_updates,
        "update_seconds": t_updates,
        "updates_per_second": session_updates / t_updates if t_updates else None,
    }
    if cfg.sb3_baseline:
        summary["sb3_baseline"], timings["sb3_baseline"] = train_sb3_baseline(cfg, data_dir, out, progress)
    atomic_write_json(out / "metrics.json", summary)
    atomic_write_json(out / TIMINGS_FILE, timings)  # apart: wall-clock numbers differ between identical runs
    return summary | {"timings": timings}


def sb3_env_config(cfg: SACRecipeConfig) -> EnvConfig:
    """The baseline's env: the same task with the single objective, the task reward."""
    env_cfg = copy.deepcopy(cfg.env)
    env_cfg.rewards = RewardWeights(task=1.0, efficiency=0.0, energy=0.0)
    return env_cfg


def train_sb3_baseline(cfg: SACRecipeConfig, data_dir, out: Path, progress: bool) -> tuple[dict, dict]:
    """SB3 SAC (MlpPolicy, its defaults but our batch size, buffer, gamma, tau, learning_starts) on the
    task reward alone, for `total_steps` env steps; its policy weights saved with safetensors (SB3's own
    .zip format pickles). Not resumable mid-run: a killed baseline restarts from step 0."""
    try:
        from stable_baselines3 import SAC
    except ImportError as e:
        raise ModuleNotFoundError(
            'the SB3 baseline needs stable-baselines3; pip install -e ".[robot]"'
        ) from e
    from safetensors.torch import save_file

    env = make_env(sb3_env_config(cfg))
    env.reset(seed=TRAIN_SEED_BASE + 50_000 + cfg.seed)
    model = SAC(
        "MlpPolicy",
        env,
        learning_rate=cfg.critic_lr,
        buffer_size=cfg.buffer_size,
        learning_starts=cfg.learning_starts,
        batch_size=cfg.batch_size,
        tau=cfg.tau,
        gamma=cfg.gamma,
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    if cfg.prefill_from_data:
        for s, a, r, s2, d in demo_transitions(data_dir):
            model.replay_buffer.add(s[None], s2[None], a[None], np.array([r[0]]), np.array([d]), [{}])
    t0 = time.perf_counter()
    model.learn(total_timesteps=cfg.total_steps, progress_bar=False)
    seconds = time.perf_counter() - t0
    env.close()
    state = {k: v.contiguous() for k, v in model.policy.state_dict().items()}
    atomic_write(
        out / SB3_FILE, lambda tmp: save_file(state, tmp, metadata={"total_steps": str(cfg.total_steps)})
    )
    return {"env_steps": cfg.total_steps, "objective": "task"}, {
        "seconds": seconds,
        "env_steps_per_second": cfg.total_steps / seconds,
    }


def load_policy(step_dir):
    """The trained multi-objective actor as a function state -> action."""
    from physworld.training.config import config_from_dict

    ckpt = load_checkpoint(Path(step_dir) / POLICY_FILE)
    cfg = config_from_dict(ckpt.meta["config"], SACRecipeConfig)
    actor = SkillActor(cfg.net)
    restore(ckpt, actor, rng=False)
    return policy_fn(actor.eval())


def load_sb3_policy(step_dir, cfg: SACRecipeConfig):
    """The SB3 baseline's deterministic policy, rebuilt from its safetensors weights."""
    from safetensors.torch import load_file
    from stable_baselines3 import SAC

    env = make_env(sb3_env_config(cfg))
    model = SAC("MlpPolicy", env, buffer_size=1, learning_starts=0, device="cpu", seed=cfg.seed)
    model.policy.load_state_dict(load_file(str(Path(step_dir) / SB3_FILE)))
    env.close()

    def act(state: np.ndarray) -> np.ndarray:
        return model.predict(state.astype(np.float64), deterministic=True)[0]

    return act
