"""SimCLR vision backbone for rendered robot frames: a small CNN encoder, a projection head, NT-Xent.

The encoder's spatial map (after three stride-2 convolutions) is what the ConvGRU dynamics model reads;
its pooled vector is what the linear probe and the contrastive head read. After training it is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class SimCLRConfig:
    image_size: int = 64
    width: int = 32  # channels of the first convolution; doubled once
    embed_dim: int = 128
    proj_dim: int = 64
    temperature: float = 0.2
    reconstruction_weight: float = 0.0  # > 0 adds the optional reconstruction head (a 16 x 16 image)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())


class Encoder(nn.Module):
    def __init__(self, cfg: SimCLRConfig):
        super().__init__()
        w = cfg.width
        self.spatial = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 2 * w))  # /8
        self.head = nn.Sequential(_block(2 * w, cfg.embed_dim), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_channels = 2 * w

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        # images [B, 3, H, W] in [0, 1] -> [B, 2w, H/8, W/8]
        return self.spatial(images * 2 - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images [B, 3, H, W] -> embedding [B, embed_dim]
        return self.head(self.feature_map(images))


class SimCLR(nn.Module):
    def __init__(self, cfg: SimCLRConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.projector = nn.Sequential(
            nn.Linear(cfg.embed_dim, cfg.embed_dim), nn.ReLU(), nn.Linear(cfg.embed_dim, cfg.proj_dim)
        )
        self.decoder = None
        if cfg.reconstruction_weight > 0:
            # embedding -> a 16 x 16 RGB thumbnail of the (unaugmented) frame
            self.decoder = nn.Sequential(
                nn.Linear(cfg.embed_dim, 256), nn.SiLU(), nn.Linear(256, 3 * 16 * 16)
            )

    def loss(self, view_a: torch.Tensor, view_b: torch.Tensor, clean: torch.Tensor | None = None) -> dict:
        # view_a, view_b [B, 3, H, W]: two augmentations of the same B frames
        h_a, h_b = self.encoder(view_a), self.encoder(view_b)
        z = F.normalize(torch.cat([self.projector(h_a), self.projector(h_b)]), dim=1)  # [2B, P]
        out = {"nt_xent": nt_xent(z, self.cfg.temperature)}
        total = out["nt_xent"]
        if self.decoder is not None and clean is not None:
            target = F.interpolate(clean, size=(16, 16), mode="area").flatten(1)  # [B, 768]
            recon = self.decoder(h_a)
            out["reconstruction"] = F.mse_loss(recon, target)
            total = total + self.cfg.reconstruction_weight * out["reconstruction"]
        out["loss"] = total
        return out


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2B unit vectors z [2B, P], where rows i and i + B are the positive pair and the other
    2B - 2 rows of the batch are the negatives."""
    n = z.shape[0] // 2
    sim = z @ z.t() / temperature  # [2B, 2B]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, positives)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SimCLR-style augmentations for rendered frames [B, 3, H, W] in [0, 1]: random resized crop
    (scale 0.6-1, as a per-image affine grid), colour jitter (brightness, contrast, saturation) and
    Gaussian noise. No flips: left and right are the drawer's geometry."""
    b, _, h, w = images.shape
    g = generator

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(b, *shape, generator=g)

    scale = u(0.6, 1.0).sqrt()
    tx, ty = u(-1, 1) * (1 - scale), u(-1, 1) * (1 - scale)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * u(0.7, 1.3, 1, 1, 1) + mean * u(0.7, 1.3, 1, 1, 1)
    gray = out.mean(dim=1, keepdim=True)
    out = gray + (out - gray) * u(0.6, 1.4, 1, 1, 1)
    out = out + 0.02 * torch.randn(out.shape, generator=g)
    return out.clamp(0, 1)
