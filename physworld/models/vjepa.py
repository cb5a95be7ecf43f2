"""V-JEPA on transformers' V-JEPA 2 layers: a video encoder whose masked forward sees only context tokens.

The layers (3D patch embedding, RoPE attention blocks, predictor embeddings, mask tokens) are
transformers' `VJEPA2Encoder` / `VJEPA2Predictor`, built from a `VJEPA2Config` made out of
`VJEPAConfig`, so a physworld checkpoint and a `save_pretrained` directory of `VJEPA2Model` hold the
same weights under the same names. What is physworld's:

- the masked context forward. transformers' `VJEPA2Model` encodes the whole clip and only then picks the
  context tokens, so its "context" features have attended over the masked regions. Here the context
  encoder embeds the clip (a tubelet-local convolution: a token's embedding reads only its own pixels),
  keeps the context tokens, and runs every attention block over those alone, with RoPE positions taken
  from their ids.
- an optional block-causal attention mask in time (`causal`): a token at tubelet step t attends only to
  tokens at steps <= t, in the encoder and the predictor, so a latent never depends on the future.
- the 3D multi-block (tube) mask generator and the causal (future-steps) mask, seeded.

`load_video_encoder(checkpoint=None, config=None) -> (encoder, info)` is the entry point other code uses:
`encoder(frames [B, T, 3, H, W] in [0, 1]) -> tokens [B, N, D]`, N = (T / tubelet) * (H / patch) ** 2,
token order time-major (t, h, w), as transformers' `Conv3d(...).flatten(2)` gives.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

RECIPE_ID = "vjepa"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class VJEPAConfig:
    image_size: int = 16  # frames are resized to image_size x image_size (square, like VJEPA2's crop)
    frames: int = 4  # frames per clip seen in training (any multiple of tubelet works at inference)
    tubelet: int = 2  # frames per token in time
    patch: int = 4  # pixels per token side
    dim: int = 32  # encoder width
    depth: int = 2  # encoder blocks
    heads: int = 4
    mlp_ratio: float = 4.0
    pred_dim: int = 32  # predictor width
    pred_depth: int = 2
    pred_heads: int = 4
    causal: bool = False  # block-causal attention in time (encoder and predictor)
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN  # the normalisation VJEPA2's processor uses
    pixel_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        problems = []
        if self.image_size % self.patch:
            problems.append(f"image_size {self.image_size} is not a multiple of patch {self.patch}")
        if self.frames % self.tubelet:
            problems.append(f"frames {self.frames} is not a multiple of tubelet {self.tubelet}")
        if self.dim % self.heads:
            problems.append(f"dim {self.dim} is not a multiple of heads {self.heads}")
        if self.pred_dim % self.pred_heads:
            problems.append(f"pred_dim {self.pred_dim} is not a multiple of pred_heads {self.pred_heads}")
        if problems:
            raise ValueError("VJEPAConfig: " + "; ".join(problems))
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens per clip along (time, height, width)."""
        side = self.image_size // self.patch
        return (self.frames // self.tubelet, side, side)


def hf_config(cfg: VJEPAConfig):
    """The transformers VJEPA2Config with the same layers."""
    from transformers import VJEPA2Config

    return VJEPA2Config(
        patch_size=cfg.patch,
        crop_size=cfg.image_size,
        frames_per_clip=cfg.frames,
        tubelet_size=cfg.tubelet,
        hidden_size=cfg.dim,
        num_attention_heads=cfg.heads,
        num_hidden_layers=cfg.depth,
        mlp_ratio=cfg.mlp_ratio,
        pred_hidden_size=cfg.pred_dim,
        pred_num_attention_heads=cfg.pred_heads,
        pred_num_hidden_layers=cfg.pred_depth,
        pred_mlp_ratio=cfg.mlp_ratio,
        pred_num_mask_tokens=1,
        num_pooler_layers=0,
    )


def config_from_hf(hf) -> VJEPAConfig:
    """VJEPAConfig of a transformers VJEPA2Config (a save_pretrained directory's config.json)."""
    patch = hf.patch_size if isinstance(hf.patch_size, int) else int(hf.patch_size[0])
    return VJEPAConfig(
        image_size=hf.crop_size,
        frames=hf.frames_per_clip,
        tubelet=hf.tubelet_size,
        patch=patch,
        dim=hf.hidden_size,
        depth=hf.num_hidden_layers,
        heads=hf.num_attention_heads,
        mlp_ratio=float(hf.mlp_ratio),
        pred_dim=hf.pred_hidden_size,
        pred_depth=hf.pred_num_hidden_layers,
        pred_heads=hf.pred_num_attention_heads,
    )


# ---------------------------------------------------------------- attention over a subset of tokens


def time_ids(ids: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Tubelet step of each token id (ids are time-major over the grid)."""
    return ids // (grid[1] * grid[2])


def block_causal_mask(ids: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """[B, 1, N, N] bool, True where query token i may attend key token j: step(j) <= step(i)."""
    t = time_ids(ids, grid)  # [B, N]
    return (t[:, None, :, None] >= t[:, None, None, :]).contiguous()


def layer_forward(layer, x: torch.Tensor, ids: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
    """transformers' VJEPA2Layer on tokens x [B, N, D] at grid positions ids [B, N], with an optional
    boolean attention mask [B, 1, N, N]. The layer's own forward takes no attention mask (its attention is
    always full), so its submodules are called here in the same order; without a mask the result equals
    `layer(x, ids)[0]` (a test checks it)."""
    attn = layer.attention
    h = layer.norm1(x)
    shape = (*h.shape[:-1], -1, attn.attention_head_size)
    q = attn.query(h).view(shape).transpose(1, 2)  # [B, heads, N, hd]
    k = attn.key(h).view(shape).transpose(1, 2)
    v = attn.value(h).view(shape).transpose(1, 2)
    pos = attn.get_position_ids(h, masks=ids)
    q = attn.apply_rotary_embeddings(q, pos)
    k = attn.apply_rotary_embeddings(k, pos)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=attn.scaling)
    out = attn.proj(out.transpose(1, 2).reshape(*x.shape[:-1], attn.all_head_size))
    x = x + layer.drop_path(out)
    return x + layer.drop_path(layer.mlp(layer.norm2(x)))


def _run_layers(layers, x, ids, attn_mask, checkpointing: bool):
    for layer in layers:
        if checkpointing and torch.is_grad_enabled():
            # recompute each block in backward: activations of one block at a time instead of all
            x = torch.utils.checkpoint.checkpoint(
                layer_forward, layer, x, ids, attn_mask, use_reentrant=False
            )
        else:
            x = layer_forward(layer, x, ids, attn_mask)
    return x


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    # x [B, N, D], ids [B, M] -> [B, M, D]
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class VideoEncoder(nn.Module):
    """Frames [B, T, 3, H, W] in [0, 1] -> tokens [B, N, D]; `context_ids` [B, Nc] keeps only those tokens,
    and then no block attends to any other token (the masked context forward)."""

    def __init__(self, cfg: VJEPAConfig, hf_encoder=None):
        super().__init__()
        from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Encoder

        self.cfg = cfg
        self.encoder = hf_encoder if hf_encoder is not None else VJEPA2Encoder(hf_config(cfg))
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 1, 3, 1, 1), persistent=False)
        self.gradient_checkpointing = False

    def grid_of(self, frames: torch.Tensor) -> tuple[int, int, int]:
        side = self.cfg.image_size // self.cfg.patch
        return (frames.shape[1] // self.cfg.tubelet, side, side)

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, H, W] in [0, 1] -> normalised [B, T, 3, S, S] at the config's image size."""
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be [B, T, 3, H, W], got {tuple(frames.shape)}")
        if frames.shape[1] % self.cfg.tubelet:
            raise ValueError(
                f"frames: T={frames.shape[1]} is not a multiple of the tubelet {self.cfg.tubelet}"
            )
        frames = frames.float()
        size = self.cfg.image_size
        if frames.shape[-2:] != (size, size):
            b, t = frames.shape[:2]
            frames = F.interpolate(frames.flatten(0, 1), size=(size, size), mode="bilinear", antialias=True)
            frames = frames.view(b, t, 3, size, size)
        return (frames - self.pixel_mean) / self.pixel_std

    def forward(self, frames: torch.Tensor, context_ids: torch.Tensor | None = None) -> torch.Tensor:
        grid = self.grid_of(frames)
        x = self.encoder.embeddings(self.prepare(frames))  # [B, N, D], tubelet-local
        b, n, _ = x.shape
        if context_ids is None:
            ids = torch.arange(n, device=x.device).unsqueeze(0).expand(b, n)
        else:
            ids = context_ids
            x = gather_tokens(x, ids)  # [B, Nc, D]: the other tokens never enter a block
        mask = block_causal_mask(ids, grid) if self.cfg.causal else None
        x = _run_layers(self.encoder.layer, x, ids, mask, self.gradient_checkpointing)
        return self.encoder.layernorm(x)


class Predictor(nn.Module):
    """Context features [B, Nc, D] at ids [B, Nc] + mask tokens at target ids [B, Nt] -> predicted target
    features [B, Nt, D] (transformers' VJEPA2Predictor layers, physworld's forward with an optional
    block-causal mask)."""

    def __init__(self, cfg: VJEPAConfig, hf_predictor=None):
        super().__init__()
        from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Predictor

        self.cfg = cfg
        self.predictor = hf_predictor if hf_predictor is not None else VJEPA2Predictor(hf_config(cfg))
        self.gradient_checkpointing = False

    def forward(self, context, context_ids, target_ids, grid) -> torch.Tensor:
        p = self.predictor
        b, nt = target_ids.shape
        ctx = p.embeddings.predictor_embeddings(context)  # [B, Nc, Dp]
        tgt = p.embeddings.mask_tokens[0].expand(b, nt, -1)  # [B, Nt, Dp]
        x = torch.cat([ctx, tgt], dim=1)
        ids = torch.cat([context_ids, target_ids], dim=1)
        mask = block_causal_mask(ids, grid) if self.cfg.causal else None
        x = _run_layers(p.layer, x, ids, mask, self.gradient_checkpointing)
        x = p.layernorm(x[:, context.shape[1] :])
        return p.proj(x)  # [B, Nt, D]


class VJEPA(nn.Module):
    """Context encoder + predictor (trained) and the EMA target encoder (no gradients)."""

    def __init__(self, cfg: VJEPAConfig, hf_model=None):
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoEncoder(cfg, hf_model.encoder if hf_model is not None else None)
        self.predictor = Predictor(cfg, hf_model.predictor if hf_model is not None else None)
        if hf_model is None:
            _init_weights(self, hf_config(cfg).initializer_range)
        self.target_encoder = copy.deepcopy(self.encoder)  # same layers and settings, EMA-updated
        self.target_encoder.requires_grad_(False)

    def set_gradient_checkpointing(self, on: bool) -> None:
        self.encoder.gradient_checkpointing = on
        self.predictor.gradient_checkpointing = on

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """target <- momentum * target + (1 - momentum) * encoder."""
        for t, s in zip(self.target_encoder.parameters(), self.encoder.parameters(), strict=True):
            t.lerp_(s.detach(), 1.0 - momentum)

    def loss(self, frames, context_ids, target_ids, kind: str = "l1", trajectory_weight: float = 0.0):
        """(loss, stats) of one batch: see `jepa_loss`. A method so DDP can route it (distributed.wrap)."""
        return jepa_loss(self, frames, context_ids, target_ids, kind, trajectory_weight)

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained weights under VJEPA2Model's names (encoder.*, predictor.*), target encoder as the
        encoder (V-JEPA evaluates its target encoder)."""
        out = {f"encoder.{k}": v for k, v in self.target_encoder.encoder.state_dict().items()}
        out.update({f"predictor.{k}": v for k, v in self.predictor.predictor.state_dict().items()})
        return out


def target_features(model: VJEPA, frames: torch.Tensor) -> torch.Tensor:
    """The EMA target encoder's features of the whole clip, layer-normed without affine (V-JEPA's
    targets): [B, N, D]."""
    with torch.no_grad():
        z = model.target_encoder(frames)
    return F.layer_norm(z.float(), z.shape[-1:])


def jepa_loss(
    model: VJEPA,
    frames: torch.Tensor,
    context_ids: torch.Tensor,
    target_ids: torch.Tensor,
    kind: str = "l1",
    trajectory_weight: float = 0.0,
) -> tuple[torch.Tensor, dict]:
    """V-JEPA's latent loss: the predictor, from the context encoder's features of the context tokens
    alone, predicts the target encoder's (layer-normed) features at the target tokens; L1 or L2.

    `trajectory_weight` > 0 adds the latent-trajectory term of the temporal causality loss, used with the
    causal mask (targets = every token of the steps after the context): along each token position the
    trajectory [observed targets of the context steps, predictions of the later steps] must bend like the
    target trajectory: |second difference in time of the predicted trajectory - that of the targets|, a
    penalty on latent accelerations the clip does not have (jerks, teleports). It needs 3 tubelet steps.

    Returns (loss, stats): stats hold detached tensors: latent_loss, trajectory_loss, mean_target_loss
    (the same loss for predicting every target as the batch's mean target vector: a latent_loss that
    falls only as fast as this one means the representation shrinks while the predictor learns nothing),
    context_std, target_std, target_effective_rank (collapse watch, see `collapse_stats`)."""
    grid = model.encoder.grid_of(frames)
    target_all = target_features(model, frames)  # [B, N, D]
    context = model.encoder(frames, context_ids)  # [B, Nc, D], sees the context tokens only
    pred = model.predictor(context, context_ids, target_ids, grid).float()  # [B, Nt, D]
    target = gather_tokens(target_all, target_ids)
    err = pred - target
    latent = err.abs().mean() if kind == "l1" else err.pow(2).mean()
    loss = latent
    trajectory = torch.zeros((), device=latent.device)
    if trajectory_weight > 0 and grid[0] >= 3:
        trajectory = trajectory_term(pred, target_all, target_ids, grid, kind)
        loss = loss + trajectory_weight * trajectory
    with torch.no_grad():  # the loss of predicting every target as the batch's mean target vector
        trivial = target - target.mean(dim=(0, 1), keepdim=True)
        mean_target_loss = trivial.abs().mean() if kind == "l1" else trivial.pow(2).mean()
    stats = {
        "latent_loss": latent.detach(),
        "trajectory_loss": trajectory.detach(),
        "mean_target_loss": mean_target_loss,
    }
    stats.update(collapse_stats(context.detach().float(), target.detach()))
    return loss, stats


def trajectory_term(pred, target_all, target_ids, grid, kind: str = "l1") -> torch.Tensor:
    """Second-difference (latent acceleration) mismatch of the predicted trajectory; `target_ids` must be
    every token of the steps k..T'-1 (a causal mask)."""
    gt, gh, gw = grid
    b, n, d = target_all.shape
    per = gh * gw
    k = gt - target_ids.shape[1] // per
    truth = target_all.view(b, gt, per, d)
    path = torch.cat([truth[:, :k], pred.view(b, gt - k, per, d)], dim=1)  # [B, T', hw, D]
    start = max(0, k - 2)  # second differences that touch a predicted step
    acc_pred = path[:, start + 2 :] - 2 * path[:, start + 1 : -1] + path[:, start:-2]
    acc_true = truth[:, start + 2 :] - 2 * truth[:, start + 1 : -1] + truth[:, start:-2]
    diff = acc_pred - acc_true
    return diff.abs().mean() if kind == "l1" else diff.pow(2).mean()


def feature_std(x: torch.Tensor) -> torch.Tensor:
    """Std over batch and tokens of each channel of layer-normed features, averaged over channels: 0 when
    every token maps to the same vector (collapse); about 1 for features spread evenly."""
    x = F.layer_norm(x.float(), x.shape[-1:]).reshape(-1, x.shape[-1])
    return x.std(dim=0).mean()


def effective_rank(x: torch.Tensor) -> torch.Tensor:
    """exp(entropy of the normalised singular values) of the centred [tokens, D] features (Roy & Vetterli):
    1 when all variation lies along one direction, D when spread over all."""
    x = x.float().reshape(-1, x.shape[-1])
    s = torch.linalg.svdvals(x - x.mean(dim=0, keepdim=True))
    p = s / s.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return torch.exp(entropy)


def collapse_stats(context: torch.Tensor, target: torch.Tensor) -> dict:
    return {
        "context_std": feature_std(context),
        "target_std": feature_std(target),
        "target_effective_rank": effective_rank(target),
    }


def _init_weights(module: nn.Module, std: float) -> None:
    # VJEPA2PreTrainedModel._init_weights: truncated normal linear/conv weights, zero biases, zero mask
    # tokens; LayerNorms stay at (1, 0)
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for name, p in module.named_parameters():
        if name.endswith("mask_tokens"):
            nn.init.zeros_(p)


# ---------------------------------------------------------------- masks


def multiblock_masks(
    batch: int,
    grid: tuple[int, int, int],
    generator: torch.Generator,
    blocks: int = 4,
    scale: tuple[float, float] = (0.15, 0.3),
    aspect: tuple[float, float] = (0.75, 1.5),
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-JEPA's 3D multi-block mask: `blocks` spatial rectangles (each `scale` of the frame's area, aspect
    ratio in `aspect`) extended over every time step (tubes); their union is the target, the rest the
    context. Clips get the same token counts (as the batch needs): each keeps a random subset of its
    context / target tokens of the batch's smallest size. Returns (context_ids [B, Nc], target_ids [B, Nt]),
    each row sorted, disjoint. Deterministic from `generator`."""
    gt, gh, gw = grid
    n = gt * gh * gw
    targets = []
    for _ in range(batch):
        spatial = torch.zeros(gh, gw, dtype=torch.bool)
        for _ in range(blocks):
            s = float(scale[0] + (scale[1] - scale[0]) * torch.rand((), generator=generator))
            lo, hi = math.log(aspect[0]), math.log(aspect[1])
            ar = math.exp(lo + (hi - lo) * float(torch.rand((), generator=generator)))
            area = s * gh * gw
            bh = max(1, min(gh, round(math.sqrt(area * ar))))
            bw = max(1, min(gw, round(math.sqrt(area / ar))))
            top = int(torch.randint(0, gh - bh + 1, (), generator=generator))
            left = int(torch.randint(0, gw - bw + 1, (), generator=generator))
            spatial[top : top + bh, left : left + bw] = True
        if spatial.all():  # keep at least one context column
            spatial.view(-1)[int(torch.randint(0, gh * gw, (), generator=generator))] = False
        targets.append(spatial.view(1, -1).expand(gt, -1).reshape(n))
    return _equalise([~t for t in targets], targets, generator)


def causal_masks(
    batch: int, grid: tuple[int, int, int], generator: torch.Generator, min_context_steps: int = 1
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The causal (future) mask: context = every token of the first k tubelet steps, target = every token
    of the later ones, k drawn in [min_context_steps, T' - 1] (one k per batch). Returns (context_ids,
    target_ids, k)."""
    gt, gh, gw = grid
    if gt < 2:
        raise ValueError(f"a causal mask needs at least 2 tubelet steps, the grid has {gt}")
    lo = min(max(1, min_context_steps), gt - 1)
    k = int(torch.randint(lo, gt, (), generator=generator))
    per = gh * gw
    ctx = torch.arange(k * per).unsqueeze(0).expand(batch, -1)
    tgt = torch.arange(k * per, gt * per).unsqueeze(0).expand(batch, -1)
    return ctx.contiguous(), tgt.contiguous(), k


def _equalise(contexts, targets, generator) -> tuple[torch.Tensor, torch.Tensor]:
    nc = min(int(c.sum()) for c in contexts)
    nt = min(int(t.sum()) for t in targets)
    ctx_rows, tgt_rows = [], []
    for c, t in zip(contexts, targets, strict=True):
        for sel, keep, rows in ((c, nc, ctx_rows), (t, nt, tgt_rows)):
            idx = sel.nonzero().squeeze(1)
            pick = torch.randperm(len(idx), generator=generator)[:keep]
            rows.append(idx[pick].sort().values)
    return torch.stack(ctx_rows), torch.stack(tgt_rows)


# ---------------------------------------------------------------- loading


def _info(cfg: VJEPAConfig, source: str) -> dict:
    return {
        "frames": cfg.frames,
        "image_size": cfg.image_size,
        "tubelet": cfg.tubelet,
        "patch": cfg.patch,
        "dim": cfg.dim,
        "grid": cfg.grid,
        "causal": cfg.causal,
        "source": source,
        "config": dataclasses.asdict(cfg),
    }


def config_from_dict(data: dict) -> VJEPAConfig:
    known = {f.name for f in dataclasses.fields(VJEPAConfig)}
    return VJEPAConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


def load_video_encoder(checkpoint=None, config: VJEPAConfig | None = None) -> tuple[VideoEncoder, dict]:
    """(encoder, info). `checkpoint`: None (a randomly initialised encoder from `config`, default the tiny
    VJEPAConfig()), a .safetensors file the vjepa recipe wrote (its EMA target encoder), a directory
    written by transformers' `save_pretrained` of a VJEPA2Model, or a hub id (needs network access to the
    hub). The encoder is in eval mode with gradients off; `info` has frames, image_size, tubelet, patch,
    dim, grid (t, h, w), causal, source and config."""
    if checkpoint is None:
        cfg = config or VJEPAConfig()
        model = VJEPA(cfg)
        encoder = model.target_encoder
        source = "random"
    else:
        path = Path(checkpoint)
        if path.suffix == ".safetensors" or path.is_file():
            encoder, cfg = _from_recipe_checkpoint(path)
            source = str(path)
        else:
            hf_model = load_hf_model(str(checkpoint))
            cfg = config_from_hf(hf_model.config)
            if config is not None:  # keep the caller's normalisation / causal choice
                cfg = dataclasses.replace(
                    cfg, causal=config.causal, pixel_mean=config.pixel_mean, pixel_std=config.pixel_std
                )
            encoder = VideoEncoder(cfg, hf_model.encoder)
            source = str(checkpoint)
    encoder.eval().requires_grad_(False)
    return encoder, _info(cfg, source)


def load_hf_model(name_or_dir: str):
    """transformers' VJEPA2Model from a save_pretrained directory or a hub id (clear error without one)."""
    from transformers import VJEPA2Model

    local = Path(name_or_dir)
    if local.exists() and not (local / "config.json").is_file():
        raise FileNotFoundError(
            f"{local}: not a save_pretrained directory of a VJEPA2Model (no config.json); "
            "pass a vjepa .safetensors checkpoint or such a directory"
        )
    try:
        return VJEPA2Model.from_pretrained(name_or_dir)
    except OSError as e:
        raise FileNotFoundError(
            f"{name_or_dir}: cannot load a VJEPA2Model from it ({str(e).splitlines()[0]}); "
            "give a local save_pretrained directory, or a hub id on a machine that reaches the hub"
        ) from None


def _from_recipe_checkpoint(path: Path) -> tuple[VideoEncoder, VJEPAConfig]:
    from physworld.training.checkpoint import load_run

    ckpt, info = load_run(path, RECIPE_ID)
    cfg = config_from_dict(info["model_config"])
    encoder = VideoEncoder(cfg)
    prefix = "model.target_encoder."
    state = {k[len(prefix) :]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)}
    encoder.load_state_dict(state, strict=True)
    return encoder, cfg


__all__ = [
    "VJEPAConfig",
    "VJEPA",
    "VideoEncoder",
    "Predictor",
    "load_video_encoder",
    "load_hf_model",
    "multiblock_masks",
    "causal_masks",
    "hf_config",
    "config_from_hf",
]
