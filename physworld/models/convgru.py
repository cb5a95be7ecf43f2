"""ConvGRU forward dynamics in a frozen encoder's feature space: (features_t, action_t) -> features_{t+1}.

The action is broadcast over the feature map as extra channels; a convolutional GRU cell carries a hidden
map across steps; a 1 x 1 convolution reads the next features out of it as a residual on the current ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class ConvGRUConfig:
    feature_channels: int = 64  # the encoder's spatial map
    hidden_channels: int = 64
    action_dim: int = 4
    kernel_size: int = 3
    smoothness_weight: float = 0.01


class ConvGRUCell(nn.Module):
    def __init__(self, in_channels: int, hidden: int, k: int):
        super().__init__()
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, k, padding=k // 2)
        self.candidate = nn.Conv2d(in_channels + hidden, hidden, k, padding=k // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        # x [B, C_in, h, w], h [B, H, h, w] -> new h [B, H, h, w]
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * n


class ConvGRUDynamics(nn.Module):
    def __init__(self, cfg: ConvGRUConfig):
        super().__init__()
        self.cfg = cfg
        self.cell = ConvGRUCell(cfg.feature_channels + cfg.action_dim, cfg.hidden_channels, cfg.kernel_size)
        self.readout = nn.Conv2d(cfg.hidden_channels, cfg.feature_channels, 1)
        # zero readout: an untrained model predicts "no change", i.e. starts exactly at the copy-last
        # baseline (features change by <1% of their variance per step) and learns the change from there
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)

    def init_hidden(self, features: torch.Tensor) -> torch.Tensor:
        b, _, h, w = features.shape
        return features.new_zeros(b, self.cfg.hidden_channels, h, w)

    def step(self, features: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor):
        # features [B, C, h, w], action [B, A], hidden [B, H, h, w] -> next features, new hidden
        a = action[:, :, None, None].expand(-1, -1, *features.shape[2:])
        hidden = self.cell(torch.cat([features, a], 1), hidden)
        return features + self.readout(hidden), hidden

    def rollout(self, features0: torch.Tensor, actions: torch.Tensor):
        """Open loop: features0 [B, C, h, w], actions [B, K, A] -> predicted features [B, K, C, h, w] and the
        hidden maps [B, K, H, h, w]; each step reads its own previous prediction."""
        hidden = self.init_hidden(features0)
        f, preds, hiddens = features0, [], []
        for k in range(actions.shape[1]):
            f, hidden = self.step(f, actions[:, k], hidden)
            preds.append(f)
            hiddens.append(hidden)
        return torch.stack(preds, 1), torch.stack(hiddens, 1)

    def loss(self, features: torch.Tensor, actions: torch.Tensor) -> dict:
        # features [B, K + 1, C, h, w] (true), actions [B, K, A]: K-step open-loop prediction error plus the
        # smoothness term (mean squared change of the hidden map between steps)
        preds, hiddens = self.rollout(features[:, 0], actions)
        prediction = (preds - features[:, 1:]).pow(2).mean()
        smooth = (
            (hiddens[:, 1:] - hiddens[:, :-1]).pow(2).mean() if hiddens.shape[1] > 1 else preds.new_zeros(())
        )
        return {
            "loss": prediction + self.cfg.smoothness_weight * smooth,
            "prediction": prediction,
            "smoothness": smooth,
        }
