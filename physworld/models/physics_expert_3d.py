"""PhysicsExpert3D: an object-centric graph network that learns one frame of 3D rigid-body physics.

The 3D sibling of physics_expert.py (the same encode-process-decode interaction network, the same
InteractionLayer and MLPs, in plain torch) for PyBullet datasets (worlds/spec3d.py): metres, z up,
24 frames/s, states [frames + 1, bodies, 13] = x, y, z, qx, qy, qz, qw, vx, vy, vz, wx, wy, wz.
It consumes the graph batch of docs/GRAPH_BATCH.md (3D widths: data/windows3d.py) and predicts each
body's linear and angular acceleration over the next frame; `integrate_3d` turns that into the next
state (semi-implicit Euler for the position, the exponential map of the angular velocity for the
quaternion, renormalised).

Graph (built inside the model from the state at frame t, history[:, -1], one graph per scene):

- nodes, one per body: the k-frame velocity history (vx, vy, vz, wx, wy, wz; normalised with
  velocity_mean/std), the orientation as the first two columns of its rotation matrix (the continuous
  6D representation of Zhou et al. 2019: q and -q, the same rotation, give the same features, which
  raw quaternions would not), the angular velocity in the body's own frame, shape one-hot (sphere,
  box, cylinder, capsule), sizes / length_scale (radius, height, extents along the body's axes,
  bounding radius), log mass, friction, restitution, effective restitution, rolling and spinning
  friction / length_scale, damping, kinematic flag, and gravity / 9.81. No absolute position: positions
  enter only through edges, so the model is translation invariant (in x and y with the floor, in every
  direction when the statics move along).
- body-body edges, sender -> receiver, sharing one encoder:
  * proximity: both directions between bodies whose bounding spheres are closer than
    connectivity_radius (m);
  * joints (point_to_point): both directions, with both anchors in world coordinates relative to the
    receiver's centre and their separation.
  Features: displacement (world frame and the receiver's frame), distance, bounding-sphere gap,
  relative linear and angular velocity, the relative rotation R_r^T R_s (6D), jointed, is_joint_edge,
  anchors, anchor separation.
- world edges, from static geometry to a body (sum-reduced into the body's node update):
  * planes (the floor) and oriented boxes (ramps, walls, supports) whose closest point is within
    static_radius of the body's bounding sphere: the vector from the body's centre to that point
    (world frame and the body's frame), its signed length (a plane's signed distance), the gap to the
    bounding sphere, the static's friction and restitution and kind;
  * joints to the world: the body's anchor and the fixed world anchor relative to its centre.

Processor and decoder as in 2D (message_passing_steps InteractionLayers with separate weights; MLPs
ending in LayerNorm except the decoder). Decoder: normalised accelerations [N, 6] (linear, angular);
`accelerations` de-normalises with accel_mean/std [6]. Kinematic bodies get 0 (none in today's 3D
types). Training noise: a random walk on the velocity history, positions and orientations
re-integrated to match, and the target corrected, as in 2D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from physworld.data import windows3d
from physworld.data.windows3d import integrate_3d, quat_from_rotation_vector, quat_multiply, quat_to_matrix
from physworld.models.physics_expert import InteractionLayer, _slots, mlp, register_motion_stats

RECIPE_ID = "physics-expert-3d"
_B = {name: k for k, name in enumerate(windows3d.BODY_FEATURES_3D)}
_S = {name: k for k, name in enumerate(windows3d.STATIC_FEATURES_3D)}
KINEMATIC = _B["kinematic"]
GRAVITY_SCALE = 9.81  # m/s^2

NODE_STATIC_FEATURES = 6 + 3 + 4 + 6 + 1 + 3 + 2 + 2 + 1 + 3  # rot6d, w_body, shape, sizes, mass, ...
EDGE_FEATURES = 3 + 1 + 1 + 3 + 3 + 3 + 6 + 1 + 1 + 3 + 3 + 1
WORLD_FEATURES = 3 + 1 + 1 + 3 + 2 + 2 + 1 + 3 + 3 + 1


@dataclass
class PhysicsExpert3DConfig:
    history: int = 5  # k: frames of velocity history per body
    hidden: int = 128  # latent width of nodes, edges and MLP hidden layers
    mlp_layers: int = 2  # hidden layers per MLP
    message_passing_steps: int = 5  # interaction layers, each with its own weights
    connectivity_radius: float = 0.2  # m: body-body edge when the bounding spheres' gap is below this
    static_radius: float = 0.2  # m: body-static edge when the gap to the static is below this
    noise_std: float = 0.02  # random-walk noise on the last input velocity, in units of velocity_std
    dropout: float = 0.0
    layer_norm: bool = True
    length_scale: float = 0.5  # m: positions and sizes are divided by this


def rotation_6d(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> their first two columns [..., 6] (continuous, sign-free)."""
    return torch.cat([rot[..., :, 0], rot[..., :, 1]], dim=-1)


def to_frame(rot: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """World vectors v [..., 3] in the frames of rotations rot [..., 3, 3] (R^T v)."""
    return (rot.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1)


def static_geometry(pos: torch.Tensor, statics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points pos [..., 3] against static pieces [..., 17] (broadcast; STATIC_FEATURES_3D) ->
    (vector [..., 3] from the point to the piece's closest point, signed distance [...]: a plane's
    distance along its normal, negative below it; a box's distance, 0 inside)."""
    centre, half, normal = (
        statics[..., _S["cx"] : _S["cz"] + 1],
        statics[..., _S["half_x"] : _S["half_z"] + 1],
        (statics[..., _S["nx"] : _S["nz"] + 1]),
    )
    offset = pos - centre
    # plane: through `centre`, unit normal
    height = (offset * normal).sum(-1)
    plane_vec = -height.unsqueeze(-1) * normal
    # box: the closest point of the oriented box
    rot = quat_to_matrix(statics[..., _S["qx"] : _S["qw"] + 1])
    local = to_frame(rot, offset)
    clamped = torch.maximum(torch.minimum(local, half), -half)
    box_vec = (rot @ (clamped - local).unsqueeze(-1)).squeeze(-1)
    is_plane = statics[..., _S["is_plane"]] > 0.5
    vec = torch.where(is_plane.unsqueeze(-1), plane_vec, box_vec)
    dist = torch.where(is_plane, height, box_vec.norm(dim=-1))
    return vec, dist


class PhysicsExpert3D(nn.Module):
    position = slice(0, 3)  # the state's position columns (the recipe's validation error)
    position_unit = "m"

    def __init__(self, config: PhysicsExpert3DConfig, stats: dict | None = None):
        super().__init__()
        self.config = config
        register_motion_stats(self, stats, width=6)
        h, ln = config.hidden, config.layer_norm
        self.node_encoder = mlp(6 * config.history + NODE_STATIC_FEATURES, h, config, ln)
        self.edge_encoder = mlp(EDGE_FEATURES, h, config, ln)
        self.world_encoder = mlp(WORLD_FEATURES, h, config, ln)
        self.processor = nn.ModuleList(InteractionLayer(config) for _ in range(config.message_passing_steps))
        self.decoder = mlp(h, 6, config, layer_norm=False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------ features and graph

    def node_features(self, batch: dict, rot: torch.Tensor) -> torch.Tensor:
        history, body = batch["history"], batch["body"]  # [N, k, 13], [N, 19]
        n, k = history.shape[0], history.shape[1]
        if k != self.config.history:
            raise ValueError(f"history has {k} frames; the model was configured for {self.config.history}")
        if history.shape[2] != 13:
            raise ValueError(f"history has {history.shape[2]} state fields; the 3D model reads 13")
        scale = self.config.length_scale
        velocity = ((history[..., 7:13] - self.velocity_mean) / self.velocity_std).reshape(n, 6 * k)
        omega_body = to_frame(rot, history[:, -1, 10:13]) / self.velocity_std[3:6]
        mass = body[:, _B["mass"]]
        has_mass = (body[:, KINEMATIC] < 0.5) & (mass > 0)
        log_mass = torch.where(has_mass, torch.log(mass.clamp_min(1e-12)), torch.zeros_like(mass))
        gravity = batch["gravity"][batch["batch"]] / GRAVITY_SCALE  # [N, 3]
        return torch.cat(
            [
                velocity,  # [N, 6k]
                rotation_6d(rot),  # [N, 6]
                omega_body,  # [N, 3]
                body[:, _B["is_sphere"] : _B["is_capsule"] + 1],  # [N, 4]
                body[:, _B["radius"] : _B["bounding_radius"] + 1] / scale,  # [N, 6]
                log_mass.unsqueeze(-1),  # [N, 1]
                body[:, _B["friction"] : _B["effective_restitution"] + 1],  # [N, 3]
                body[:, _B["rolling_friction"] : _B["spinning_friction"] + 1] / scale,  # [N, 2]
                body[:, _B["linear_damping"] : _B["angular_damping"] + 1],  # [N, 2]
                body[:, KINEMATIC : KINEMATIC + 1],  # [N, 1]
                gravity,  # [N, 3]
            ],
            dim=-1,
        )

    def build_graph(self, batch: dict, rot: torch.Tensor) -> dict:
        """Edges from the state at frame t. Returns receivers, senders [E] with edge_features
        [E, EDGE_FEATURES] (proximity edges first, then joint edges) and world_body [W] with
        world_features [W, WORLD_FEATURES] (static edges first, then world-joint edges)."""
        cfg = self.config
        scale = cfg.length_scale
        state = batch["history"][:, -1]  # [N, 13]
        pos, lin, ang = state[:, 0:3], state[:, 7:10], state[:, 10:13]
        body, graph_of = batch["body"], batch["batch"]
        radius = body[:, _B["bounding_radius"]]  # [N]
        num_graphs = int(batch.get("num_graphs", batch["gravity"].shape[0]))
        device, dtype = pos.device, pos.dtype
        lin_std, ang_std = self.velocity_std[0:3], self.velocity_std[3:6]

        # --- proximity candidates per graph on a padded [B, M, M] grid (never across graphs)
        slot, local = _slots(graph_of, num_graphs)  # [B, M], [N]
        valid = slot >= 0
        pos_g, rad_g = pos[slot.clamp_min(0)], radius[slot.clamp_min(0)]  # [B, M, 3], [B, M]
        gap_g = (pos_g[:, :, None] - pos_g[:, None]).norm(dim=-1) - rad_g[:, :, None] - rad_g[:, None]
        near = (gap_g < cfg.connectivity_radius) & valid[:, :, None] & valid[:, None]  # [B, M, M]
        near &= ~torch.eye(slot.shape[1], dtype=torch.bool, device=device)
        g, i, j = near.nonzero(as_tuple=True)
        prox_recv, prox_send = slot[g, i], slot[g, j]  # [P]

        joint_index = batch["joint_index"].reshape(-1, 2)  # [J, 2]
        anchor = batch["joint_anchor"].reshape(-1, 6)  # [J, 6]
        ja, jb = joint_index[:, 0], joint_index[:, 1]
        between = (ja >= 0) & (jb >= 0) & (ja != jb)
        jointed = torch.zeros_like(near)
        a, b = ja[between], jb[between]
        jointed[graph_of[a], local[a], local[b]] = True
        jointed[graph_of[b], local[b], local[a]] = True

        # --- joint edges between bodies, both directions; anchors in world coordinates
        anc_a, anc_b = anchor[between, :3], anchor[between, 3:]
        joint_recv, joint_send = torch.cat([a, b]), torch.cat([b, a])  # [2J']
        recv_anchor, send_anchor = torch.cat([anc_a, anc_b]), torch.cat([anc_b, anc_a])  # in own frames
        recv_anchor_rel = (rot[joint_recv] @ recv_anchor.unsqueeze(-1)).squeeze(-1)  # - receiver centre
        send_anchor_rel = pos[joint_send] + (rot[joint_send] @ send_anchor.unsqueeze(-1)).squeeze(-1)
        send_anchor_rel = send_anchor_rel - pos[joint_recv]

        receivers = torch.cat([prox_recv, joint_recv])  # [E]
        senders = torch.cat([prox_send, joint_send])  # [E]
        num_prox, num_joint = prox_recv.shape[0], joint_recv.shape[0]
        d = pos[senders] - pos[receivers]  # [E, 3]
        dist = d.norm(dim=-1)
        rot_r = rot[receivers]
        relative_rotation = rot_r.transpose(-1, -2) @ rot[senders]  # [E, 3, 3]
        joint_part = torch.cat(
            [
                torch.ones(num_joint, 2, dtype=dtype, device=device),  # jointed, is_joint_edge
                recv_anchor_rel / scale,
                send_anchor_rel / scale,
                (send_anchor_rel - recv_anchor_rel).norm(dim=-1, keepdim=True) / scale,
            ],
            dim=-1,
        )
        prox_part = torch.cat(
            [jointed[g, i, j].to(dtype).unsqueeze(-1), pos.new_zeros(num_prox, joint_part.shape[1] - 1)],
            dim=-1,
        )
        edge_features = torch.cat(
            [
                d / scale,  # [E, 3]
                dist.unsqueeze(-1) / scale,
                (dist - radius[senders] - radius[receivers]).unsqueeze(-1) / scale,
                to_frame(rot_r, d) / scale,  # [E, 3]
                (lin[senders] - lin[receivers]) / lin_std,  # [E, 3]
                (ang[senders] - ang[receivers]) / ang_std,  # [E, 3]
                rotation_6d(relative_rotation),  # [E, 6]
                torch.cat([prox_part, joint_part]),  # [E, 9]
            ],
            dim=-1,
        )

        # --- static pieces per graph on a padded [B, M, S] grid
        statics = batch["statics"].reshape(-1, len(windows3d.STATIC_FEATURES_3D))  # [S, 17]
        s_slot, _ = _slots(batch["statics_batch"].reshape(-1), num_graphs)  # [B, S]
        piece = statics[s_slot.clamp_min(0)]  # [B, S, 17]
        vec, signed = static_geometry(pos_g[:, :, None], piece[:, None])  # [B, M, S, 3], [B, M, S]
        s_gap = signed - rad_g[:, :, None]
        touch = (s_gap < cfg.static_radius) & valid[:, :, None] & (s_slot >= 0)[:, None]
        g, i, s = touch.nonzero(as_tuple=True)
        static_body, static_row = slot[g, i], s_slot[g, s]  # [Ws]
        v = vec[g, i, s]
        static_features = torch.cat(
            [
                v / scale,  # [Ws, 3]
                signed[g, i, s].unsqueeze(-1) / scale,
                s_gap[g, i, s].unsqueeze(-1) / scale,
                to_frame(rot[static_body], v) / scale,  # [Ws, 3]
                statics[static_row][:, [_S["friction"], _S["restitution"]]],
                statics[static_row][:, [_S["is_plane"], _S["is_box"]]],
                pos.new_zeros(static_row.shape[0], 8),  # the joint part
            ],
            dim=-1,
        )

        # --- joints to the world: an edge from a fixed anchor point
        to_world = (ja >= 0) ^ (jb >= 0)
        a_is_body = ja[to_world] >= 0
        world_body_j = torch.where(a_is_body, ja[to_world], jb[to_world])
        body_anchor = torch.where(a_is_body[:, None], anchor[to_world, :3], anchor[to_world, 3:])
        fixed_anchor = torch.where(a_is_body[:, None], anchor[to_world, 3:], anchor[to_world, :3])
        body_anchor_rel = (rot[world_body_j] @ body_anchor.unsqueeze(-1)).squeeze(-1)
        fixed_anchor_rel = fixed_anchor - pos[world_body_j]
        nw = world_body_j.shape[0]
        joint_world_features = torch.cat(
            [
                pos.new_zeros(nw, 12),
                torch.ones(nw, 1, dtype=dtype, device=device),
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
            "num_proximity": num_prox,
            "num_static": static_body.shape[0],
        }

    # ------------------------------------------------------------ prediction

    def rotations(self, batch: dict) -> torch.Tensor:
        """-> the rotation matrices [N, 3, 3] of the last frame's (renormalised) quaternions."""
        q = batch["history"][:, -1, 3:7]
        return quat_to_matrix(q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    def forward(self, batch: dict) -> torch.Tensor:
        """-> normalised accelerations [N, 6] (linear, angular)."""
        rot = self.rotations(batch)  # [N, 3, 3]
        graph = self.build_graph(batch, rot)
        nodes = self.node_encoder(self.node_features(batch, rot))  # [N, H]
        edges = self.edge_encoder(graph["edge_features"])  # [E, H]
        world = self.world_encoder(graph["world_features"])  # [W, H]
        for layer in self.processor:
            nodes, edges, world = layer(
                nodes, edges, world, graph["receivers"], graph["senders"], graph["world_body"]
            )
        return self.decoder(nodes)  # [N, 6]

    def accelerations(self, batch: dict) -> torch.Tensor:
        """-> accelerations [N, 6] in m/s^2 and rad/s^2 (world frame); 0 for kinematic bodies."""
        accel = self(batch) * self.accel_std + self.accel_mean
        kinematic = batch["body"][:, KINEMATIC] > 0.5
        return accel.masked_fill(kinematic[:, None], 0.0)

    def step(self, batch: dict) -> torch.Tensor:
        """-> the next state [N, 13]. Kinematic bodies follow batch["next"] when present."""
        graph_of = batch["batch"]
        state = batch["history"][:, -1]
        nxt = integrate_3d(
            state, self.accelerations(batch), batch["dt"][graph_of], batch["substeps"][graph_of]
        )
        if "next" in batch:
            kinematic = batch["body"][:, KINEMATIC] > 0.5
            nxt = torch.where(kinematic[:, None], batch["next"].to(nxt.dtype), nxt)
        return nxt

    def loss(self, batch: dict) -> torch.Tensor:
        """MSE of normalised accelerations over dynamic bodies (mean over bodies and 6 components)."""
        pred = self(batch)  # [N, 6]
        target = (batch["target"] - self.accel_mean) / self.accel_std
        dynamic = batch["body"][:, KINEMATIC] < 0.5
        err = (pred - target)[dynamic]
        return err.square().mean() if err.numel() else pred.sum() * 0.0

    def add_training_noise(
        self, batch: dict, noise_std: float, generator: torch.Generator, rows: tuple[int, int] | None = None
    ) -> dict:
        """A copy of batch with random-walk noise on the velocity history (linear and angular) of
        dynamic bodies, as the 2D model's: the last frame's noise has std noise_std * velocity_std;
        positions move by dt ((1 - c) n[i-1] + c n[i]) more per frame (c = (K+1)/(2K), integrate_3d's),
        orientations turn by the same sum of angular noise (exp map, left-multiplied); the target
        becomes target - n[t] / dt. `rows` as in PhysicsExpert.add_training_noise."""
        history = batch["history"]  # [N, k, 13]
        n, k = history.shape[0], history.shape[1]
        offset, total = (0, n) if rows is None else rows
        draws = torch.randn((total, k, 6), generator=generator, device=generator.device, dtype=torch.float32)
        draws = draws[offset : offset + n].to(device=history.device, dtype=history.dtype)
        sigma = noise_std * self.velocity_std.to(history.dtype) / k**0.5  # [6]
        noise = torch.cumsum(draws * sigma, dim=1)  # [N, k, 6]
        noise = noise * (batch["body"][:, KINEMATIC] < 0.5).to(history.dtype)[:, None, None]
        graph_of = batch["batch"]
        dt = batch["dt"][graph_of].to(history.dtype)[:, None, None]  # [N, 1, 1]
        substeps = batch["substeps"][graph_of].to(history.dtype)[:, None, None]
        c = (substeps + 1) / (2 * substeps)
        moves = dt * ((1 - c) * noise[:, :-1] + c * noise[:, 1:])  # [N, k-1, 6]
        drift = torch.cat([torch.zeros_like(noise[:, :1]), torch.cumsum(moves, dim=1)], dim=1)  # [N, k, 6]
        turned = quat_multiply(quat_from_rotation_vector(drift[..., 3:6]), history[..., 3:7])
        out = dict(batch)
        out["history"] = torch.cat(
            [history[..., 0:3] + drift[..., 0:3], turned, history[..., 7:13] + noise], dim=-1
        )
        out["target"] = batch["target"] - noise[:, -1] / dt[:, 0]
        return out


# ---------------------------------------------------------------- the family contract: load, then roll out


def load_model(checkpoint) -> tuple[PhysicsExpert3D, dict]:
    """A trained PhysicsExpert3D and its run info from a recipe checkpoint (safetensors; nothing unpickled)."""
    from physworld.training.checkpoint import load_run, restore

    ckpt, info = load_run(checkpoint, RECIPE_ID)
    model = PhysicsExpert3D(PhysicsExpert3DConfig(**info["model_config"]))
    restore(ckpt, model, rng=False)
    return model.eval(), info


def check_3d_scenes(scenes: list[dict]) -> None:
    flat = [s["scene_id"] for s in scenes if s["states"].shape[-1] != 13]
    if flat:
        raise ValueError(
            f"scenes {flat[:5]} are 2D (states with {scenes[0]['states'].shape[-1]} fields); the 3D learned "
            "simulator reads 3D datasets only: evaluate a 2D family on them (--model physics-expert)"
        )


def model_rollouts(
    model: PhysicsExpert3D, scenes: list[dict], context: int, rollout: int, batch_size: int = 64
) -> list[np.ndarray]:
    """Roll a PhysicsExpert3D out on many 3D scenes at once: the 2D PhysicsExpert's batched rollout
    (one forward pass per step over every scene, fed its own predictions, kinematic bodies on their
    truth) with the 3D integrator and the 3D scene arrays."""
    from physworld.models import physics_expert

    check_3d_scenes(scenes)
    return physics_expert.model_rollouts(
        model,
        scenes,
        context,
        rollout,
        batch_size,
        integrate_fn=integrate_3d,
        arrays_of=windows3d.scene_arrays_3d,
    )


def load_predictor(checkpoint):
    """The trajectory-family contract (physworld/evaluation/families.py) for 3D datasets: (rollout, run
    info), where rollout(scenes, context_frames, rollout_frames) -> (predictions [C + R, N, 13] per
    scene, parse failures per scene: always 0)."""
    model, info = load_model(checkpoint)
    info = dict(info, dims=3)

    def rollout(scenes, context_frames, rollout_frames):
        return model_rollouts(model, scenes, context_frames, rollout_frames), [0] * len(scenes)

    return rollout, info
