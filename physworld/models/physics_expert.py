"""PhysicsExpert: an object-centric graph network that learns one frame of 2D rigid-body physics.

Encode-process-decode, as in interaction networks (Battaglia et al. 2016) and learned simulators
(Sanchez-Gonzalez et al. 2020, "Learning to Simulate"), in plain torch (index_add_, no torch_geometric).
It consumes the graph batch of docs/GRAPH_BATCH.md and predicts each body's acceleration over the
next frame; `integrate` turns that into the next state.

Graph (built inside the model from the positions at frame t, history[:, -1], one graph per scene,
never across graphs):

- nodes, one per body: the k-frame velocity history (vx, vy, w; normalised with velocity_mean/std),
  sin/cos of the angle at t, shape one-hot, sizes (radius, width, height, bounding radius) / length_scale,
  log mass, log(moment / (mass R^2)) (how the mass is spread; 0 for kinematic bodies), friction,
  elasticity, kinematic flag, and the graph's gravity / 981. No absolute position: positions enter only
  through edges, so the model is translation invariant.
- body-body edges, sender -> receiver, of two sorts sharing one encoder:
  * proximity: both directions between bodies whose surfaces (centre distance minus both bounding
    radii) are closer than connectivity_radius;
  * joints: each joint between two bodies gives an edge in both directions, with the joint kind
    one-hot and both anchors' world positions relative to the receiver's centre.
  Features: displacement, distance, surface gap, relative velocity (vx, vy, w), sin/cos of the relative
  angle, jointed (the pair has any joint), is_joint_edge, kind one-hot, anchors, anchor separation.
- world edges, from the static world to a body (sum-reduced into the body's node update), also two sorts
  sharing one encoder:
  * static capsules (ax, ay, bx, by, radius, friction, elasticity) whose surface is within static_radius
    of the body's surface: vector from the body's centre to the closest point of the capsule's surface,
    its signed length, the gap to the body's surface (bounding radius), the capsule's friction and
    elasticity;
  * joints to the world (index -1): an edge to a fixed anchor point, with the kind one-hot, the body's
    anchor and the world anchor relative to the body's centre, and their separation.

Processor: message_passing_steps interaction layers with separate weights per round (as in GNS):
edge MLP on [edge, receiver, sender], world-edge MLP on [world edge, body], node MLP on
[node, sum of incoming edges, sum of incoming world edges], each with a residual; every MLP has
mlp_layers hidden layers of width `hidden` and ends in a LayerNorm (except the decoder).

Decoder: MLP to a normalised acceleration [N, 3] (ax, ay, angular acceleration); `accelerations`
de-normalises with the accel_mean/std buffers. Kinematic bodies are not predicted: `accelerations`
returns 0 for them (constant velocity), and `step` puts them on batch["next"] when the batch has it.

Training noise (`add_training_noise`): a random walk on the velocity history of dynamic bodies, with
positions and angles re-integrated consistently under the integrator below, and the target adjusted so
the noisy last velocity plus target * dt is still the true next velocity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# The integration rule belongs to the data (how consecutive frames relate), so it lives with the view.
from physworld.data.windows import integrate  # noqa: F401  (re-exported: models.physics_expert.integrate)

# BODY_FEATURES columns (docs/GRAPH_BATCH.md)
IS_CIRCLE, IS_BOX, IS_POLY, RADIUS, WIDTH, HEIGHT, MASS, MOMENT, FRICTION, ELASTICITY, KINEMATIC = range(11)
JOINT_KINDS = ("pin", "pivot", "slide", "spring", "motor", "rotary_limit")
GRAVITY_SCALE = 981.0  # px/s^2: the world's default |gravity|

NODE_STATIC_FEATURES = (
    2 + 3 + 4 + 2 + 3 + 2
)  # sin/cos, shape, sizes, log mass/inertia, fric/elas/kin, gravity
EDGE_FEATURES = 2 + 1 + 1 + 3 + 2 + 1 + 1 + len(JOINT_KINDS) + 2 + 2 + 1
WORLD_FEATURES = 2 + 1 + 1 + 2 + 1 + len(JOINT_KINDS) + 2 + 2 + 1


@dataclass
class PhysicsExpertConfig:
    history: int = 5  # k: frames of velocity history per body
    hidden: int = 128  # latent width of nodes, edges and MLP hidden layers
    mlp_layers: int = 2  # hidden layers per MLP
    message_passing_steps: int = 5  # interaction layers, each with its own weights
    connectivity_radius: float = 20.0  # px: body-body edge when the surface gap is below this
    static_radius: float = 20.0  # px: body-static edge when the gap to the capsule is below this
    noise_std: float = 0.02  # random-walk noise on the last input velocity, in units of velocity_std
    dropout: float = 0.0
    layer_norm: bool = True
    length_scale: float = 100.0  # px: positions and sizes are divided by this


# ---------------------------------------------------------------- integration and geometry


def bounding_radius(body: torch.Tensor) -> torch.Tensor:
    """body [N, 11] -> [N]: radius of the smallest centred circle containing the body (boxes: half diagonal)."""
    half_diagonal = 0.5 * torch.hypot(body[:, WIDTH], body[:, HEIGHT])
    return torch.where(body[:, IS_BOX] > 0.5, torch.maximum(half_diagonal, body[:, RADIUS]), body[:, RADIUS])


def rotate(v: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """v [..., 2] rotated counter-clockwise by angle [...]."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([cos * v[..., 0] - sin * v[..., 1], sin * v[..., 0] + cos * v[..., 1]], dim=-1)


def capsule_geometry(p, a, b, radius):
    """Points p [..., 2] against capsules a, b [..., 2], radius [...] (broadcast) ->
    (vector [..., 2] from p to the closest point of the capsule's surface, signed distance [...] from p to
    that surface, negative inside)."""
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)
    closest = a + t.clamp(0.0, 1.0).unsqueeze(-1) * ab  # on the capsule's axis
    to_axis = closest - p
    length = to_axis.norm(dim=-1)
    surface = length - radius
    return to_axis / length.clamp_min(1e-9).unsqueeze(-1) * surface.unsqueeze(-1), surface


def _slots(index: torch.Tensor, num_graphs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows tagged with their graph, index [R] -> (slot [B, M]: row number of each graph's m-th row or -1,
    local [R]: each row's position within its graph). Rows need not be sorted by graph."""
    rows = index.shape[0]
    counts = torch.bincount(index, minlength=num_graphs)
    width = int(counts.max()) if rows > 0 else 0
    order = torch.argsort(index, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    arange = torch.arange(rows, device=index.device)
    local = torch.empty_like(index)
    local[order] = arange - starts[index[order]]
    slot = torch.full((num_graphs, width), -1, dtype=torch.long, device=index.device)
    slot[index, local] = arange
    return slot, local


# ---------------------------------------------------------------- the network


def mlp(in_dim: int, out_dim: int, config: PhysicsExpertConfig, layer_norm: bool) -> nn.Sequential:
    layers, width = [], in_dim
    for _ in range(config.mlp_layers):
        layers += [nn.Linear(width, config.hidden), nn.ReLU()]
        if config.dropout > 0:
            layers.append(nn.Dropout(config.dropout))
        width = config.hidden
    layers.append(nn.Linear(width, out_dim))
    if layer_norm:
        layers.append(nn.LayerNorm(out_dim))
    return nn.Sequential(*layers)


class InteractionLayer(nn.Module):
    """One round of message passing with residual updates of edges, world edges and nodes."""

    def __init__(self, config: PhysicsExpertConfig):
        super().__init__()
        h, ln = config.hidden, config.layer_norm
        self.edge_mlp = mlp(3 * h, h, config, ln)
        self.world_mlp = mlp(2 * h, h, config, ln)
        self.node_mlp = mlp(3 * h, h, config, ln)

    def forward(self, nodes, edges, world, receivers, senders, world_body):
        # nodes [N, H], edges [E, H], world [W, H]; receivers, senders [E]; world_body [W]
        edges = edges + self.edge_mlp(torch.cat([edges, nodes[receivers], nodes[senders]], dim=-1))
        world = world + self.world_mlp(torch.cat([world, nodes[world_body]], dim=-1))
        incoming = torch.zeros_like(nodes).index_add_(0, receivers, edges)  # [N, H]
        from_world = torch.zeros_like(nodes).index_add_(0, world_body, world)  # [N, H]
        nodes = nodes + self.node_mlp(torch.cat([nodes, incoming, from_world], dim=-1))
        return nodes, edges, world


def register_motion_stats(module: nn.Module, stats: dict | None, width: int = 3) -> None:
    """The dataset's velocity and acceleration normalisation as buffers (velocity_mean/std,
    accel_mean/std, each [width]: x, y, angle in 2D; the 3D model's are [6]: linear, angular), saved
    with the weights; identity when stats is None."""
    for name in ("velocity", "accel"):
        mean = np.zeros(width) if stats is None else np.asarray(stats[f"{name}_mean"], dtype=np.float64)
        std = np.ones(width) if stats is None else np.asarray(stats[f"{name}_std"], dtype=np.float64)
        if mean.shape != (width,) or std.shape != (width,) or not np.all(std > 0):
            raise ValueError(f"stats: {name}_mean and {name}_std must have shape [{width}], std > 0")
        module.register_buffer(f"{name}_mean", torch.tensor(mean, dtype=torch.float32))
        module.register_buffer(f"{name}_std", torch.tensor(std, dtype=torch.float32))


class PhysicsExpert(nn.Module):
    position = slice(0, 2)  # the state's position columns (the recipe's validation error)
    position_unit = "px"

    def __init__(self, config: PhysicsExpertConfig, stats: dict | None = None):
        super().__init__()
        self.config = config
        register_motion_stats(self, stats)
        h, ln = config.hidden, config.layer_norm
        self.node_encoder = mlp(3 * config.history + NODE_STATIC_FEATURES, h, config, ln)
        self.edge_encoder = mlp(EDGE_FEATURES, h, config, ln)
        self.world_encoder = mlp(WORLD_FEATURES, h, config, ln)
        self.processor = nn.ModuleList(InteractionLayer(config) for _ in range(config.message_passing_steps))
        self.decoder = mlp(h, 3, config, layer_norm=False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------ features and graph

    def node_features(self, batch: dict) -> torch.Tensor:
        history, body = batch["history"], batch["body"]  # [N, k, 6], [N, 11]
        n, k = history.shape[0], history.shape[1]
        if k != self.config.history:
            raise ValueError(f"history has {k} frames; the model was configured for {self.config.history}")
        scale = self.config.length_scale
        velocity = ((history[..., 3:] - self.velocity_mean) / self.velocity_std).reshape(n, 3 * k)
        angle = history[:, -1, 2]
        radius = bounding_radius(body)
        mass, moment = body[:, MASS], body[:, MOMENT]
        has_mass = (body[:, KINEMATIC] < 0.5) & (mass > 0)
        log_mass = torch.where(has_mass, torch.log(mass.clamp_min(1e-12)), torch.zeros_like(mass))
        spread = moment / (mass * radius.square()).clamp_min(1e-12)
        log_spread = torch.where(
            has_mass & (radius > 0), torch.log(spread.clamp_min(1e-12)), torch.zeros_like(mass)
        )
        gravity = batch["gravity"][batch["batch"]] / GRAVITY_SCALE  # [N, 2]
        return torch.cat(
            [
                velocity,  # [N, 3k]
                torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1),  # [N, 2]
                body[:, IS_CIRCLE : IS_POLY + 1],  # [N, 3]
                torch.stack([body[:, RADIUS], body[:, WIDTH], body[:, HEIGHT], radius], dim=-1) / scale,
                torch.stack([log_mass, log_spread], dim=-1),  # [N, 2]
                body[:, FRICTION : KINEMATIC + 1],  # [N, 3]
                gravity,
            ],
            dim=-1,
        )

    def build_graph(self, batch: dict) -> dict:
        """Edges from the positions at frame t. Returns receivers, senders [E] with edge_features
        [E, EDGE_FEATURES] (proximity edges first, then joint edges), world_body [W] with world_features
        [W, WORLD_FEATURES] (static edges first, then world-joint edges), and num_proximity, num_static."""
        cfg = self.config
        scale = cfg.length_scale
        state = batch["history"][:, -1]  # [N, 6]
        pos, angle, vel = state[:, :2], state[:, 2], state[:, 3:]
        body, graph_of = batch["body"], batch["batch"]
        radius = bounding_radius(body)  # [N]
        num_graphs = int(batch.get("num_graphs", batch["gravity"].shape[0]))
        device = pos.device
        kind_eye = torch.eye(len(JOINT_KINDS), dtype=pos.dtype, device=device)

        # --- proximity candidates per graph on a padded [B, M, M] grid (never across graphs)
        slot, local = _slots(graph_of, num_graphs)  # [B, M], [N]
        valid = slot >= 0
        pos_g, rad_g = pos[slot.clamp_min(0)], radius[slot.clamp_min(0)]  # [B, M, 2], [B, M]
        gap_g = (pos_g[:, :, None] - pos_g[:, None]).norm(dim=-1) - rad_g[:, :, None] - rad_g[:, None]
        near = (gap_g < cfg.connectivity_radius) & valid[:, :, None] & valid[:, None]  # [B, M, M]
        near &= ~torch.eye(slot.shape[1], dtype=torch.bool, device=device)
        g, i, j = near.nonzero(as_tuple=True)
        prox_recv, prox_send = slot[g, i], slot[g, j]  # [P]

        joint_index = batch["joint_index"].reshape(-1, 2)  # [J, 2]
        joint_kind = batch["joint_kind"].reshape(-1)  # [J]
        anchor = batch["joint_anchor"].reshape(-1, 4)  # [J, 4]
        ja, jb = joint_index[:, 0], joint_index[:, 1]
        between = (ja >= 0) & (jb >= 0) & (ja != jb)
        jointed = torch.zeros_like(near)
        a, b = ja[between], jb[between]
        jointed[graph_of[a], local[a], local[b]] = True
        jointed[graph_of[b], local[b], local[a]] = True

        # --- joint edges between bodies, both directions
        kind = joint_kind[between]
        anc_a, anc_b = anchor[between, :2], anchor[between, 2:]
        joint_recv, joint_send = torch.cat([a, b]), torch.cat([b, a])  # [2J']
        recv_anchor = torch.cat([anc_a, anc_b])  # in the receiver's frame
        send_anchor = torch.cat([anc_b, anc_a])  # in the sender's frame

        receivers = torch.cat([prox_recv, joint_recv])  # [E]
        senders = torch.cat([prox_send, joint_send])  # [E]
        num_prox, num_joint = prox_recv.shape[0], joint_recv.shape[0]
        d = pos[senders] - pos[receivers]  # [E, 2]
        dist = d.norm(dim=-1)
        rel_angle = angle[senders] - angle[receivers]
        recv_anchor_rel = rotate(recv_anchor, angle[joint_recv])  # world anchor - receiver centre
        send_anchor_rel = pos[joint_send] + rotate(send_anchor, angle[joint_send]) - pos[joint_recv]
        zeros = pos.new_zeros
        joint_part = torch.cat(
            [
                torch.ones(num_joint, 2, dtype=pos.dtype, device=device),  # jointed, is_joint_edge
                kind_eye[kind.repeat(2)],
                recv_anchor_rel / scale,
                send_anchor_rel / scale,
                (send_anchor_rel - recv_anchor_rel).norm(dim=-1, keepdim=True) / scale,
            ],
            dim=-1,
        )
        prox_part = torch.cat(
            [
                jointed[g, i, j].to(pos.dtype).unsqueeze(-1),
                zeros(num_prox, joint_part.shape[1] - 1),
            ],
            dim=-1,
        )
        edge_features = torch.cat(
            [
                d / scale,  # [E, 2]
                dist.unsqueeze(-1) / scale,
                (dist - radius[senders] - radius[receivers]).unsqueeze(-1) / scale,
                (vel[senders] - vel[receivers]) / self.velocity_std,  # [E, 3]
                torch.stack([torch.sin(rel_angle), torch.cos(rel_angle)], dim=-1),
                torch.cat([prox_part, joint_part]),  # [E, 1 + 1 + kinds + 5]
            ],
            dim=-1,
        )

        # --- static capsules per graph on a padded [B, M, S] grid
        statics = batch["statics"].reshape(-1, 7)  # [S, 7]
        s_slot, _ = _slots(batch["statics_batch"].reshape(-1), num_graphs)  # [B, S]
        cap = statics[s_slot.clamp_min(0)]  # [B, S, 7]
        to_surface, surface = capsule_geometry(
            pos_g[:, :, None], cap[:, None, :, 0:2], cap[:, None, :, 2:4], cap[:, None, :, 4]
        )  # [B, M, S, 2], [B, M, S]
        s_gap = surface - rad_g[:, :, None]
        touch = (s_gap < cfg.static_radius) & valid[:, :, None] & (s_slot >= 0)[:, None]
        g, i, s = touch.nonzero(as_tuple=True)
        static_body, static_row = slot[g, i], s_slot[g, s]  # [Ws]
        static_features = torch.cat(
            [
                to_surface[g, i, s] / scale,
                surface[g, i, s].unsqueeze(-1) / scale,
                s_gap[g, i, s].unsqueeze(-1) / scale,
                statics[static_row, 5:7],
                zeros(static_row.shape[0], WORLD_FEATURES - 6),
            ],
            dim=-1,
        )

        # --- joints to the static world: an edge from a fixed anchor point
        to_world = (ja >= 0) ^ (jb >= 0)
        a_is_body = ja[to_world] >= 0
        world_body_j = torch.where(a_is_body, ja[to_world], jb[to_world])
        body_anchor = torch.where(a_is_body[:, None], anchor[to_world, :2], anchor[to_world, 2:])
        fixed_anchor = torch.where(a_is_body[:, None], anchor[to_world, 2:], anchor[to_world, :2])
        body_anchor_rel = rotate(body_anchor, angle[world_body_j])
        fixed_anchor_rel = fixed_anchor - pos[world_body_j]
        joint_world_features = torch.cat(
            [
                zeros(world_body_j.shape[0], 6),
                torch.ones(world_body_j.shape[0], 1, dtype=pos.dtype, device=device),
                kind_eye[joint_kind[to_world]],
                body_anchor_rel / scale,
                fixed_anchor_rel / scale,
                (fixed_anchor_rel - body_anchor_rel).norm(dim=-1, keepdim=True) / scale,
            ],
            dim=-1,
        )
        return {
            "receivers": receivers,
            "senders": senders,
            "edge_features": edge_features,
            "world_body": torch.cat([static_body, world_body_j]),
            "world_features": torch.cat([static_features, joint_world_features]),
            "static_row": static_row,
            "num_proximity": num_prox,
            "num_static": static_body.shape[0],
        }

    # ------------------------------------------------------------ prediction

    def forward(self, batch: dict) -> torch.Tensor:
        """-> normalised accelerations [N, 3]."""
        graph = self.build_graph(batch)
        nodes = self.node_encoder(self.node_features(batch))  # [N, H]
        edges = self.edge_encoder(graph["edge_features"])  # [E, H]
        world = self.world_encoder(graph["world_features"])  # [W, H]
        for layer in self.processor:
            nodes, edges, world = layer(
                nodes, edges, world, graph["receivers"], graph["senders"], graph["world_body"]
            )
        return self.decoder(nodes)  # [N, 3]

    def accelerations(self, batch: dict) -> torch.Tensor:
        """-> accelerations [N, 3] in px/s^2 and rad/s^2; 0 for kinematic bodies (not predicted)."""
        accel = self(batch) * self.accel_std + self.accel_mean
        kinematic = batch["body"][:, KINEMATIC] > 0.5
        return accel.masked_fill(kinematic[:, None], 0.0)

    def step(self, batch: dict) -> torch.Tensor:
        """-> the next state [N, 6]. Kinematic bodies follow batch["next"] when present, else keep
        their velocity (acceleration 0)."""
        graph_of = batch["batch"]
        state = batch["history"][:, -1]
        nxt = integrate(state, self.accelerations(batch), batch["dt"][graph_of], batch["substeps"][graph_of])
        if "next" in batch:
            kinematic = batch["body"][:, KINEMATIC] > 0.5
            nxt = torch.where(kinematic[:, None], batch["next"].to(nxt.dtype), nxt)
        return nxt

    def loss(self, batch: dict) -> torch.Tensor:
        """MSE of normalised accelerations over dynamic bodies (mean over bodies and components)."""
        pred = self(batch)  # [N, 3]
        target = (batch["target"] - self.accel_mean) / self.accel_std
        dynamic = batch["body"][:, KINEMATIC] < 0.5
        err = (pred - target)[dynamic]
        return err.square().mean() if err.numel() else pred.sum() * 0.0

    def add_training_noise(
        self, batch: dict, noise_std: float, generator: torch.Generator, rows: tuple[int, int] | None = None
    ) -> dict:
        """A copy of batch with random-walk noise on the velocity history of dynamic bodies.

        The noise at frame i of k is the sum of i + 1 Gaussian draws of std noise_std * velocity_std /
        sqrt(k), so the last frame's noise has std noise_std * velocity_std. Positions and angles are
        re-integrated with the noisy velocities (frame t-k+1 unchanged; each later frame moves by
        dt ((1 - c) n[i-1] + c n[i]) more, c = (K-1)/(2K) for K substeps). The target becomes
        target - n[t] / dt, so noisy v[t] + target * dt is still the clean v[t+1] (the model learns to
        correct the noise). batch["next"] is left as is. Randomness comes from `generator` only.
        `rows=(offset, total)`: this batch is rows offset.. of a global batch of `total` rows split over
        training processes; the draws for all `total` rows are made and this batch's slice kept, so
        several processes add the noise one process would (training/distributed.global_rows).
        """
        history = batch["history"]  # [N, k, 6]
        n, k = history.shape[0], history.shape[1]
        offset, total = (0, n) if rows is None else rows
        draws = torch.randn((total, k, 3), generator=generator, device=generator.device, dtype=torch.float32)
        draws = draws[offset : offset + n]
        draws = draws.to(device=history.device, dtype=history.dtype)
        sigma = noise_std * self.velocity_std.to(history.dtype) / k**0.5  # [3]
        noise = torch.cumsum(draws * sigma, dim=1)  # [N, k, 3]
        noise = noise * (batch["body"][:, KINEMATIC] < 0.5).to(history.dtype)[:, None, None]
        graph_of = batch["batch"]
        dt = batch["dt"][graph_of].to(history.dtype)[:, None, None]  # [N, 1, 1]
        substeps = batch["substeps"][graph_of].to(history.dtype)[:, None, None]
        c = (substeps - 1) / (2 * substeps)
        moves = dt * ((1 - c) * noise[:, :-1] + c * noise[:, 1:])  # [N, k-1, 3]
        drift = torch.cat([torch.zeros_like(noise[:, :1]), torch.cumsum(moves, dim=1)], dim=1)  # [N, k, 3]
        out = dict(batch)
        out["history"] = history + torch.cat([drift, noise], dim=-1)
        out["target"] = batch["target"] - noise[:, -1] / dt[:, 0]
        return out

    @torch.no_grad()
    def flops_per_forward(self, batch: dict) -> int:
        """FLOPs of one forward pass on batch as counted by torch's FlopCounterMode (matmuls; the
        gathers, index_add_ and elementwise ops are not counted)."""
        with FlopCounterMode(display=False) as counter:
            self(batch)
        return int(counter.get_total_flops())


# ---------------------------------------------------------------- the family contract: load, then roll out


def load_model(checkpoint) -> tuple[PhysicsExpert, dict]:
    """A trained PhysicsExpert and its run info from a recipe checkpoint (safetensors; nothing unpickled)."""
    from physworld.training.checkpoint import load_run, restore

    ckpt, info = load_run(checkpoint, "physics-expert")
    model = PhysicsExpert(PhysicsExpertConfig(**info["model_config"]))
    restore(ckpt, model, rng=False)
    return model.eval(), info


@torch.no_grad()
def model_rollouts(
    model: nn.Module,
    scenes: list[dict],
    context: int,
    rollout: int,
    batch_size: int = 64,
    integrate_fn=None,
    arrays_of=None,
) -> list[np.ndarray]:
    """Roll a PhysicsExpert out on many scenes at once: each step is one batched forward pass over
    every scene, fed the model's own previous predictions (positions, angles and velocities).
    Kinematic (scripted) bodies follow their ground truth: their motion is an input to the scene.
    The 3D learned simulator rolls out through here too, with its integrator (`integrate_fn`) and its
    per-scene arrays (`arrays_of`, computed once per scene rather than once per step)."""
    from physworld.data import windows
    from physworld.models.rollout_utils import kinematic_mask

    integrate_fn = integrate if integrate_fn is None else integrate_fn
    arrays_of = windows.scene_arrays if arrays_of is None else arrays_of

    k = model.config.history
    if context < 1:
        raise ValueError("--context-frames must be at least 1")
    model.eval()
    preds = []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        arrays = [arrays_of(s["spec"]) for s in chunk]
        pred = [np.empty((context + rollout, *s["states"].shape[1:]), dtype=np.float32) for s in chunk]
        for p, s in zip(pred, chunk, strict=True):
            p[:context] = s["states"][:context]
        kin = [kinematic_mask(s["spec"]) for s in chunk]
        for t in range(context - 1, context + rollout - 1):
            samples = []
            for p, s, a in zip(pred, chunk, arrays, strict=True):
                # The last k frames, repeating the first when the context is shorter than the history.
                idx = np.clip(np.arange(t - k + 1, t + 1), 0, None)
                samples.append(windows.graph_from_scene(s["spec"], p[idx], arrays=a))
            batch = windows.collate_graphs(samples)
            accel = model.accelerations(batch)
            state = batch["history"][:, -1]
            nxt = integrate_fn(
                state, accel, batch["dt"][batch["batch"]], batch["substeps"][batch["batch"]]
            ).numpy()
            offset = 0
            for p, s, km in zip(pred, chunk, kin, strict=True):
                n = p.shape[1]
                p[t + 1] = nxt[offset : offset + n]
                p[t + 1, km] = s["states"][t + 1, km]
                offset += n
        preds.extend(pred)
    return preds


def load_predictor(checkpoint):
    """The trajectory-family contract (physworld/evaluation/families.py): (rollout, run info), where
    rollout(scenes, context_frames, rollout_frames) -> (predictions [C + R, N, 6] per scene, parse
    failures per scene; always 0 here: the model writes numbers, not text)."""
    model, info = load_model(checkpoint)

    def rollout(scenes, context_frames, rollout_frames):
        return model_rollouts(model, scenes, context_frames, rollout_frames), [0] * len(scenes)

    return rollout, info
