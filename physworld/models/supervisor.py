"""The Supervisor: what fine-tunes a Visual Expert on unlabelled clips against a frozen PhysicsExpert.

Guide 000's third expert. Its losses read the RGB frames of an unlabelled split (data/splits.py) and
nothing else: no states, masks, parameters or scene specs.

L_vis: the frames explained by the Visual Expert's estimates. The target is a colour segmentation
    computed from the pixels (`colour_instances`): physworld's 2D renderer fills each body with one
    flat colour and draws its rotation marker (and a kinematic body's stripes) in that colour times
    DARK_SHADE, with no anti-aliasing, on a known background, static grey and joint grey. So grouping a
    clip's pixels by exact RGB, dropping those three colours and folding every dark shade into its
    base colour gives one instance mask per body colour, from pixels alone (two bodies of one colour
    would merge; the palette gives the first 20 bodies of a scene distinct colours). Slots are matched
    to these instances by Hungarian matching on mask dice (no gradient), then
      - mask: BCE of the Visual Expert's mask logits against the matched instance (zeros unmatched),
      - exist: BCE of exist_logit against "matched",
      - render: a soft disc drawn at the slot's estimated (x, y) with the instance's equivalent radius
        (`render_discs`, differentiable in the position) against the instance mask: the estimated
        positions must explain where the pixels are.
L_phys: the frozen PhysicsExpert, rolled forward k clip frames (k * stride simulator steps) from the
    Visual Expert's estimated state at clip frame t, must land on its estimate at t + k. Per slot that
    exists (exist probability above a threshold, chosen without gradient), the graph's node features
    take the estimated friction and restitution and mass = exp(estimated log mass relative to the
    clip); what the Visual Expert does not estimate is approximated and documented here:
      - shape: every body is a disc, radius = the equivalent radius sqrt(area / pi) of the slot's
        predicted mask at its largest over the window (detached: geometry is not trained by L_phys),
        moment = m r^2 / 2;
      - static world: the default arena (floor, walls, ceiling; worlds/spec.arena) in the world frame
        the clip camera defines; inner static geometry (ramps, pegs) is not seen by the rollout;
      - world: gravity (0, -981), 60 frames/s and the default substeps (worlds/spec.world), so one clip
        frame at `fps` is 60 / fps simulator steps;
      - history: the PhysicsExpert reads k frames of velocity history; they are the estimate at t
        extended backwards at constant velocity;
      - no joints, and no kinematic bodies: a scripted body (pong's paddles) is rolled as a free disc.
    Errors are in the Visual Expert's normalised units (Huber of positions and velocities divided by its
    state_std; the angle as 1 - cos of the difference); rows whose error exceeds phys_error_cap (off by
    default) are left out. The PhysicsExpert's
    parameters are frozen (requires_grad False, never in the optimizer) while gradients flow through
    it to the estimates.
L_consistency: the same clip seen in two windows that overlap (starts s and s + offset): slots are
    matched between the windows (Hungarian on the normalised position distance over the shared frames,
    no gradient), and matched slots' states on the shared frames and their parameters must agree. The
    parameters are pooled over each window's frames by the Visual Expert, so agreement across windows
    is what keeps them constant over a clip.

`load_finetuned(checkpoint)` reads a Supervisor checkpoint as a Visual Expert; `vision_rollout` is the
"vision in the loop" evaluation's rollout (evaluation/vision_loop.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from physworld.data.render import BACKGROUND, DARK_SHADE, JOINT_COLOR, STATIC_COLOR
from physworld.models.physics_expert import PhysicsExpert, integrate

RECIPE = "supervisor"  # the `recipe` in a Supervisor checkpoint's metadata
SIM_FPS = 60.0  # worlds/spec.FPS: the 2D world's simulator rate


@dataclass
class SupervisorConfig:
    lambda_vis: float = 1.0  # weight of L_vis (0 switches it off)
    lambda_phys: float = 1.0  # weight of L_phys (0: the ablation without the PhysicsExpert)
    lambda_consistency: float = 1.0  # weight of L_consistency
    vis_render_weight: float = 1.0  # inside L_vis: the disc rendered from the estimated positions
    phys_horizon: int = 1  # k: clip frames the PhysicsExpert rolls forward
    consistency_offset: int = 2  # clip frames between the two overlapping windows' starts
    exist_threshold: float = 0.5  # slots whose exist probability is above this take part in L_phys
    # L_phys rows whose error (state_error) exceeds this are left out. Off by default: with a cap of 10
    # the bench's fine-tune moved its estimates past it, where L_phys is 0 and constrains nothing.
    phys_error_cap: float = 1.0e9
    render_edge: float = 1.0  # soft disc edge width, in mask pixels
    min_instance_pixels: int = 1  # colours covering fewer image pixels over the clip are noise

    def validate(self):
        for name in ("lambda_vis", "lambda_phys", "lambda_consistency", "vis_render_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"supervisor.{name} must be a finite number >= 0, got {value}")
        if self.phys_horizon < 1:
            raise ValueError(f"supervisor.phys_horizon must be at least 1, got {self.phys_horizon}")
        if self.consistency_offset < 1:
            raise ValueError(
                f"supervisor.consistency_offset must be at least 1, got {self.consistency_offset}"
            )
        if not 0 < self.exist_threshold < 1:
            raise ValueError(f"supervisor.exist_threshold must be in (0, 1), got {self.exist_threshold}")
        if not self.phys_error_cap > 0:
            raise ValueError(f"supervisor.phys_error_cap must be positive, got {self.phys_error_cap}")
        if not self.render_edge > 0:
            raise ValueError(f"supervisor.render_edge must be positive, got {self.render_edge}")


# ---------------------------------------------------------------- pixels


def to_frames(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, T, 3, H, W] in [0, 1]."""
    return rgb.permute(0, 1, 4, 2, 3).float() / 255.0


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colour_instances(rgb: np.ndarray, size: int, min_pixels: int = 1) -> torch.Tensor:
    """Instance masks from the pixels of one clip (module docstring, L_vis): rgb uint8 [T, H, W, 3] ->
    float [T, M, size, size], the fraction of each mask pixel an instance covers (area pooling, as the
    Visual Expert's mask targets), instances ordered by colour code (deterministic)."""
    code = _pack(np.asarray(rgb))  # [T, H, W]
    ignore = _pack(np.array([BACKGROUND, STATIC_COLOR, JOINT_COLOR], dtype=np.int64))
    colours, counts = np.unique(code[~np.isin(code, ignore)], return_counts=True)
    colours = colours[counts >= min_pixels]
    rgb_of = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], -1)
    # A colour that is another's dark shade (each channel within 1 of round(c * DARK_SHADE)) joins it.
    base_of = {}
    for i, c in enumerate(colours):
        for j in range(len(colours)):
            if j != i and np.all(np.abs(np.round(rgb_of[j] * DARK_SHADE) - rgb_of[i]) <= 1):
                base_of[int(c)] = int(colours[j])
                break
    bases = [int(c) for c in colours if int(c) not in base_of]
    t, h, w = code.shape
    masks = np.zeros((t, len(bases), h, w), dtype=np.float32)
    for m, base in enumerate(bases):
        members = [base] + [c for c, b in base_of.items() if b == base]
        masks[:, m] = np.isin(code, members)
    out = torch.from_numpy(masks)
    return out if h == size else F.adaptive_avg_pool2d(out, size)


def mask_pixel_world(camera: dict, image_size: int, size: int) -> tuple[torch.Tensor, float]:
    """World (x, y) of each mask pixel's centre [size, size, 2], and the width of a mask pixel in world
    units, under a 2D clip camera (data/clips.camera_2d)."""
    sx, sy = camera["scale"]
    step = image_size / size  # image pixels per mask pixel
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) * step  # image pixels
    rows, cols = torch.meshgrid(centres, centres, indexing="ij")
    x = cols / sx
    y = camera["world_height"] - (rows - camera["pad_rows"]) / sy
    return torch.stack([x, y], -1), step / sx


def equivalent_radius(coverage: torch.Tensor, camera: dict, image_size: int) -> torch.Tensor:
    """Mask coverage [..., T, h, w] in [0, 1] -> the radius (world units) of a disc of the same area at
    the frame where it is largest [...]: sqrt(area / pi)."""
    size = coverage.shape[-1]
    sx, sy = camera["scale"]
    pixels = coverage.flatten(-2).sum(-1).amax(-1) * (image_size / size) ** 2  # image pixels
    return torch.sqrt(pixels / (sx * sy) / math.pi)


def render_discs(
    position: torch.Tensor, radius: torch.Tensor, grid: torch.Tensor, edge: float
) -> torch.Tensor:
    """Soft discs as logits: position [..., 2], radius [...] (world units), grid [h, w, 2] -> [..., h, w],
    (radius - distance) / edge, so the disc's edge is about `edge` world units wide."""
    d = (grid - position[..., None, None, :]).norm(dim=-1)  # [..., h, w]
    return (radius[..., None, None] - d) / edge


# ---------------------------------------------------------------- the PhysicsExpert on estimates


def freeze(pe: PhysicsExpert) -> PhysicsExpert:
    """The PhysicsExpert as the Supervisor uses it: eval mode, no parameter takes a gradient."""
    pe.eval()
    pe.requires_grad_(False)
    return pe


def arena_statics() -> torch.Tensor:
    """The default arena's static capsules, float [S, 7] (data/windows.STATIC_FEATURES)."""
    from physworld.data.windows import scene_arrays
    from physworld.worlds.spec import arena, new_spec

    spec = new_spec("arena")
    spec["statics"] = arena()
    return torch.from_numpy(scene_arrays(spec)["statics"])


def disc_bodies(params: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Node features (data/windows.BODY_FEATURES) for estimated bodies taken as discs: params [N, 3]
    (log mass relative, friction, restitution), radius [N] -> float [N, 11]. Differentiable in params."""
    n = params.shape[0]
    mass = torch.exp(params[:, 0])
    one, zero = params.new_ones(n), params.new_zeros(n)
    return torch.stack(
        [
            one,  # is_circle
            zero,
            zero,
            radius,
            2 * radius,
            2 * radius,
            mass,
            0.5 * mass * radius.square(),  # a uniform disc's moment
            params[:, 1].clamp_min(0.0),  # friction
            params[:, 2].clamp(0.0, 1.0),  # elasticity
            zero,  # kinematic
        ],
        -1,
    )


def roll_physics(
    pe: PhysicsExpert,
    state: torch.Tensor,
    body: torch.Tensor,
    graph_of: torch.Tensor,
    num_graphs: int,
    steps: int,
    statics: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Roll the PhysicsExpert `steps` simulator frames from state [N, 6] (graphs tagged by graph_of
    [N]), every graph in the default world with the given statics [S, 7] (default: the arena) in each.
    The history the model reads is the state at t extended backwards at constant velocity.
    Returns the states after each step, [N, 6] each. Differentiable in state and body."""
    from physworld.worlds.spec import DEFAULT_SUBSTEPS, GRAVITY

    k = pe.config.history
    dt = 1.0 / SIM_FPS
    statics = arena_statics() if statics is None else statics
    s = statics.shape[0]
    lag = torch.arange(k - 1, -1, -1, dtype=state.dtype)[None, :, None] * dt  # [1, k, 1]
    history = torch.cat(
        [state[:, None, :3] - lag * state[:, None, 3:], state[:, None, 3:].expand(-1, k, -1)], -1
    )  # [N, k, 6]
    batch = {
        "body": body,
        "batch": graph_of,
        "gravity": torch.tensor([GRAVITY], dtype=state.dtype).expand(num_graphs, 2),
        "dt": torch.full((num_graphs,), dt, dtype=state.dtype),
        "substeps": torch.full((num_graphs,), DEFAULT_SUBSTEPS, dtype=torch.long),
        "statics": statics.to(state.dtype).repeat(num_graphs, 1),
        "statics_batch": torch.arange(num_graphs).repeat_interleave(s),
        "joint_index": torch.zeros((0, 2), dtype=torch.long),
        "joint_kind": torch.zeros((0,), dtype=torch.long),
        "joint_anchor": torch.zeros((0, 4), dtype=state.dtype),
        "num_graphs": num_graphs,
    }
    out = []
    for _ in range(steps):
        batch["history"] = history
        accel = pe.accelerations(batch)
        nxt = integrate(history[:, -1], accel, batch["dt"][graph_of], batch["substeps"][graph_of])
        history = torch.cat([history[:, 1:], nxt[:, None]], 1)
        out.append(nxt)
    return out


def state_error(a: torch.Tensor, b: torch.Tensor, state_std: torch.Tensor) -> torch.Tensor:
    """Per-row error between 2D states [..., 6]: Huber (smooth L1, beta 1) of the normalised x, y, vx, vy,
    w differences plus 1 - cos of the angle difference, summed over fields -> [...]. Huber, not squares:
    a rollout that goes far wrong (two estimated discs overlapping, a ramp the arena lacks) must not
    outweigh every other term with a gradient that grows with its error."""
    keep = [0, 1, 3, 4, 5]
    z = (a[..., keep] - b[..., keep]) / state_std[keep]
    huber = F.smooth_l1_loss(z, torch.zeros_like(z), reduction="none", beta=1.0).sum(-1)
    return huber + (1 - torch.cos(a[..., 2] - b[..., 2]))


# ---------------------------------------------------------------- the three losses


@torch.no_grad()
def match_instances(
    mask_logits: torch.Tensor, instances: list[torch.Tensor]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Slots to colour instances per clip by Hungarian matching on 1 - soft dice over the window.
    mask_logits [B, T, K, h, w]; instances per clip [T, M, h, w]. -> (slots, instances) per clip."""
    from scipy.optimize import linear_sum_assignment

    prob = torch.sigmoid(mask_logits.float())
    result = []
    for b, inst in enumerate(instances):
        if inst.shape[1] == 0:
            result.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
            continue
        p = prob[b].transpose(0, 1).flatten(1)  # [K, T*h*w]
        g = inst.transpose(0, 1).flatten(1)  # [M, T*h*w]
        dice = (2 * p @ g.t() + 1.0) / (p.sum(-1)[:, None] + g.sum(-1)[None] + 1.0)
        rows, cols = linear_sum_assignment((1 - dice).numpy())
        result.append((rows.astype(np.int64), cols.astype(np.int64)))
    return result


def vis_loss(
    out: dict, instances: list[torch.Tensor], camera: dict, image_size: int, cfg: SupervisorConfig
) -> dict:
    """L_vis and its parts (module docstring) for one batch of windows; instances [T, M, h, w] per clip
    from `colour_instances` on the same frames."""
    logits = out["mask_logits"]  # [B, T, K, h, w]
    b, t, k, h, _ = logits.shape
    grid, pixel = mask_pixel_world(camera, image_size, h)
    matches = match_instances(logits, instances)
    target = torch.zeros_like(logits)
    exists = torch.zeros(b, k)
    render_terms = []
    for i, (slots, inst) in enumerate(matches):
        if len(slots) == 0:
            continue
        s, m = torch.from_numpy(slots), torch.from_numpy(inst)
        target[i, :, s] = instances[i][:, m]
        exists[i, s] = 1.0
        # Render: discs at the estimated positions [M', T, 2] with the instances' radii, vs the instances.
        radius = equivalent_radius(instances[i][:, m].transpose(0, 1), camera, image_size)  # [M']
        disc = render_discs(
            out["state"][i, s, :, :2], radius[:, None].expand(-1, t), grid, cfg.render_edge * pixel
        )
        goal = instances[i][:, m].transpose(0, 1)  # [M', T, h, w]
        visible = (goal.flatten(2).sum(-1) > 0).float()  # [M', T]
        per = F.binary_cross_entropy_with_logits(disc, goal, reduction="none").mean((-1, -2))
        render_terms.append((per * visible).sum() / visible.sum().clamp_min(1.0))
    mask = F.binary_cross_entropy_with_logits(logits, target)
    exist = F.binary_cross_entropy_with_logits(out["exist_logit"], exists)
    render = torch.stack(render_terms).mean() if render_terms else logits.sum() * 0.0
    total = mask + exist + cfg.vis_render_weight * render
    return {
        "vis": total,
        "vis_mask": mask.detach(),
        "vis_exist": exist.detach(),
        "vis_render": render.detach(),
    }


def physics_inputs(out: dict, camera: dict, image_size: int, threshold: float):
    """Which slots exist (per clip, no gradient) and their disc node features (differentiable in params).
    -> (keep [B, K] bool, body [N, 11] for the kept slots in (clip, slot) order)."""
    keep = torch.sigmoid(out["exist_logit"].detach()) > threshold  # [B, K]
    coverage = torch.sigmoid(out["mask_logits"].detach()).transpose(1, 2)  # [B, K, T, h, w]
    radius = equivalent_radius(coverage, camera, image_size).clamp(2.0, 150.0)  # [B, K]
    return keep, disc_bodies(out["params"][keep], radius[keep])


def phys_loss(
    out: dict,
    pe: PhysicsExpert,
    camera: dict,
    image_size: int,
    stride: int,
    state_std: torch.Tensor,
    cfg: SupervisorConfig,
) -> torch.Tensor:
    """L_phys (module docstring): every start frame t with t + k inside the window, one graph per
    (clip, t) holding the clip's existing slots, rolled k * stride simulator steps."""
    state = out["state"]  # [B, K, T, 6]
    b, k, t, _ = state.shape
    horizon = cfg.phys_horizon
    if t <= horizon:
        raise ValueError(
            f"supervisor.phys_horizon {horizon} needs windows longer than {horizon} frames, got {t}"
        )
    keep, body = physics_inputs(out, camera, image_size, cfg.exist_threshold)
    counts = keep.sum(1)  # [B]
    if int(counts.sum()) == 0:
        return state.sum() * 0.0
    starts = t - horizon
    start = state[keep][:, :starts]  # [N, starts, 6]: rows (clip, slot)
    goal = state[keep][:, horizon:]  # [N, starts, 6]
    clip_of = torch.repeat_interleave(torch.arange(b), counts)  # [N]
    # Graph (clip, start frame): rows ordered (start frame, clip, slot).
    graph_of = (torch.arange(starts)[:, None] * b + clip_of[None]).reshape(-1)
    flat = start.transpose(0, 1).reshape(-1, 6)
    bodies = body.repeat(starts, 1)
    end = roll_physics(pe, flat, bodies, graph_of, starts * b, horizon * stride)[-1]
    err = state_error(end, goal.transpose(0, 1).reshape(-1, 6), state_std)  # [starts * N]
    # Rows beyond the cap (off by default, see SupervisorConfig) are left out, chosen without gradient.
    kept = (err.detach() < cfg.phys_error_cap).to(err.dtype)
    return (err * kept).sum() / kept.sum().clamp_min(1.0)


@torch.no_grad()
def match_windows(state_a: torch.Tensor, state_b: torch.Tensor, keep_a, keep_b, state_std) -> list:
    """Slots of window A to slots of window B per clip on the frames they share (states [B, K, T', 6]
    on those frames), among existing slots. -> (slots_a, slots_b) per clip."""
    from scipy.optimize import linear_sum_assignment

    result = []
    for i in range(state_a.shape[0]):
        sa = torch.nonzero(keep_a[i]).flatten()
        sb = torch.nonzero(keep_b[i]).flatten()
        if len(sa) == 0 or len(sb) == 0:
            result.append((sa[:0], sb[:0]))
            continue
        pa, pb = state_a[i, sa, :, :2], state_b[i, sb, :, :2]  # [Ma, T', 2], [Mb, T', 2]
        cost = ((pa[:, None] - pb[None]) / state_std[:2]).norm(dim=-1).mean(-1)  # [Ma, Mb]
        rows, cols = linear_sum_assignment(cost.numpy())
        result.append((sa[torch.from_numpy(rows)], sb[torch.from_numpy(cols)]))
    return result


def consistency_loss(
    out_a: dict,
    out_b: dict,
    offset: int,
    state_std: torch.Tensor,
    param_std: torch.Tensor,
    cfg: SupervisorConfig,
) -> torch.Tensor:
    """L_consistency (module docstring): window B starts `offset` clip frames after window A."""
    sa = out_a["state"][:, :, offset:]  # [B, K, T - offset, 6]: the frames both windows show
    sb = out_b["state"][:, :, : sa.shape[2]]
    keep_a = torch.sigmoid(out_a["exist_logit"].detach()) > cfg.exist_threshold
    keep_b = torch.sigmoid(out_b["exist_logit"].detach()) > cfg.exist_threshold
    terms = []
    for i, (ia, ib) in enumerate(match_windows(sa.detach(), sb.detach(), keep_a, keep_b, state_std)):
        if len(ia) == 0:
            continue
        state_term = state_error(sa[i, ia], sb[i, ib], state_std).mean()
        param_term = ((out_a["params"][i, ia] - out_b["params"][i, ib]) / param_std).square().sum(-1).mean()
        terms.append(state_term + param_term)
    return torch.stack(terms).mean() if terms else sa.sum() * 0.0


# ---------------------------------------------------------------- loading


def load_finetuned(checkpoint):
    """A fine-tuned Visual Expert from a Supervisor checkpoint (safetensors; nothing unpickled), and its
    run info. A Visual Expert checkpoint (before fine-tuning) loads through load_visual_expert."""
    from physworld.models.visual_expert import VisualExpert, VisualExpertConfig
    from physworld.training.checkpoint import load_run, restore

    ckpt, info = load_run(checkpoint, RECIPE)
    model = VisualExpert(VisualExpertConfig(**info["model_config"]))
    restore(ckpt, model, rng=False)
    return model.eval(), info


def load_any_visual_expert(checkpoint):
    """A Visual Expert from either recipe's checkpoint: the supervised one or a Supervisor fine-tune."""
    from physworld.models.visual_expert import load_visual_expert
    from physworld.training.checkpoint import read_metadata

    extra = read_metadata(checkpoint).get("extra") or {}
    if extra.get("recipe") == RECIPE:
        return load_finetuned(checkpoint)
    return load_visual_expert(checkpoint)
