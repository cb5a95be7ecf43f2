"""Multi-objective SAC networks: a skill-routed actor with one head per skill, and twin critics that
predict one Q value per reward component (plus the entropy bonus), scalarised by the config's weights.

Keeping Q per component (task, efficiency, energy, entropy) instead of one scalar lets the report show
what the policy expects to earn from each objective, and lets the weights change the trade-off
without relabelling the replay buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass
class SACNetConfig:
    obs_dim: int = 39
    action_dim: int = 4
    hidden: int = 256
    num_skills: int = 3  # reach, grasp, pull
    num_objectives: int = 4  # task, efficiency, energy, entropy


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, o))


class SkillActor(nn.Module):
    """Shared trunk, then the head of the active skill: obs [B, D], skill [B] -> tanh-Gaussian action."""

    def __init__(self, cfg: SACNetConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = nn.Sequential(
            nn.Linear(cfg.obs_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU()
        )
        self.heads = nn.Linear(cfg.hidden, cfg.num_skills * 2 * cfg.action_dim)  # all heads in one matmul

    def forward(self, obs: torch.Tensor, skill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, a = obs.shape[0], self.cfg.action_dim
        out = self.heads(self.trunk(obs)).view(b, self.cfg.num_skills, 2 * a)
        out = out[torch.arange(b), skill]  # [B, 2A]: the head chosen by the skill signal
        mean, log_std = out.chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, obs, skill, generator: torch.Generator | None = None):
        # -> action [B, A] in (-1, 1), log_prob [B], deterministic action [B, A]
        mean, log_std = self(obs, skill)
        std = log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        pre = mean + std * noise
        action = torch.tanh(pre)
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * torch.log(torch.tensor(2 * torch.pi))).sum(-1)
        log_prob = log_prob - (2 * (torch.log(torch.tensor(2.0)) - pre - F.softplus(-2 * pre))).sum(-1)
        return action, log_prob, torch.tanh(mean)


class VectorCritic(nn.Module):
    """Twin Q networks, each (obs, action) -> one Q per objective: [2, B, num_objectives]."""

    def __init__(self, cfg: SACNetConfig):
        super().__init__()
        self.q = nn.ModuleList(
            _mlp(cfg.obs_dim + cfg.action_dim, cfg.hidden, cfg.num_objectives) for _ in range(2)
        )

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], -1)
        return torch.stack([q(x) for q in self.q])
