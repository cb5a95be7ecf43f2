"""The Visual Expert: a short clip in, per object its state, physical parameters and masks out.

Object-centric in the DETR / MaskFormer way, shared across frames:

    frames [B, T, 3, H, W] in [0, 1]
      -> a small CNN per frame (with two coordinate channels)     pixel features [B*T, D, h, w]
      -> K learned object queries (slots), the same K for every frame; each decoder layer:
           cross-attention of frame t's K queries to frame t's h*w tokens,
           self-attention among the K queries of a frame (objects explain each other away),
           attention of each slot across the T frames (so slot k stays one object through the clip)
      -> per (slot, frame) embedding e [B, T, K, D]
         mask_logits = <mask_embed(e), pixel embedding>           [B, T, K, h, w]   (h = H / 2**mask_downsample;
                                                                   pixel embeddings from the full-resolution stem)
         the mask's centroid (a spatial softmax of its logits), area and centroid velocity are
         appended to e, so position and velocity can be read off the mask a slot draws (a strong
         prior for a tiny model: bodies here are a few pixels wide)
         state = state_head(...) in world units                   [B, K, T, S]
      -> per slot, averaged over frames: params [B, K, 3] and exist_logit [B, K]

State layout S: 2D (S = 6) x, y, angle, vx, vy, angular velocity in px, rad, px/s, rad/s, as the
dataset (worlds/engine.py STATE_FIELDS); 3D (S = 13) x, y, z, qx, qy, qz, qw, vx, vy, vz, wx, wy, wz in
m, m/s, rad/s (worlds/bullet.py STATE_FIELDS_3D). The angle is predicted as (cos, sin) and returned as
atan2 in (-pi, pi] (the dataset's angle is cumulative, so compare it wrapped); the quaternion is
returned normalised. Params: log mass relative to the clip (log m minus the mean of log m over the
clip's dynamic bodies), friction, restitution (2D: pymunk's elasticity; 3D: what PyBullet is given).

Outputs are in world units: the model holds the training set's mean and std of each state field and
parameter as buffers (set by the recipe, saved in the checkpoint), and predicts normalised values.

Matching (`hungarian_match`): a clip's ground-truth bodies that are visible in at least one frame are
assigned one slot each by scipy's linear_sum_assignment on a cost of mask dice, normalised position
error and existence; unassigned slots should say "no object" (exist_logit < 0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

RECIPE = "visual-expert"  # the `recipe` in a Visual Expert checkpoint's metadata
STATE_FIELDS_2D = ("x", "y", "angle", "vx", "vy", "angular_velocity")
STATE_FIELDS_3D = ("x", "y", "z", "qx", "qy", "qz", "qw", "vx", "vy", "vz", "wx", "wy", "wz")
PARAM_FIELDS = ("log_mass_rel", "friction", "restitution")


@dataclass
class VisualExpertConfig:
    dims: int = 2  # 2 (pymunk clips, S = 6) or 3 (PyBullet clips, S = 13)
    image_size: int = 32  # square clips of this many pixels (the clip view's resolution)
    frames: int = 8  # frames per clip the model reads
    fps: float = 12.0  # the clip frame rate it was trained at (velocities depend on it)
    slots: int = 8  # object queries K: the most objects one clip can hold
    channels: int = 32  # CNN width
    downsample: int = (
        2  # stride-2 convolutions before the slots attend: tokens are image_size / 2**downsample wide
    )
    dim: int = 64  # token / slot width D
    heads: int = 4
    decoder_layers: int = 2
    dropout: float = 0.0
    mask_downsample: int = 0  # masks are image_size / 2**mask_downsample wide (0: full resolution)
    position_frequencies: int = 6  # sine/cosine position features of tokens and mask pixels (pi .. pi * 2**5)


def state_fields(dims: int) -> tuple[str, ...]:
    return STATE_FIELDS_2D if dims == 2 else STATE_FIELDS_3D


def state_size(dims: int) -> int:
    return len(state_fields(dims))


def position_slice(dims: int) -> slice:
    return slice(0, dims)


def velocity_slice(dims: int) -> slice:
    return slice(3, 5) if dims == 2 else slice(7, 10)


def check_config(cfg: VisualExpertConfig) -> None:
    """ValueError naming the field for a config the model cannot be built from."""
    if cfg.dims not in (2, 3):
        raise ValueError(f"model.dims must be 2 or 3, got {cfg.dims}")
    for name, least in (("frames", 1), ("slots", 1), ("channels", 1), ("heads", 1), ("decoder_layers", 1)):
        if getattr(cfg, name) < least:
            raise ValueError(f"model.{name} must be at least {least}, got {getattr(cfg, name)}")
    if cfg.downsample < 0 or cfg.image_size % (2**cfg.downsample):
        raise ValueError(
            f"model.image_size {cfg.image_size} must be divisible by 2**model.downsample ({2**cfg.downsample})"
        )
    if not 0 <= cfg.mask_downsample <= cfg.downsample:
        raise ValueError(f"model.mask_downsample must be in [0, model.downsample], got {cfg.mask_downsample}")
    if cfg.dim < 1 or cfg.dim % cfg.heads:
        raise ValueError(f"model.dim {cfg.dim} must be a positive multiple of model.heads {cfg.heads}")
    if cfg.position_frequencies < 1:
        raise ValueError(f"model.position_frequencies must be at least 1, got {cfg.position_frequencies}")
    if not cfg.fps > 0:
        raise ValueError(f"model.fps must be positive, got {cfg.fps}")
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"model.dropout must be in [0, 1), got {cfg.dropout}")


def _coords(h: int, w: int, device=None) -> torch.Tensor:
    """Pixel-centre coordinates in [0, 1]: [2, h, w] (column, row)."""
    rows = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    cols = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    return torch.stack([cols[None, :].expand(h, w), rows[:, None].expand(h, w)])


def mask_geometry(mask_logits: torch.Tensor) -> torch.Tensor:
    """What a mask says about where its object is: [B, T, K, h, w] logits -> [B, T, K, 5] = centroid
    (column, row in [-0.5, 0.5]) as a spatial softmax of the logits (a sigmoid-weighted mean would be
    pulled to the image centre by thousands of background pixels), area (mean sigmoid), and the
    centroid's velocity per frame x 10 (central differences inside, one-sided at the ends)."""
    b, t, k, h, w = mask_logits.shape
    coords = _coords(h, w, mask_logits.device)  # [2, h, w]
    flat = mask_logits.flatten(3)  # [B, T, K, h*w]
    centroid = torch.einsum("btkp,cp->btkc", torch.softmax(flat, -1), coords.flatten(1))  # [B, T, K, 2]
    area = torch.sigmoid(flat).mean(-1, keepdim=True)
    if t > 1:
        diff = centroid[:, 1:] - centroid[:, :-1]
        vel = 0.5 * (torch.cat([diff[:, :1], diff], 1) + torch.cat([diff, diff[:, -1:]], 1))
    else:
        vel = torch.zeros_like(centroid)
    return torch.cat([centroid - 0.5, area, vel * 10.0], -1)


def _fourier(coords: torch.Tensor, frequencies: int) -> torch.Tensor:
    """[2, h, w] coordinates in [0, 1] -> [4 * frequencies, h, w] sines and cosines at pi * 2**i. A dot
    product of these with a query can peak at one place (a linear function of the coordinates cannot),
    which is what a slot needs to pick out a body a few pixels wide."""
    f = math.pi * 2.0 ** torch.arange(frequencies, device=coords.device, dtype=coords.dtype)  # [F]
    angles = coords[:, None] * f[None, :, None, None]  # [2, F, h, w]
    return torch.cat([angles.sin(), angles.cos()], 0).flatten(0, 1)


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm_cross = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_time = nn.LayerNorm(dim)
        self.time_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, q: torch.Tensor, tokens: torch.Tensor, b: int, t: int) -> torch.Tensor:
        # q [B*T, K, D], tokens [B*T, h*w, D]
        x = self.norm_cross(q)
        q = q + self.cross(x, tokens, tokens, need_weights=False)[0]
        x = self.norm_self(q)
        q = q + self.self_attn(x, x, x, need_weights=False)[0]
        k, d = q.shape[1], q.shape[2]
        qt = q.reshape(b, t, k, d).transpose(1, 2).reshape(b * k, t, d)  # [B*K, T, D]
        x = self.norm_time(qt)
        qt = qt + self.time_attn(x, x, x, need_weights=False)[0]
        q = qt.reshape(b, k, t, d).transpose(1, 2).reshape(b * t, k, d)
        return q + self.mlp(self.norm_mlp(q))


class VisualExpert(nn.Module):
    def __init__(self, config: VisualExpertConfig):
        super().__init__()
        check_config(config)
        self.config = cfg = config
        s = state_size(cfg.dims)
        c, d = cfg.channels, cfg.dim
        self.stem = nn.Sequential(nn.Conv2d(3 + 2, c, 3, padding=1), nn.GELU())  # full resolution
        layers = []
        for _ in range(cfg.downsample):
            layers += [nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GroupNorm(1, c), nn.GELU()]
        layers += [nn.Conv2d(c, d, 3, padding=1)]
        self.cnn = nn.Sequential(*layers)
        # Pixel embeddings the slots' mask embeddings are compared with: the stem's features (pooled to
        # the mask size) plus the token features upsampled, so masks are as sharp as the stem.
        self.pixel_embed = nn.Conv2d(c, d, 1)
        self.token_pos = nn.Linear(4 * cfg.position_frequencies, d)  # tokens know where they are
        self.pixel_pos = nn.Linear(4 * cfg.position_frequencies, d)
        self.token_norm = nn.LayerNorm(d)
        self.slot_queries = nn.Parameter(torch.randn(cfg.slots, d) * 0.5)
        self.time_embed = nn.Parameter(torch.randn(cfg.frames, d) * 0.02)
        self.layers = nn.ModuleList(
            DecoderLayer(d, cfg.heads, cfg.dropout) for _ in range(cfg.decoder_layers)
        )
        self.out_norm = nn.LayerNorm(d)
        self.mask_embed = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        geom = 5  # soft centroid (2), area, centroid velocity (2)
        # 2D raw outputs: x, y, cos, sin, vx, vy, w (7); 3D: position, quaternion, v, w (13)
        self.raw_size = 7 if cfg.dims == 2 else 13
        self.state_head = nn.Sequential(nn.Linear(d + geom, d), nn.GELU(), nn.Linear(d, self.raw_size))
        self.state_skip = nn.Linear(geom, self.raw_size)  # position and velocity straight from the mask
        with torch.no_grad():  # the MLP starts as a small correction to the readout (see fit_readout)
            self.state_head[-1].weight.mul_(0.1)
            self.state_head[-1].bias.zero_()
        self.param_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, len(PARAM_FIELDS)))
        self.exist_head = nn.Linear(d, 1)
        # Normalisation of targets in world units (the recipe sets them from the training clips).
        self.register_buffer("state_mean", torch.zeros(s))
        self.register_buffer("state_std", torch.ones(s))
        self.register_buffer("param_mean", torch.zeros(len(PARAM_FIELDS)))
        self.register_buffer("param_std", torch.ones(len(PARAM_FIELDS)))

    @property
    def mask_size(self) -> int:
        return self.config.image_size // 2**self.config.mask_downsample

    def set_normalisation(self, state_mean, state_std, param_mean, param_std) -> None:
        """Set the world-unit statistics (any field whose std is not positive keeps std 1)."""
        for name, value in (
            ("state_mean", state_mean),
            ("state_std", state_std),
            ("param_mean", param_mean),
            ("param_std", param_std),
        ):
            v = torch.as_tensor(np.asarray(value, dtype=np.float32))
            if name.endswith("std"):
                v = torch.where(v > 1e-8, v, torch.ones_like(v))
            getattr(self, name).copy_(v)

    def forward(self, frames: torch.Tensor) -> dict:
        cfg = self.config
        b, t, _, hh, ww = frames.shape  # [B, T, 3, H, W]
        x = frames.reshape(b * t, 3, hh, ww)
        coords_in = _coords(hh, ww, frames.device).expand(b * t, 2, hh, ww)
        stem = self.stem(torch.cat([x, coords_in], 1))  # [B*T, C, H, W]
        feat = self.cnn(stem)  # [B*T, D, h, w]
        _, d, h, w = feat.shape
        coords = _coords(h, w, frames.device)  # [2, h, w]
        token_pos = self.token_pos(_fourier(coords, cfg.position_frequencies).flatten(1).t())  # [h*w, D]
        tokens = feat.flatten(2).transpose(1, 2) + token_pos  # [B*T, h*w, D]
        tokens = self.token_norm(tokens)

        q = (self.slot_queries[None, None] + self.time_embed[:t, None]).expand(b, t, -1, -1)
        q = q.reshape(b * t, cfg.slots, d)  # [B*T, K, D]
        for layer in self.layers:
            q = layer(q, tokens, b, t)
        e = self.out_norm(q)  # [B*T, K, D]

        m = self.mask_size
        if m != hh:
            stem = F.avg_pool2d(stem, hh // m)
        pixel_pos = self.pixel_pos(
            _fourier(_coords(m, m, frames.device), cfg.position_frequencies).flatten(1).t()
        )
        pixels = self.pixel_embed(stem) + F.interpolate(feat, size=(m, m), mode="nearest")  # [B*T, D, m, m]
        pixels = pixels + pixel_pos.t().reshape(1, d, m, m)
        mask_logits = torch.einsum("nkd,ndp->nkp", self.mask_embed(e), pixels.flatten(2)) / math.sqrt(d)
        h = w = m
        mask_logits = mask_logits.reshape(b, t, cfg.slots, h, w)  # [B, T, K, h, w]

        geom = mask_geometry(mask_logits)  # [B, T, K, 5]
        e = e.reshape(b, t, cfg.slots, d)
        raw = self.state_head(torch.cat([e, geom], -1)) + self.state_skip(geom)  # [B, T, K, raw]
        state = self._to_world(raw).transpose(1, 2)  # [B, K, T, S]

        pooled = e.mean(1)  # [B, K, D]
        params = self.param_head(pooled) * self.param_std + self.param_mean  # [B, K, 3]
        exist_logit = self.exist_head(pooled).squeeze(-1)  # [B, K]
        return {
            "state": state,
            "params": params,
            "exist_logit": exist_logit,
            "mask_logits": mask_logits,
            "state_normalised": self.normalise_state(state),  # [B, K, T, S], for losses
        }

    def _to_world(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw head outputs -> states in world units ([..., raw] -> [..., S])."""
        mean, std = self.state_mean, self.state_std
        if self.config.dims == 2:
            xy = raw[..., 0:2] * std[0:2] + mean[0:2]
            angle = torch.atan2(raw[..., 3], raw[..., 2] + 1e-6)[..., None]
            rest = raw[..., 4:7] * std[3:6] + mean[3:6]
            return torch.cat([xy, angle, rest], -1)
        pos = raw[..., 0:3] * std[0:3] + mean[0:3]
        quat = F.normalize(raw[..., 3:7] + torch.tensor([0.0, 0.0, 0.0, 1e-3], device=raw.device), dim=-1)
        rest = raw[..., 7:13] * std[7:13] + mean[7:13]
        return torch.cat([pos, quat, rest], -1)

    def normalise_state(self, state: torch.Tensor) -> torch.Tensor:
        """World-unit states [..., S] -> normalised (angle and quaternion fields left as they are)."""
        z = (state - self.state_mean) / self.state_std
        keep = torch.zeros(state.shape[-1], dtype=torch.bool, device=state.device)
        if self.config.dims == 2:
            keep[2] = True
        else:
            keep[3:7] = True
        return torch.where(keep, state, z)

    def raw_targets(self, state: torch.Tensor) -> torch.Tensor:
        """World-unit states [..., S] -> what the state heads output ([..., raw]): the inverse of _to_world."""
        z = (state - self.state_mean) / self.state_std
        if self.config.dims == 2:
            angle = state[..., 2:3]
            return torch.cat([z[..., 0:2], torch.cos(angle), torch.sin(angle), z[..., 3:6]], -1)
        return torch.cat([z[..., 0:3], state[..., 3:7], z[..., 7:13]], -1)

    @torch.no_grad()
    def fit_readout(self, masks: list, states: list) -> None:
        """Start the state readout where a mask tracker would be: least squares from the geometry of the
        TRUE masks (mask_geometry) to the true states, over windows of training data. masks: per window
        float [T, N, h, w] at the mask size; states: per window [T, N, S] in world units. The readout then
        reads states off the model's own masks from the first step; training moves it from there."""
        feats, targets = [], []
        for m, st in zip(masks, states, strict=True):
            shown = m.flatten(2).sum(-1) > 0  # [T, N]
            keep = shown.all(0)  # bodies visible in every frame of the window: their velocity is honest
            if not keep.any():
                continue
            logits = (m[:, keep] * 2 - 1) * 20.0  # the true mask as logits
            g = mask_geometry(logits[None])[0]  # [T, M, 5]
            feats.append(g.reshape(-1, 5))
            targets.append(self.raw_targets(torch.as_tensor(st)[:, keep].float()).reshape(-1, self.raw_size))
        if not feats:
            return
        x = torch.cat(feats).double()
        x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)  # [P, 6]
        y = torch.cat(targets).double()  # [P, raw]
        ridge = 1e-3 * torch.eye(6, dtype=x.dtype)
        coef = torch.linalg.solve(x.T @ x + ridge, x.T @ y)  # [6, raw]
        self.state_skip.weight.copy_(coef[:5].T.float())
        self.state_skip.bias.copy_(coef[5].float())


# ---------------------------------------------------------------- targets and matching


def masks_from_segmentation(segmentation: torch.Tensor, num_bodies: int, size: int) -> torch.Tensor:
    """Instance segmentation [T, H, W] (0 background, i + 1 body i) -> per-body coverage in [0, 1] at
    the model's mask size: float [T, N, size, size] (area pooling, so small bodies stay visible)."""
    seg = segmentation.long()
    t, hh, ww = seg.shape
    ids = torch.arange(1, num_bodies + 1, device=seg.device)
    onehot = (seg[:, None] == ids[None, :, None, None]).float()  # [T, N, H, W]
    if hh == size:
        return onehot
    return F.adaptive_avg_pool2d(onehot, size)


@torch.no_grad()
def hungarian_match(
    outputs: dict,
    clip_states: list,
    clip_masks: list,
    present: list | None = None,
    state_std: torch.Tensor | None = None,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One slot per ground-truth body of each clip (scipy linear_sum_assignment).

    outputs: the model's dict (batch B). clip_states: per clip float [T, N_b, S] in world units;
    clip_masks: per clip float [T, N_b, h, w] at the model's mask size (masks_from_segmentation);
    present: per clip bool [N_b], the bodies to match (default: visible in at least one frame).
    Cost = w_mask * (1 - dice over the clip's frames) + w_pos * mean |position error| / state_std
    + w_exist * (1 - existence probability).
    Returns per clip (slot indices, body indices), both int64 [M_b], M_b = min(K, bodies present)."""
    from scipy.optimize import linear_sum_assignment

    w_mask, w_pos, w_exist = weights
    # One copy to CPU for the whole batch (scipy matches there; per-clip copies from a GPU would each sync).
    pred_masks = torch.sigmoid(outputs["mask_logits"].detach().float()).cpu()  # [B, T, K, h, w]
    pred_state = outputs["state"].detach().float().cpu()  # [B, K, T, S]
    exist = torch.sigmoid(outputs["exist_logit"].detach().float()).cpu()  # [B, K]
    b, _, k = pred_masks.shape[:3]
    dims = 2 if pred_state.shape[-1] == 6 else 3
    pos = position_slice(dims)
    std = torch.ones(dims) if state_std is None else state_std[pos].float().cpu()
    result = []
    for i in range(b):
        gt_masks = clip_masks[i].float().to(pred_masks.device)  # [T, N, h, w]
        n = gt_masks.shape[1]
        keep = gt_masks.flatten(2).sum(-1).sum(0) > 0 if present is None else torch.as_tensor(present[i])
        bodies = torch.nonzero(keep.cpu(), as_tuple=False).flatten()
        if n == 0 or len(bodies) == 0:
            result.append((torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
            continue
        pm = pred_masks[i].flatten(2).transpose(0, 1).cpu()  # [K, T, h*w]
        gm = gt_masks[:, bodies].flatten(2).transpose(0, 1).cpu()  # [M, T, h*w]
        inter = torch.einsum("ktp,mtp->kmt", pm, gm)
        denom = pm.sum(-1)[:, None, :] + gm.sum(-1)[None, :, :]  # [K, M, T]
        dice = (2 * inter + 1.0) / (denom + 1.0)
        visible = (gm.sum(-1) > 0).float()  # [M, T]: frames where the body shows
        dice = (dice * visible[None]).sum(-1) / visible.sum(-1).clamp(min=1)[None]
        gs = torch.as_tensor(clip_states[i]).float()[:, bodies][..., pos]  # [T, M, dims]
        ps = pred_state[i][..., pos].cpu()  # [K, T, dims]
        perr = ((ps[:, None] - gs.transpose(0, 1)[None]).abs() / std).mean((-1, -2))  # [K, M]
        cost = w_mask * (1 - dice) + w_pos * perr + w_exist * (1 - exist[i].cpu())[:, None]
        cost = torch.nan_to_num(cost, nan=1e6, posinf=1e6).numpy()
        rows, cols = linear_sum_assignment(cost)
        result.append(
            (torch.as_tensor(rows, dtype=torch.long), bodies[torch.as_tensor(cols, dtype=torch.long)])
        )
    return result


# ---------------------------------------------------------------- loading


class VisualExpertLoadError(ValueError):
    """A checkpoint that is not a Visual Expert's; the message names the file and the fix."""


def load_visual_expert(checkpoint=None, config: VisualExpertConfig | None = None):
    """(model in eval mode, info). checkpoint None: a randomly initialised model from `config`
    (default VisualExpertConfig()); a .safetensors written by `physworld train visual-expert` loads it.
    info: config (dict), dims, image_size, frames, fps, slots, state_fields, param_fields and the
    training run's metadata (train_scenario_types, param_mean ...) where the checkpoint holds them."""
    from physworld.training.checkpoint import load_checkpoint, read_metadata

    extra: dict = {}
    if checkpoint is None:
        cfg = config or VisualExpertConfig()
        model = VisualExpert(cfg)
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise VisualExpertLoadError(f"{path}: no such checkpoint file; pass a visual-expert .safetensors")
        extra = read_metadata(path).get("extra") or {}
        recipe = extra.get("recipe")
        if recipe != RECIPE:
            raise VisualExpertLoadError(
                f"{path}: a checkpoint of {recipe or 'an unknown recipe'!s}, not of {RECIPE}; pass a checkpoint "
                f"written by `physworld train {RECIPE}`"
            )
        cfg = VisualExpertConfig(**extra["model_config"])
        model = VisualExpert(cfg)
        model.load_state_dict(load_checkpoint(path).model_state_dict())
    model.eval()
    info = {
        "config": asdict(cfg),
        "dims": cfg.dims,
        "image_size": cfg.image_size,
        "frames": cfg.frames,
        "fps": cfg.fps,
        "slots": cfg.slots,
        "mask_size": model.mask_size,
        "state_fields": list(state_fields(cfg.dims)),
        "param_fields": list(PARAM_FIELDS),
        **{k: v for k, v in extra.items() if k not in ("model_config", "train_state")},
    }
    return model, info
