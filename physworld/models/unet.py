"""U-Net segmenter for rendered robot frames, trained with focal + dice loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    num_classes: int = 3
    width: int = 16
    depth: int = 3  # number of 2x downsamplings
    focal_gamma: float = 2.0
    dice_weight: float = 1.0


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.GroupNorm(4, c_out),
        nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GroupNorm(4, c_out),
        nn.SiLU(),
    )


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        widths = [cfg.width * 2**i for i in range(cfg.depth + 1)]
        self.down = nn.ModuleList([_double_conv(3, widths[0])])
        self.down.extend(_double_conv(widths[i], widths[i + 1]) for i in range(cfg.depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(cfg.depth))
        )
        self.merge = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in reversed(range(cfg.depth)))
        self.out = nn.Conv2d(widths[0], cfg.num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images [B, 3, H, W] in [0, 1] (H, W divisible by 2**depth) -> logits [B, classes, H, W]
        x = images * 2 - 1
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], 1))
        return self.out(x)

    def loss(self, images: torch.Tensor, masks: torch.Tensor) -> dict:
        # masks [B, H, W] int64 class ids
        logits = self(images)
        focal = focal_loss(logits, masks, self.cfg.focal_gamma)
        dice = dice_loss(logits, masks)
        return {"loss": focal + self.cfg.dice_weight * dice, "focal": focal, "dice": dice}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Multi-class focal loss: cross-entropy down-weighted by (1 - p_true)**gamma, so the many easy
    background pixels stop dominating."""
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)  # [B, H, W]
    return (-(1 - logp.exp()).pow(gamma) * logp).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice, averaged over classes (each class counts equally, however few its pixels)."""
    probs = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    return 1 - ((2 * inter + eps) / (total + eps)).mean()
