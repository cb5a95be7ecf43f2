"""PhysicsSSM: a selective state-space model (Mamba-style) that learns 2D rigid-body physics over time.

Where the PhysicsExpert reads a fixed window of k frames, this family keeps a recurrent state per body:
training runs over whole sequences of frames at once (a parallel scan, no Python loop over time), and a
rollout advances one frame at a time in constant time per frame (`step`), carrying the state forward.

Per layer, per frame t:

  1. body mixing (the scene): one attention layer over the bodies of the same scene at frame t, with
     geometry (displacement, distance, surface gap, relative velocity, joints) as an attention bias and
     as part of the message; a body attends to itself and to bodies whose surfaces are within
     connectivity_radius, or that share a joint. Static geometry enters every frame's input as summed
     encodings of the static capsules within static_radius (as the PhysicsExpert's world edges).
  2. time (the body's history): a Mamba block per body over frames (Gu & Dao 2023): input projection to
     (x, z), a short causal depthwise convolution, input-dependent step size Delta and matrices B, C,
     a diagonal A = -exp(A_log) (negative real, so the state decays), the selective scan
     h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t, y_t = C_t h_t + D x_t, gated by silu(z).

Decoder: the final hidden state -> a normalised acceleration (ax, ay, angular), de-normalised with the
dataset's statistics, and integrated with the substep-exact rule `windows.integrate`, as the
PhysicsExpert does.

The PhysicsSSM gate (guide 002): gate = sigmoid(W [ssm_out ; physics_embed]) per acceleration component,
acceleration = gate * ssm_acceleration + (1 - gate) * constraint, where the constraint is the ballistic
prior (the world's gravity, no angular acceleration: exactly what evaluation's ballistic baseline
integrates). `physics_embed` encodes the gravity, the ballistic prior, the nearest static gap and the
kinematic / world-joint flags. config.gate = False gives the pure SSM. Setting `model.forced_gate`
to a number overrides the learned gate (0: the ballistic prediction, 1: the SSM's), for tests and
ablations.

Training loss (`loss`): MSE of normalised accelerations over dynamic bodies, plus weighted physics
terms on the one-step predictions: penetration of each dynamic body into static capsules and into other
bodies (with an inscribed radius, so resting contact costs nothing), and jerk (the change of the
predicted normalised acceleration between frames).

Batches arrive padded per scene: states [B, T, N, 6] with body_mask [B, N] (`pad_scenes`,
`collate_sequences`); inside, the network works on the R real bodies as rows, hidden [R, T, d], and
on the (receiver, sender) pairs of each frame as edges, so padding costs no compute.

Speed on a CPU: the parallel scan is memory-bound and no faster than a loop over time there (level to
1.8x slower for training, bench/bench_ssm.py and BENCHMARKS.md); it is the form a GPU wants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from physworld.data.windows import integrate, scene_arrays
from physworld.models.physics_expert import (
    FRICTION,
    GRAVITY_SCALE,
    HEIGHT,
    IS_BOX,
    IS_CIRCLE,
    IS_POLY,
    JOINT_KINDS,
    KINEMATIC,
    MASS,
    MOMENT,
    RADIUS,
    WIDTH,
    bounding_radius,
    capsule_geometry,
    register_motion_stats,
    rotate,
)

BODY_STATIC_FEATURES = 3 + 4 + 2 + 3 + 2  # shape, sizes, log mass/spread, fric/elas/kin, gravity
WORLD_JOINT_FEATURES = len(JOINT_KINDS) + 2 + 2 + 1  # kind, body anchor, fixed anchor, separation
FRAME_FEATURES = 3 + 2 + BODY_STATIC_FEATURES + WORLD_JOINT_FEATURES  # velocity, sin/cos, static, joints
STATIC_EDGE_FEATURES = 2 + 1 + 1 + 2  # to surface, surface distance, gap, friction/elasticity
PAIR_FEATURES = 2 + 1 + 1 + 3 + 1 + 2  # displacement, distance, gap, rel. velocity, jointed, anchor offset
PHYSICS_FEATURES = 2 + 3 + 1 + 1 + 1  # gravity, ballistic prior (normalised), static gap, kinematic, pinned


@dataclass
class SSMConfig:
    seq_len: int = 32  # T: frames per training sequence (a rollout may run longer: the state carries on)
    d_model: int = 64  # width of the per-body hidden state
    n_layers: int = 2  # (body mixing, Mamba) pairs
    d_state: int = 16  # S: state size per channel of the selective scan
    expand: int = 2  # E = expand * d_model channels inside a Mamba block
    d_conv: int = 4  # kernel of the causal depthwise convolution
    dt_rank: int = 0  # rank of Delta's projection; 0: ceil(d_model / 16) (Mamba's default)
    heads: int = 4  # attention heads of the body-mixing layers
    connectivity_radius: float = 25.0  # px: bodies attend to each other when their surface gap is below this
    static_radius: float = 25.0  # px: a static capsule enters a body's input when its gap is below this
    length_scale: float = 100.0  # px: positions and sizes are divided by this
    gate: bool = True  # the PhysicsSSM gate with the ballistic prior; False: the pure SSM
    noise_std: float = 0.0  # random-walk noise on input velocities, in units of velocity_std (training)
    penetration_weight: float = 0.0  # weight of the penetration terms (static + body) in the loss
    jerk_weight: float = 0.0  # weight of the jerk term in the loss

    def validate(self):
        if self.d_model % self.heads:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be a multiple of model.heads ({self.heads})"
            )
        for name in ("seq_len", "d_model", "n_layers", "d_state", "expand", "d_conv", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be at least 1")
        if self.penetration_weight < 0 or self.jerk_weight < 0 or self.noise_std < 0:
            raise ValueError("model.penetration_weight, jerk_weight and noise_std must be >= 0")


# ---------------------------------------------------------------- the selective scan


def _scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t along dim 1 (h_{-1} = h0 or 0), outside autograd.

    A Hillis-Steele associative scan over the pairs (a, b), combined as (a1, b1) then (a2, b2) =
    (a1 a2, a2 b1 + b2): ceil(log2 T) vectorised steps, each O(T) work, no Python loop over time. Only
    products of the a's (here exp(Delta A) in (0, 1]) are formed, never their inverses, so it is as
    stable as the loop."""
    steps = a.shape[1]
    a, b = a.clone(), b.clone()
    offset = 1
    while offset < steps:
        # b_t += a_t b_{t-offset} and a_t *= a_{t-offset} for t >= offset; each right-hand side is a
        # new tensor computed from the old values before the in-place update
        b[:, offset:] += a[:, offset:] * b[:, :-offset]
        if h0 is not None or 2 * offset < steps:  # the last round's products are needed only for h0
            a[:, offset:] = a[:, offset:] * a[:, :-offset]
        offset *= 2
    if h0 is not None:
        b += a * h0.unsqueeze(1)  # a is now the running product a_0 ... a_t
    return b


class _LinearRecurrence(torch.autograd.Function):
    """The scan with its adjoint written out: the gradient of a linear recurrence is the same
    recurrence run backwards in time (lambda_t = dL/dh_t + a_{t+1} lambda_{t+1}; dL/db_t = lambda_t,
    dL/da_t = lambda_t h_{t-1}, dL/dh0 = a_0 lambda_0), so backward is one more scan and autograd
    stores no intermediate of the log2(T) rounds."""

    @staticmethod
    def forward(ctx, a, b, h0):
        h = _scan(a, b, h0)
        ctx.save_for_backward(a, h, h0 if h0 is not None else torch.zeros_like(b[:, 0]))
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], dim=1)  # a_{t+1}
        lam = _scan(a_next.flip(1), grad_h.flip(1), None).flip(1)  # [Bt, T, ...]
        h_prev = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1)  # h_{t-1}
        grad_h0 = a[:, 0] * lam[:, 0] if ctx.needs_input_grad[2] else None
        return lam * h_prev, lam, grad_h0


def linear_recurrence(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t along dim 1 (h_{-1} = h0 or 0), for all t at once, differentiable.
    a, b [Bt, T, ...]; h0 [Bt, ...] -> h [Bt, T, ...]."""
    return _LinearRecurrence.apply(a, b, h0)


def selective_scan(u, delta, A, B, C, D, h0=None, return_state: bool = False, block_elements: int = 1 << 17):
    """The selective scan of Mamba, in parallel over time.

    u, delta [Bt, T, E]; A [E, S] (negative); B, C [Bt, T, S]; D [E]; h0 [Bt, E, S] or None ->
    y [Bt, T, E] (and the last state h [Bt, E, S] with return_state).
      h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t;  y_t = C_t . h_t + D u_t
    Rows go through in blocks of about `block_elements` state values: on a CPU the [rows, T, E, S]
    states are memory-bound, and a block that stays in cache runs 1.9x as fast (bench/bench_ssm.py).
    """
    rows, steps, channels = u.shape
    per_block = max(1, block_elements // (steps * channels * A.shape[1]))
    if rows > per_block:
        parts = [
            selective_scan(
                u[i : i + per_block],
                delta[i : i + per_block],
                A,
                B[i : i + per_block],
                C[i : i + per_block],
                D,
                None if h0 is None else h0[i : i + per_block],
                return_state=True,
            )
            for i in range(0, rows, per_block)
        ]
        y = torch.cat([p[0] for p in parts])
        return (y, torch.cat([p[1] for p in parts])) if return_state else y
    decay = torch.exp(delta.unsqueeze(-1) * A)  # [Bt, T, E, S]
    drive = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # [Bt, T, E, S]
    h = linear_recurrence(decay, drive, h0)  # [Bt, T, E, S]
    y = torch.einsum("btes,bts->bte", h, C) + D * u  # [Bt, T, E]
    return (y, h[:, -1]) if return_state else y


def selective_scan_reference(u, delta, A, B, C, D, h0=None, return_state: bool = False):
    """The same scan as a Python loop over time: the definition the parallel scan is tested against."""
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1]) if h0 is None else h0
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1) + D * u[:, t])
    y = torch.stack(ys, dim=1)
    return (y, h) if return_state else y


class MambaBlock(nn.Module):
    """Mamba's mixer (selective SSM with a gated output) over the time axis of [Bt, T, d_model]."""

    def __init__(self, config: SSMConfig):
        super().__init__()
        d, e, s = config.d_model, config.expand * config.d_model, config.d_state
        self.dt_rank = config.dt_rank or math.ceil(d / 16)
        self.d_conv = config.d_conv
        self.in_proj = nn.Linear(d, 2 * e)
        self.conv1d = nn.Conv1d(e, e, config.d_conv, groups=e, padding=config.d_conv - 1)
        self.x_proj = nn.Linear(e, self.dt_rank + 2 * s, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, e)
        # Delta starts in [1e-3, 1e-1] (Mamba's init): softplus(bias) = dt
        dt = torch.exp(torch.rand(e) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            nn.init.uniform_(self.dt_proj.weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        # A = -exp(A_log) = -[1, 2, ..., S] per channel (S4D-real init): negative real, so states decay
        self.A_log = nn.Parameter(torch.log(torch.arange(1, s + 1, dtype=torch.float32)).repeat(e, 1))
        self.D = nn.Parameter(torch.ones(e))
        self.out_proj = nn.Linear(e, d)

    def _selective_inputs(self, x):
        # x [..., E] -> delta [..., E], B, C [..., S]
        s = self.A_log.shape[1]
        dt, B, C = self.x_proj(x).split([self.dt_rank, s, s], dim=-1)
        return F.softplus(self.dt_proj(dt)), B, C

    def forward(self, hidden: torch.Tensor, scan=selective_scan) -> torch.Tensor:
        """hidden [Bt, T, d] -> [Bt, T, d]; `scan` lets the bench swap in the loop reference."""
        steps = hidden.shape[1]
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # [Bt, T, E] each
        x = self.conv1d(x.transpose(1, 2))[..., :steps].transpose(1, 2)  # causal: the first T outputs
        x = F.silu(x)
        delta, B, C = self._selective_inputs(x)
        y = scan(x, delta, -torch.exp(self.A_log), B, C, self.D)  # [Bt, T, E]
        return self.out_proj(y * F.silu(z))  # [Bt, T, d]

    def init_cache(self, batch: int, device=None) -> dict:
        e, s = self.A_log.shape
        return {
            "conv": torch.zeros(batch, e, self.d_conv - 1, device=device),  # the last d_conv - 1 inputs
            "h": torch.zeros(batch, e, s, device=device),  # the scan's state
        }

    def step(self, hidden: torch.Tensor, cache: dict) -> tuple[torch.Tensor, dict]:
        """One frame: hidden [Bt, d] -> [Bt, d], in constant time, equal to `forward`'s frame t."""
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # [Bt, E]
        window = torch.cat([cache["conv"], x.unsqueeze(-1)], dim=-1)  # [Bt, E, d_conv]
        x = F.silu((window * self.conv1d.weight[:, 0]).sum(-1) + self.conv1d.bias)
        delta, B, C = self._selective_inputs(x)  # [Bt, E], [Bt, S], [Bt, S]
        A = -torch.exp(self.A_log)
        h = torch.exp(delta.unsqueeze(-1) * A) * cache["h"] + (delta * x).unsqueeze(-1) * B.unsqueeze(1)
        y = (h * C.unsqueeze(1)).sum(-1) + self.D * x  # [Bt, E]
        return self.out_proj(y * F.silu(z)), {"conv": window[..., 1:], "h": h}


# ---------------------------------------------------------------- batches of padded scenes


def pad_scenes(parts: list[dict]) -> dict:
    """The static part of B scenes (scene_arrays dicts, or window samples holding the same keys) as
    padded tensors: body [B, N, 11], body_mask [B, N], statics [B, S, 7], static_mask [B, S], joints as
    rows (joint_scene, joint_a, joint_b [J] with -1 = static world, joint_kind [J], joint_anchor [J, 4]),
    gravity [B, 2], dt [B], substeps [B]."""
    n = max(len(p["body"]) for p in parts)
    s = max(len(p["statics"]) for p in parts)
    b = len(parts)
    body = np.zeros((b, n, 11), np.float32)
    body_mask = np.zeros((b, n), bool)
    statics = np.zeros((b, max(s, 1), 7), np.float32)
    static_mask = np.zeros((b, max(s, 1)), bool)
    for i, p in enumerate(parts):
        body[i, : len(p["body"])] = p["body"]
        body_mask[i, : len(p["body"])] = True
        statics[i, : len(p["statics"])] = np.asarray(p["statics"]).reshape(-1, 7)
        static_mask[i, : len(p["statics"])] = True
    joints = [np.asarray(p["joint_index"]).reshape(-1, 2) for p in parts]
    return {
        "body": torch.from_numpy(body),
        "body_mask": torch.from_numpy(body_mask),
        "statics": torch.from_numpy(statics),
        "static_mask": torch.from_numpy(static_mask),
        "joint_scene": torch.from_numpy(np.repeat(np.arange(b), [len(j) for j in joints]).astype(np.int64)),
        "joint_a": torch.from_numpy(np.concatenate(joints)[:, 0].astype(np.int64)),
        "joint_b": torch.from_numpy(np.concatenate(joints)[:, 1].astype(np.int64)),
        "joint_kind": torch.from_numpy(
            np.concatenate([np.asarray(p["joint_kind"]).reshape(-1) for p in parts])
        ),
        "joint_anchor": torch.from_numpy(
            np.concatenate([np.asarray(p["joint_anchor"], np.float32).reshape(-1, 4) for p in parts])
        ),
        "gravity": torch.from_numpy(np.stack([np.asarray(p["gravity"], np.float32) for p in parts])),
        "dt": torch.tensor([float(p["dt"]) for p in parts], dtype=torch.float32),
        "substeps": torch.tensor([int(p["substeps"]) for p in parts], dtype=torch.int64),
    }


def collate_sequences(samples: list[dict]) -> dict:
    """WindowDataset samples (history [N, T, 6] and next [N, 6]) -> a padded batch with
    states [B, T + 1, N, 6] (frames t-T+1 .. t+1) beside pad_scenes' keys."""
    scene = pad_scenes(samples)
    steps = samples[0]["history"].shape[1] + 1
    states = np.zeros((len(samples), steps, scene["body"].shape[1], 6), np.float32)
    for i, s in enumerate(samples):
        states[i, :, : len(s["body"])] = np.concatenate([s["history"], s["next"][:, None]], axis=1).transpose(
            1, 0, 2
        )
    return dict(scene, states=torch.from_numpy(states))


# ---------------------------------------------------------------- physics terms


def inscribed_radius(body: torch.Tensor) -> torch.Tensor:
    """body [..., 11] -> [...]: a circle inside the body (circles: the radius; boxes: half the shorter
    side; polygons: a quarter of the shorter bounding-box side), so that resting contact is no penetration."""
    half_short = 0.5 * torch.minimum(body[..., WIDTH], body[..., HEIGHT])
    return torch.where(
        body[..., IS_CIRCLE] > 0.5,
        body[..., RADIUS],
        torch.where(body[..., IS_BOX] > 0.5, half_short, 0.5 * half_short),
    )


def static_penetration(pos, radius, statics, static_mask) -> torch.Tensor:
    """pos [R, T, 2] (R bodies), radius [R], statics [R, S, 7] (each body's scene's capsules),
    static_mask [R, S] -> [R, T]: px by which each body's inscribed circle is inside static capsules,
    summed over capsules."""
    _, surface = capsule_geometry(
        pos.unsqueeze(2), statics[:, None, :, 0:2], statics[:, None, :, 2:4], statics[:, None, :, 4]
    )  # [R, T, S]
    depth = F.relu(radius[:, None, None] - surface) * static_mask[:, None, :]
    return depth.sum(-1)


def body_penetration(pos, radius, pair_mask) -> torch.Tensor:
    """pos [B, T, N, 2], radius [B, N], pair_mask [B, N, N] (pairs that may not overlap) -> [B, T, N]: px
    of overlap of each body's inscribed circle with the others', summed over the others."""
    dist = (pos.unsqueeze(3) - pos.unsqueeze(2)).norm(dim=-1)  # [B, T, N, N]
    overlap = F.relu(radius[:, None, :, None] + radius[:, None, None, :] - dist)
    return (overlap * pair_mask[:, None]).sum(-1)


def jerk(accel_normalised: torch.Tensor) -> torch.Tensor:
    """accel [B, T, N, 3] -> [B, T-1, N]: squared change of the (normalised) acceleration between frames."""
    return (accel_normalised[:, 1:] - accel_normalised[:, :-1]).square().sum(-1)


# ---------------------------------------------------------------- the network
#
# Inside the network a batch is a list of R body rows (the real bodies of every scene, no padding):
# hidden [R, T, d]. The scan runs over each row's frames; the body-mixing attention runs over edges
# (receiver, sender) between rows of the same scene at the same frame, flattened as row * T + frame.


class BodyMixing(nn.Module):
    """Attention over the bodies of one scene at each frame, geometry as bias and message."""

    def __init__(self, config: SSMConfig):
        super().__init__()
        d = config.d_model
        self.heads, self.head_dim = config.heads, d // config.heads
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.pair_bias = nn.Linear(PAIR_FEATURES, config.heads)
        self.pair_value = nn.Linear(PAIR_FEATURES, self.head_dim)
        self.out = nn.Linear(d, d)

    def forward(self, hidden, edges):
        # hidden [R, T, d]; edges: receivers, senders [E] into R * T, pair [E, PAIR_FEATURES]
        rows, steps, d = hidden.shape
        recv, send, pair = edges["receivers"], edges["senders"], edges["pair"]
        q, k, v = self.qkv(self.norm(hidden)).view(rows * steps, 3, self.heads, self.head_dim).unbind(1)
        logits = (q[recv] * k[send]).sum(-1) / math.sqrt(self.head_dim) + self.pair_bias(pair)  # [E, H]
        # softmax over each receiver's edges (every node has its self edge, so none is empty)
        top = torch.full((rows * steps, self.heads), float("-inf"), dtype=logits.dtype, device=logits.device)
        top = top.scatter_reduce(0, recv[:, None].expand_as(logits), logits.detach(), "amax")
        weight = torch.exp(logits - top[recv])  # [E, H]
        total = torch.zeros_like(top).index_add_(0, recv, weight)  # [R*T, H]
        attn = weight / total[recv]
        value = v[send] + self.pair_value(pair).unsqueeze(1)  # [E, H, c]: geometry in the message
        msg = torch.zeros_like(q).index_add_(0, recv, attn.unsqueeze(-1) * value)  # [R*T, H, c]
        return hidden + self.out(msg.view(rows, steps, d))


class SSMLayer(nn.Module):
    def __init__(self, config: SSMConfig):
        super().__init__()
        self.mix = BodyMixing(config)
        self.norm = nn.LayerNorm(config.d_model)
        self.mamba = MambaBlock(config)


class PhysicsSSM(nn.Module):
    def __init__(self, config: SSMConfig, stats: dict | None = None):
        super().__init__()
        self.config = config
        register_motion_stats(self, stats)
        d = config.d_model
        self.frame_encoder = nn.Sequential(nn.Linear(FRAME_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
        self.static_encoder = nn.Sequential(nn.Linear(STATIC_EDGE_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
        self.layers = nn.ModuleList(SSMLayer(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(d)
        self.decoder = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 3))
        if config.gate:
            self.physics_encoder = nn.Sequential(nn.Linear(PHYSICS_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
            self.gate_proj = nn.Linear(2 * d, 3)
        self.forced_gate: float | None = None  # tests and ablations: a fixed gate instead of the learned one

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------ features of frames

    @staticmethod
    def rows(scene: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(scene, body) of every real body, scene-major: the R rows the network works on."""
        return scene["body_mask"].nonzero(as_tuple=True)

    def _inputs(self, states, scene):
        """states [B, T, N, 6] (padded) -> (hidden [R, T, d], edges, physics [R, T, PHYSICS_FEATURES])."""
        cfg, scale = self.config, self.config.length_scale
        b, t, n, _ = states.shape
        body, mask = scene["body"], scene["body_mask"]  # [B, N, 11], [B, N]
        sc, who = self.rows(scene)  # [R]
        r = sc.shape[0]
        row_of = torch.full((b, n), -1, dtype=torch.long, device=states.device)
        row_of[sc, who] = torch.arange(r, device=states.device)
        frames = torch.arange(t, device=states.device)
        pos, angle, vel = states[..., :2], states[..., 2], states[..., 3:]  # padded
        radius_pad = bounding_radius(body.reshape(-1, 11)).view(b, n)  # [B, N]
        row_body, row_state = body[sc, who], states[sc, :, who]  # [R, 11], [R, T, 6]
        radius = radius_pad[sc, who]  # [R]
        kinematic = row_body[:, KINEMATIC] > 0.5
        gravity = scene["gravity"][sc] / GRAVITY_SCALE  # [R, 2]

        # --- per body, constant over time (as the PhysicsExpert's node features)
        mass, moment = row_body[:, MASS], row_body[:, MOMENT]
        has_mass = ~kinematic & (mass > 0)
        log_mass = torch.where(has_mass, torch.log(mass.clamp_min(1e-12)), torch.zeros_like(mass))
        spread = moment / (mass * radius.square()).clamp_min(1e-12)
        log_spread = torch.where(
            has_mass & (radius > 0), torch.log(spread.clamp_min(1e-12)), torch.zeros_like(mass)
        )
        body_static = torch.cat(
            [
                row_body[:, IS_CIRCLE : IS_POLY + 1],  # [R, 3]
                torch.stack([row_body[:, RADIUS], row_body[:, WIDTH], row_body[:, HEIGHT], radius], -1)
                / scale,
                torch.stack([log_mass, log_spread], -1),
                row_body[:, FRICTION : KINEMATIC + 1],
                gravity,
            ],
            dim=-1,
        )  # [R, BODY_STATIC_FEATURES]

        # --- joints to the static world: the fixed anchor and the body's anchor, per frame
        world_joint = states.new_zeros(r, t, WORLD_JOINT_FEATURES)
        ja, jb, js = scene["joint_a"], scene["joint_b"], scene["joint_scene"]
        to_world = (ja >= 0) ^ (jb >= 0)
        if to_world.any():
            a_is_body = ja[to_world] >= 0
            j_body = torch.where(a_is_body, ja[to_world], jb[to_world])  # [Jw]
            j_scene = js[to_world]
            anchors = scene["joint_anchor"][to_world]
            body_anchor = torch.where(a_is_body[:, None], anchors[:, :2], anchors[:, 2:])  # [Jw, 2]
            fixed = torch.where(a_is_body[:, None], anchors[:, 2:], anchors[:, :2])
            body_anchor_rel = rotate(body_anchor[:, None], angle[j_scene, :, j_body])  # [Jw, T, 2]
            fixed_rel = fixed[:, None] - pos[j_scene, :, j_body]  # [Jw, T, 2]
            kind = F.one_hot(scene["joint_kind"][to_world], len(JOINT_KINDS)).to(states.dtype)
            feats = torch.cat(
                [
                    kind[:, None].expand(-1, t, -1),
                    body_anchor_rel / scale,
                    fixed_rel / scale,
                    (fixed_rel - body_anchor_rel).norm(dim=-1, keepdim=True) / scale,
                ],
                dim=-1,
            )  # [Jw, T, WORLD_JOINT_FEATURES]
            world_joint.index_put_((row_of[j_scene, j_body][:, None], frames[None]), feats, accumulate=True)

        velocity = (row_state[..., 3:] - self.velocity_mean) / self.velocity_std  # [R, T, 3]
        row_angle = row_state[..., 2]
        frame = torch.cat(
            [
                velocity,
                torch.stack([torch.sin(row_angle), torch.cos(row_angle)], -1),
                body_static[:, None].expand(r, t, -1),
                world_joint,
            ],
            dim=-1,
        )  # [R, T, FRAME_FEATURES]
        hidden = self.frame_encoder(frame)  # [R, T, d]

        # --- static capsules near each body: encoded and summed into its input
        statics, static_mask = scene["statics"][sc], scene["static_mask"][sc]  # [R, S, 7], [R, S]
        to_surface, surface = capsule_geometry(
            row_state[..., None, :2],
            statics[:, None, :, 0:2],
            statics[:, None, :, 2:4],
            statics[:, None, :, 4],
        )  # [R, T, S, 2], [R, T, S]
        gap = surface - radius[:, None, None]
        near_static = (gap < cfg.static_radius) & static_mask[:, None]
        i, f, s = near_static.nonzero(as_tuple=True)  # body row, frame, capsule of each touching pair
        edge = torch.cat(
            [
                to_surface[i, f, s] / scale,
                surface[i, f, s].unsqueeze(-1) / scale,
                gap[i, f, s].unsqueeze(-1) / scale,
                statics[i, s, 5:7],
            ],
            dim=-1,
        )  # [P, STATIC_EDGE_FEATURES]
        from_statics = hidden.new_zeros(r * t, hidden.shape[-1]).index_add_(
            0, i * t + f, self.static_encoder(edge)
        )
        hidden = hidden + from_statics.view(r, t, -1)

        # --- body pairs of a scene at each frame: candidates on the padded grid, features on the edges
        dist_grid = (pos.unsqueeze(2) - pos.unsqueeze(3)).norm(dim=-1)  # [B, T, N(i), N(j)]
        gap_grid = dist_grid - radius_pad[:, None, :, None] - radius_pad[:, None, None, :]
        jointed = torch.zeros(b, n, n, dtype=torch.bool, device=states.device)
        between = (ja >= 0) & (jb >= 0) & (ja != jb)
        jointed[js[between], ja[between], jb[between]] = True
        jointed[js[between], jb[between], ja[between]] = True
        eye = torch.eye(n, dtype=torch.bool, device=states.device)
        allowed = ((gap_grid < cfg.connectivity_radius) | jointed[:, None] | eye) & (
            mask[:, :, None] & mask[:, None]
        )[:, None]
        g, f, i, j = allowed.nonzero(as_tuple=True)  # scene, frame, receiver, sender
        d = pos[g, f, j] - pos[g, f, i]  # [E, 2]
        anchor_offset = states.new_zeros(d.shape)
        if between.any():  # world position of the sender's anchor minus the receiver's, summed over joints
            a, c, jsc = ja[between], jb[between], js[between]
            anchors = scene["joint_anchor"][between]
            world_a = pos[jsc, :, a] + rotate(anchors[:, None, :2], angle[jsc, :, a])  # [Jb, T, 2]
            world_c = pos[jsc, :, c] + rotate(anchors[:, None, 2:], angle[jsc, :, c])
            grid = states.new_zeros(b, t, n, n, 2)
            grid.index_put_(
                (jsc[:, None], frames[None], a[:, None], c[:, None]), world_c - world_a, accumulate=True
            )
            grid.index_put_(
                (jsc[:, None], frames[None], c[:, None], a[:, None]), world_a - world_c, accumulate=True
            )
            anchor_offset = grid[g, f, i, j]
        pair = torch.cat(
            [
                d / scale,
                dist_grid[g, f, i, j].unsqueeze(-1) / scale,
                gap_grid[g, f, i, j].unsqueeze(-1) / scale,
                (vel[g, f, j] - vel[g, f, i]) / self.velocity_std,
                jointed[g, i, j].unsqueeze(-1).to(states.dtype),
                anchor_offset / scale,
            ],
            dim=-1,
        )  # [E, PAIR_FEATURES]
        edges = {"receivers": row_of[g, i] * t + f, "senders": row_of[g, j] * t + f, "pair": pair}

        # --- what the gate sees besides the SSM's output
        ballistic = self.ballistic_accel(scene, t)  # [R, T, 3]
        nearest = gap.masked_fill(~static_mask[:, None], cfg.static_radius).amin(-1, keepdim=True)
        physics = torch.cat(
            [
                gravity[:, None].expand(r, t, 2),
                (ballistic - self.accel_mean) / self.accel_std,
                nearest.clamp(max=cfg.static_radius) / scale,
                kinematic[:, None, None].expand(r, t, 1).to(states.dtype),
                (world_joint[..., : len(JOINT_KINDS)].sum(-1, keepdim=True) > 0).to(states.dtype),
            ],
            dim=-1,
        )  # [R, T, PHYSICS_FEATURES]
        return hidden, edges, physics

    def ballistic_accel(self, scene, steps: int) -> torch.Tensor:
        """The constraint branch: the world's gravity as (ax, ay), no angular acceleration -> [R, T, 3],
        what evaluation's ballistic baseline integrates."""
        sc, _ = self.rows(scene)
        g = scene["gravity"][sc]  # [R, 2]
        return torch.cat([g, torch.zeros_like(g[:, :1])], dim=-1)[:, None].expand(-1, steps, 3)

    def _decode(self, hidden, physics, scene):
        """hidden [R, T, d] -> (accel [B, T, N, 3] px/s^2, 0 for kinematic bodies and padding; gate
        [R, T, 3] or None)."""
        h = self.final_norm(hidden)
        ssm_accel = self.decoder(h) * self.accel_std + self.accel_mean  # [R, T, 3]
        gate = None
        if self.config.gate:
            gate = torch.sigmoid(self.gate_proj(torch.cat([h, self.physics_encoder(physics)], dim=-1)))
            if self.forced_gate is not None:
                gate = torch.full_like(gate, float(self.forced_gate))
            accel = gate * ssm_accel + (1 - gate) * self.ballistic_accel(scene, hidden.shape[1])
        else:
            accel = ssm_accel
        sc, who = self.rows(scene)
        accel = accel.masked_fill(scene["body"][sc, who, KINEMATIC, None, None] > 0.5, 0.0)
        b, n = scene["body_mask"].shape
        padded = accel.new_zeros(b, hidden.shape[1], n, 3)
        padded[sc, :, who] = accel
        return padded, gate

    # ------------------------------------------------------------ parallel (training) and recurrent (rollout)

    def forward(self, states: torch.Tensor, scene: dict) -> dict:
        """Every frame at once: states [B, T, N, 6] -> {"accel" [B, T, N, 3] (frame t -> t+1),
        "gate" [R, T, 3] or None}."""
        hidden, edges, physics = self._inputs(states, scene)  # hidden [R, T, d]
        for layer in self.layers:
            hidden = layer.mix(hidden, edges)  # across bodies, each frame
            hidden = hidden + layer.mamba(layer.norm(hidden))  # across frames, each body
        accel, gate = self._decode(hidden, physics, scene)
        return {"accel": accel, "gate": gate}

    def init_cache(self, scene: dict) -> list[dict]:
        rows = int(scene["body_mask"].sum())
        return [layer.mamba.init_cache(rows, device=scene["body"].device) for layer in self.layers]

    def step(self, state: torch.Tensor, scene: dict, cache: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        """One frame in constant time: state [B, N, 6] -> (accel [B, N, 3] to the next frame, new cache);
        stepping through frames gives what `forward` gives on them all at once."""
        hidden, edges, physics = self._inputs(state.unsqueeze(1), scene)  # T = 1: hidden [R, 1, d]
        new_cache = []
        for layer, layer_cache in zip(self.layers, cache, strict=True):
            hidden = layer.mix(hidden, edges)
            out, layer_cache = layer.mamba.step(layer.norm(hidden[:, 0]), layer_cache)
            hidden = hidden + out.unsqueeze(1)
            new_cache.append(layer_cache)
        accel, _ = self._decode(hidden, physics, scene)
        return accel[:, 0], new_cache

    # ------------------------------------------------------------ training

    def add_training_noise(
        self,
        batch: dict,
        generator: torch.Generator,
        rows: tuple[int, int] | None = None,
        bodies: int | None = None,
    ) -> dict:
        """A copy of batch with random-walk noise on the input velocities of dynamic bodies (the last
        frame, the target of the last step, stays clean): noise at input frame t is the sum of t + 1
        draws of std noise_std * velocity_std / sqrt(T), positions and angles re-integrated with the
        noisy velocities (c = (K-1)/(2K) for K substeps, as `integrate`), so the input is a consistent
        trajectory that drifts; the targets, computed from these inputs and the clean next frames, teach
        the model to pull a drifted trajectory back. `rows=(offset, total)` and `bodies` (the most bodies
        of any sequence): this batch is rows offset.. of a global batch split over training processes;
        the global batch's draws are made and this batch's part kept, so several processes add the noise
        one process would (training/distributed.global_rows)."""
        states = batch["states"]  # [B, T+1, N, 6]
        b, steps, n, _ = states.shape
        t = steps - 1
        offset, total = (0, b) if rows is None else rows
        width = n if bodies is None else bodies
        draws = torch.randn((total, t, width, 3), generator=generator, dtype=torch.float32)
        draws = draws[offset : offset + b, :, :n].to(states.dtype)
        noise = torch.cumsum(
            draws * (self.config.noise_std * self.velocity_std / t**0.5), dim=1
        )  # [B, T, N, 3]
        noise = noise * (batch["body"][..., KINEMATIC] < 0.5)[:, None, :, None].to(states.dtype)
        dt = batch["dt"][:, None, None, None]
        k = batch["substeps"].to(states.dtype)[:, None, None, None]
        c = (k - 1) / (2 * k)
        moves = dt * ((1 - c) * noise[:, :-1] + c * noise[:, 1:])  # [B, T-1, N, 3]
        drift = torch.cat([torch.zeros_like(noise[:, :1]), torch.cumsum(moves, dim=1)], dim=1)
        noisy = states.clone()
        noisy[:, :t] = states[:, :t] + torch.cat([drift, noise], dim=-1)
        return dict(batch, states=noisy)

    def loss(self, batch: dict, terms: bool = False):
        """Prediction loss (MSE of normalised accelerations, dynamic bodies, every frame) plus the
        weighted physics terms. With terms=True, also a dict of each term's (unweighted) value."""
        cfg = self.config
        states = batch["states"]  # [B, T+1, N, 6]
        inputs, nxt = states[:, :-1], states[:, 1:]
        out = self(inputs, batch)
        accel = out["accel"]  # [B, T, N, 3]
        dt = batch["dt"][:, None, None, None]
        target = (nxt[..., 3:] - inputs[..., 3:]) / dt
        dynamic = (batch["body_mask"] & (batch["body"][..., KINEMATIC] < 0.5))[:, None].expand(
            accel.shape[:3]
        )
        pred_n = (accel - self.accel_mean) / self.accel_std
        target_n = (target - self.accel_mean) / self.accel_std
        prediction = (pred_n - target_n)[dynamic].square().mean() if dynamic.any() else accel.sum() * 0.0
        total = prediction
        values = {"prediction": prediction}
        if cfg.penetration_weight > 0 or cfg.jerk_weight > 0 or terms:
            pen_static, pen_body, jerk_term = self.physics_terms(inputs, accel, pred_n, batch, dynamic)
            total = total + cfg.penetration_weight * (pen_static + pen_body) + cfg.jerk_weight * jerk_term
            values.update(penetration_static=pen_static, penetration_body=pen_body, jerk=jerk_term)
        return (total, values) if terms else total

    def physics_terms(self, inputs, accel, accel_normalised, batch, dynamic):
        """(static penetration, body penetration, jerk) of the one-step predictions: mean over dynamic
        body-frames of (depth / length_scale)^2, and mean of the squared normalised jerk."""
        scale = self.config.length_scale
        nxt = integrate(inputs, accel, batch["dt"][:, None, None], batch["substeps"][:, None, None])
        radius = inscribed_radius(batch["body"])  # [B, N]
        pos = nxt[..., :2]
        sc, who = self.rows(batch)
        pen_s = torch.zeros_like(pos[..., 0])  # [B, T, N]
        pen_s[sc, :, who] = static_penetration(
            pos[sc, :, who], radius[sc, who], batch["statics"][sc], batch["static_mask"][sc]
        )
        b, n = radius.shape
        pairs = batch["body_mask"][:, :, None] & batch["body_mask"][:, None, :]
        pairs &= ~torch.eye(n, dtype=torch.bool, device=pos.device)
        ja, jb, js = batch["joint_a"], batch["joint_b"], batch["joint_scene"]
        between = (ja >= 0) & (jb >= 0)
        pairs[js[between], ja[between], jb[between]] = False  # jointed bodies may overlap by design
        pairs[js[between], jb[between], ja[between]] = False
        pen_b = body_penetration(pos, radius, pairs)
        zero = accel.sum() * 0.0
        pen_static = ((pen_s / scale).square()[dynamic]).mean() if dynamic.any() else zero
        pen_body = ((pen_b / scale).square()[dynamic]).mean() if dynamic.any() else zero
        dyn_j = dynamic[:, 1:]
        jerk_term = jerk(accel_normalised)[dyn_j].mean() if dyn_j.any() else zero
        return pen_static, pen_body, jerk_term


# ---------------------------------------------------------------- rollouts and the family contract


@torch.no_grad()
def rollouts(model: PhysicsSSM, scenes: list[dict], context: int, rollout: int, batch_size: int = 64):
    """Roll out many scenes at once: the context frames run through `step` (their true states), then
    each predicted frame is fed back; the state carries on, one constant-time step per frame. Kinematic
    bodies follow their ground truth, as in every evaluation rollout. -> [context + rollout, N, 6] each."""
    from physworld.models.rollout_utils import kinematic_mask

    if context < 1:
        raise ValueError("--context-frames must be at least 1")
    model.eval()
    preds = []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        scene = pad_scenes([scene_arrays(s["spec"]) for s in chunk])
        b, n = scene["body"].shape[:2]
        pred = np.zeros((b, context + rollout, n, 6), np.float32)
        kin = np.zeros((b, n), bool)
        truth = np.zeros((b, context + rollout, n, 6), np.float32)
        for i, s in enumerate(chunk):
            nb = s["states"].shape[1]
            truth[i, :, :nb] = s["states"][: context + rollout]
            kin[i, :nb] = kinematic_mask(s["spec"])
        pred[:, :context] = truth[:, :context]
        cache = model.init_cache(scene)
        dt, substeps = scene["dt"][:, None], scene["substeps"][:, None]
        for t in range(context + rollout - 1):
            current = torch.from_numpy(pred[:, t])
            accel, cache = model.step(current, scene, cache)
            if t >= context - 1:
                nxt = integrate(current, accel, dt, substeps).numpy()
                pred[:, t + 1] = np.where(kin[..., None], truth[:, t + 1], nxt)
        preds.extend(pred[i, :, : s["states"].shape[1]].copy() for i, s in enumerate(chunk))
    return preds


def load_model(checkpoint) -> tuple[PhysicsSSM, dict]:
    """A trained PhysicsSSM and its run info from a recipe checkpoint (safetensors; nothing unpickled)."""
    from physworld.training.checkpoint import load_run, restore

    ckpt, info = load_run(checkpoint, "ssm")
    model = PhysicsSSM(SSMConfig(**info["model_config"]))
    restore(ckpt, model, rng=False)
    return model.eval(), info


def load_predictor(checkpoint):
    """The family contract: (rollout(scenes, context_frames, rollout_frames) -> (predictions, parse
    failures per scene), run info)."""
    model, info = load_model(checkpoint)
    return (lambda scenes, c, r: (rollouts(model, scenes, c, r), [0] * len(scenes))), info
