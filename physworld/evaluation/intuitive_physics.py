"""Does a video encoder understand physics? Violation-of-expectation (VoE) scores and linear probes.

    physworld voe   --checkpoint CKPT --pairs D        (pairs from physworld voe-pairs)
    physworld probe --checkpoint CKPT --clips-dir D    (clips from physworld render-clips)

VoE. A pair is two clips identical until frame e, the second impossible after it (data/voe.py).
A model's surprise at a clip is its prediction error over the tubelet steps from the one holding
frame e on; the pair is scored right when surprise(impossible) > surprise(possible) (a tie counts
one half). Features are computed causally: the tokens of step s come from encoding the clip's frames
up to the end of step s only, so the two clips' features agree exactly before the event. Surprise is
the maximum over the post-event steps (decided before any run: the violation is a moment, and a
vanished body makes the later frames easier to predict); the mean is reported beside it.

Models scored side by side on the same pairs:
- vjepa_predictor:   the checkpoint's own V-JEPA predictor: context = the context encoder's tokens of
                     steps < s, target = the target (EMA) encoder's tokens of step s, mean L1 error
                     (the V-JEPA loss). Only for a vjepa recipe checkpoint, which holds the predictor.
- vjepa_ridge:       encoder-only: a linear (ridge, closed form) next-step predictor on the target
                     encoder's tokens, shared over positions: token (s, i, j) from its 3 x 3
                     neighbourhood at step s - 1 and itself at s - 2; squared error in units of the
                     token features' standard deviation.
- random_predictor / random_ridge: the same on a randomly initialised V-JEPA of the same config.
- pixel_ridge:       the same ridge predictor on raw pixel "tokens" (each tubelet x patch block of the
                     frames at the encoder's image size, average-pooled to 4 x 4 pixels).
- pixel_extrapolate: no fitting: frame t predicted as 2 x_{t-1} - x_{t-2}, squared error.
The ridge predictors are cross-fitted: pairs split in two folds by pair_id parity; each fold is scored
with a predictor fitted on the other fold's possible clips of seen (not held-out) scenario types, so
no clip is ever scored by a predictor that saw it and held-out types are never fitted on.

Probes. Frozen features to object states (position and velocity at each tubelet step) and physical
parameters (log mass relative to the clip's mean body, friction, restitution; one per object and
clip): an object's feature is the mean of the tokens its ground-truth mask covers (weighted by the
fraction of each patch it covers). Ridge regression in closed form, its penalty chosen on a
validation part of the training clips, R^2 on held-out clips (25% of the clips, by seed).
Compared: the checkpoint's encoder, a random encoder of the same config, and the same pooling over
raw pixel patches (no positional information: a probe that beats it on position shows the encoder
holds where things are; the random encoder shows how much of that its positional embedding alone gives).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from physworld.data.clip_config import ClipError

POOLED_PIXELS = 4  # a pixel token is its tubelet x patch block average-pooled to this many pixels a side
RIDGE_PENALTIES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # times the mean eigenvalue of X^T X / n
MAX_FIT_ROWS = 40_000  # rows the latent predictors are fitted on (subsampled by seed beyond this)
TEST_FRACTION = 0.25


class IntuitivePhysicsError(ClipError):
    """Bad input to voe or probe; the message names the file or flag and the fix."""


# ---------------------------------------------------------------- models


def _torch():
    import torch

    return torch


def load_models(checkpoint: str, seed: int = 0) -> dict:
    """{"vjepa": bundle or None, "random": bundle, "info": info}: a bundle holds the target encoder and,
    when the checkpoint has them, the context encoder and predictor."""
    torch = _torch()
    from physworld.models.vjepa import VJEPA, config_from_dict, load_video_encoder

    bundles = {}
    if checkpoint == "random":
        trained = None
        torch.manual_seed(seed + 1)
        _, info = load_video_encoder(None)
    else:
        path = Path(checkpoint)
        if not path.exists():
            raise IntuitivePhysicsError(
                f"--checkpoint {checkpoint}: no such file or folder; give a vjepa .safetensors (physworld "
                "train vjepa), a save_pretrained folder of a VJEPA2Model, or 'random'"
            )
        encoder, info = load_video_encoder(checkpoint)
        trained = {"target": encoder, "context": None, "predictor": None}
        if path.is_file():
            trained.update(_recipe_predictor(path))
    cfg = config_from_dict(info["config"])
    torch.manual_seed(seed)
    model = VJEPA(cfg).eval().requires_grad_(False)
    bundles["random"] = {
        "target": model.target_encoder,
        "context": model.encoder,
        "predictor": model.predictor,
    }
    bundles["vjepa"] = trained
    bundles["info"] = info
    return bundles


def _recipe_predictor(path: Path) -> dict:
    """The context encoder and predictor a vjepa recipe checkpoint holds (model.encoder.*, model.predictor.*)."""
    from physworld.models.vjepa import RECIPE_ID, Predictor, VideoEncoder, config_from_dict
    from physworld.training.checkpoint import load_run

    ckpt, run = load_run(path, RECIPE_ID)
    cfg = config_from_dict(run["model_config"])
    out = {}
    for name, cls, prefix in (
        ("context", VideoEncoder, "model.encoder."),
        ("predictor", Predictor, "model.predictor."),
    ):
        state = {k[len(prefix) :]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)}
        if not state:
            return {}
        module = cls(cfg)
        module.load_state_dict(state, strict=True)
        out[name] = module.eval().requires_grad_(False)
    return out


def _frames(rgb: np.ndarray):
    """uint8 [B, T, H, W, 3] -> float [B, T, 3, H, W] in [0, 1]."""
    torch = _torch()
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 1, 4, 2, 3).float().div_(255.0)


def causal_tokens(encoder, rgb: np.ndarray, info: dict) -> np.ndarray:
    """Tokens [B, T', h, w, D] where step s is encoded from frames [0, (s + 1) * tubelet) only."""
    torch = _torch()
    tub = info["tubelet"]
    _, gh, gw = info["grid"]
    frames = _frames(rgb)
    steps = frames.shape[1] // tub
    out = []
    with torch.no_grad():
        if info.get("causal"):  # block-causal attention: one pass gives the same thing
            tokens = encoder(frames)
            return tokens.reshape(len(frames), steps, gh, gw, -1).numpy()
        for s in range(steps):
            tokens = encoder(frames[:, : (s + 1) * tub])
            out.append(tokens.reshape(len(frames), s + 1, gh, gw, -1)[:, s])
    return torch.stack(out, 1).numpy()


def pixel_tokens(rgb: np.ndarray, info: dict) -> np.ndarray:
    """Raw pixel tokens [B, T', h, w, tubelet * 3 * POOLED_PIXELS ** 2] on the encoder's grid."""
    import torch.nn.functional as F

    tub, size = info["tubelet"], info["image_size"]
    _, gh, gw = info["grid"]
    frames = _frames(rgb)
    b, t = frames.shape[:2]
    x = frames.flatten(0, 1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    pool = min(POOLED_PIXELS, size // gh)
    x = F.adaptive_avg_pool2d(x, (gh * pool, gw * pool))  # [B*T, 3, gh*pool, gw*pool]
    x = x.view(b, t // tub, tub, 3, gh, pool, gw, pool).permute(0, 1, 4, 6, 2, 3, 5, 7)
    return x.reshape(b, t // tub, gh, gw, -1).numpy()


# ---------------------------------------------------------------- ridge regression


def ridge_fit(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Weights [D + 1, K] of ridge regression with an unpenalised bias (penalty relative to the mean
    eigenvalue of the centred Gram matrix / n, so one value means the same for any feature scale)."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    mx, my = x64.mean(0), y64.mean(0)
    xc, yc = x64 - mx, y64 - my
    gram = xc.T @ xc
    lam = penalty * max(np.trace(gram) / gram.shape[0], 1e-12)
    w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), xc.T @ yc)
    return np.vstack([w, (my - mx @ w)[None]])


def ridge_predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ w[:-1] + w[-1]


def r2_scores(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R^2 per column; NaN for a target constant on the test clips (friction the same everywhere)."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return np.where(ss_tot > 0, 1.0 - ss_res / np.maximum(ss_tot, 1e-300), np.nan)


def ridge_select(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Choose the penalty on a validation fifth of the groups (clips), refit on all; (weights, penalty)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    val = set(rng.permutation(ids)[: max(1, len(ids) // 5)].tolist())
    is_val = np.array([g in val for g in groups])
    best, best_err = RIDGE_PENALTIES[0], math.inf
    if is_val.any() and (~is_val).any():
        ys = y.std(0) + 1e-12
        for penalty in RIDGE_PENALTIES:
            w = ridge_fit(x[~is_val], y[~is_val], penalty)
            err = float((((ridge_predict(w, x[is_val]) - y[is_val]) / ys) ** 2).mean())
            if err < best_err:
                best, best_err = penalty, err
    return ridge_fit(x, y, best), best


# ---------------------------------------------------------------- next-step latent predictor


def _next_step_inputs(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z [B, T', h, w, D] -> inputs [B, T' - 2, h, w, 10 D] (3 x 3 neighbourhood at s - 1, itself at
    s - 2; zero padded at the border) and targets [B, T' - 2, h, w, D] (step s), for s >= 2."""
    b, t, h, w, d = z.shape
    prev = np.pad(z[:, 1:-1], ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)))
    hood = [prev[:, :, di : di + h, dj : dj + w] for di in range(3) for dj in range(3)]
    x = np.concatenate([*hood, z[:, :-2]], axis=-1)
    return x, z[:, 2:]


class LatentPredictor:
    """Standardise token features, fit the next-step ridge predictor on clips, score squared errors."""

    def __init__(self, penalty: float = 1.0):
        self.penalty = penalty

    def fit(self, z: np.ndarray, seed: int = 0) -> LatentPredictor:
        flat = z.reshape(-1, z.shape[-1])
        self.mean, self.std = flat.mean(0), flat.std(0) + 1e-6
        x, y = _next_step_inputs((z - self.mean) / self.std)
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        if len(x) > MAX_FIT_ROWS:
            keep = np.random.default_rng(seed).choice(len(x), MAX_FIT_ROWS, replace=False)
            x, y = x[keep], y[keep]
        self.w = ridge_fit(x, y, self.penalty)
        return self

    def errors(self, z: np.ndarray) -> np.ndarray:
        """Mean squared error per clip and step [B, T'] (NaN for the first two steps)."""
        x, y = _next_step_inputs((z - self.mean) / self.std)
        pred = ridge_predict(self.w, x.reshape(-1, x.shape[-1])).reshape(y.shape)
        err = ((pred - y) ** 2).mean(axis=(2, 3, 4))
        return np.concatenate([np.full((len(z), 2), np.nan), err], axis=1)


def predictor_errors(
    bundle: dict, rgb: np.ndarray, info: dict, first_step: int, targets: np.ndarray | None = None
) -> np.ndarray:
    """The V-JEPA predictor's mean L1 error per clip and step [B, T'] for steps >= first_step (NaN
    before): context = the context encoder's tokens of steps < s, target = the target encoder's step s
    (`targets`: causal_tokens of the target encoder, when already computed)."""
    torch = _torch()
    tub = info["tubelet"]
    frames = _frames(rgb)
    b = len(frames)
    steps = frames.shape[1] // tub
    _, gh, gw = info["grid"]
    per = gh * gw
    out = np.full((b, steps), np.nan)
    with torch.no_grad():
        for s in range(max(1, first_step), steps):
            clip = frames[:, : (s + 1) * tub]
            grid = (s + 1, gh, gw)
            ctx_ids = torch.arange(s * per).unsqueeze(0).expand(b, -1)
            tgt_ids = torch.arange(s * per, (s + 1) * per).unsqueeze(0).expand(b, -1)
            context = bundle["context"](clip, context_ids=ctx_ids)
            pred = bundle["predictor"](context, ctx_ids, tgt_ids, grid)
            if targets is None:
                target = bundle["target"](clip)[:, s * per :]
            else:
                target = torch.from_numpy(targets[:, s]).reshape(b, per, -1)
            out[:, s] = (pred - target).abs().mean(dim=(1, 2)).numpy()
    return out


def extrapolation_errors(rgb: np.ndarray, info: dict) -> np.ndarray:
    """Pixel-space linear extrapolation error per clip and tubelet step [B, T'] (the max over the
    step's frames; frames at the encoder's image size)."""
    import torch.nn.functional as F

    size, tub = info["image_size"], info["tubelet"]
    x = _frames(rgb)
    b, t = x.shape[:2]
    if x.shape[-1] != size:
        x = F.interpolate(x.flatten(0, 1), size=(size, size), mode="bilinear", antialias=True).view(
            b, t, 3, size, size
        )
    x = x.numpy().astype(np.float64)
    err = np.full((b, t), np.nan)
    err[:, 2:] = ((x[:, 2:] - (2 * x[:, 1:-1] - x[:, :-2])) ** 2).mean(axis=(2, 3, 4))
    steps = err[:, : t - t % tub].reshape(b, t // tub, tub)
    with np.errstate(all="ignore"):
        return np.where(np.isnan(steps).all(-1), np.nan, np.nanmax(np.nan_to_num(steps, nan=-np.inf), -1))


# ---------------------------------------------------------------- VoE


def _check_pairs(manifest: dict, info: dict, pairs_dir) -> None:
    cfg = manifest["config"]
    res, frames = cfg["resolution"], cfg["frames"]
    size, tub = info["image_size"], info["tubelet"]
    if res < size or res % size:
        raise IntuitivePhysicsError(
            f"{pairs_dir}: pairs are {res} x {res} px, the encoder takes {size} x {size}; regenerate them "
            f"with physworld voe-pairs --resolution {size} (or a multiple of it)"
        )
    if frames % tub or frames // tub < 3:
        raise IntuitivePhysicsError(
            f"{pairs_dir}: pairs have {frames} frames; the encoder needs a multiple of its tubelet {tub} "
            f"and at least {3 * tub}: regenerate with --frames {max(3, frames // tub + 1) * tub}"
        )


def _surprise(errors: np.ndarray, first_step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max, mean) of per-step errors [B, T'] over steps >= first_step[b]."""
    steps = np.arange(errors.shape[1])[None]
    post = np.where(steps >= first_step[:, None], errors, np.nan)
    with np.errstate(all="ignore"):
        return np.nanmax(post, 1), np.nanmean(post, 1)


def voe_scores(checkpoint: str, pairs_dir, seed: int = 0, progress: bool = True, batch: int = 8) -> dict:
    """Pairwise VoE accuracy per model, per kind, seen and held-out types apart (module docstring)."""
    from tqdm.auto import tqdm

    from physworld.data.voe import load_pairs

    manifest, pairs = load_pairs(pairs_dir)
    models = load_models(checkpoint, seed)
    info = models["info"]
    _check_pairs(manifest, info, pairs_dir)
    tub = info["tubelet"]
    first = np.array([p["event_frame"] // tub for p in pairs])
    first = np.maximum(first, 2)  # the ridge predictors need two steps before
    rgb = {k: np.stack([p[f"{k}_rgb"] for p in pairs]) for k in ("possible", "impossible")}

    feats: dict[str, dict] = {}
    encoders = {"random": models["random"]}
    if models["vjepa"] is not None:
        encoders = {"vjepa": models["vjepa"], **encoders}
    bar = tqdm(
        total=len(pairs) * 2 * (len(encoders) + 1), desc="voe features", disable=not progress, unit="clip"
    )
    for side in ("possible", "impossible"):
        for name, bundle in encoders.items():
            chunks = []
            for i in range(0, len(pairs), batch):
                chunks.append(causal_tokens(bundle["target"], rgb[side][i : i + batch], info))
                bar.update(len(chunks[-1]))
            feats.setdefault(name, {})[side] = np.concatenate(chunks)
        feats.setdefault("pixel", {})[side] = pixel_tokens(rgb[side], info)
        bar.update(len(pairs))
    bar.close()

    surprise: dict[str, dict] = {}
    fold = np.array([p["pair_id"] % 2 for p in pairs])
    seen = np.array([not p["heldout"] for p in pairs])
    for name, z in feats.items():
        errs = {s: np.full((len(pairs), z["possible"].shape[1]), np.nan) for s in z}
        for f in (0, 1):
            fit = (fold != f) & seen
            if not fit.any():
                fit = fold != f
            pred = LatentPredictor().fit(z["possible"][fit], seed=seed)
            for side in z:
                errs[side][fold == f] = pred.errors(z[side][fold == f])
        surprise[f"{name}_ridge" if name != "pixel" else "pixel_ridge"] = errs
    for name, bundle in encoders.items():
        if bundle.get("predictor") is None:
            continue
        errs = {}
        for side in ("possible", "impossible"):
            chunks = []
            for i in range(0, len(pairs), batch):
                chunks.append(
                    predictor_errors(
                        bundle,
                        rgb[side][i : i + batch],
                        info,
                        int(first.min()),
                        feats[name][side][i : i + batch],
                    )
                )
            errs[side] = np.concatenate(chunks)
        surprise[f"{name}_predictor"] = errs
    surprise["pixel_extrapolate"] = {s: extrapolation_errors(rgb[s], info) for s in rgb}

    result = {
        "checkpoint": str(checkpoint),
        "pairs_dir": str(pairs_dir),
        "num_pairs": len(pairs),
        "encoder": {k: info[k] for k in ("frames", "image_size", "tubelet", "patch", "dim", "source")},
        "surprise": "max over post-event tubelet steps (mean reported as *_mean)",
        "predictor_note": ""
        if models["vjepa"] is None or models["vjepa"].get("predictor") is not None
        else ("the checkpoint holds no V-JEPA predictor; only the encoder-only ridge predictor is scored"),
        "models": {},
    }
    kinds = sorted({p["kind"] for p in pairs})
    groups = {"all": np.ones(len(pairs), bool), "seen": seen, "heldout": ~seen}
    for model, errs in surprise.items():
        s_max_p, s_mean_p = _surprise(errs["possible"], first)
        s_max_i, s_mean_i = _surprise(errs["impossible"], first)
        rows = {}
        for stat, (sp, si) in (("max", (s_max_p, s_max_i)), ("mean", (s_mean_p, s_mean_i))):
            right = np.where(si > sp, 1.0, np.where(si == sp, 0.5, 0.0))
            for gname, gmask in groups.items():
                for kind in ["all", *kinds]:
                    sel = gmask & (np.array([p["kind"] for p in pairs]) == kind if kind != "all" else gmask)
                    if sel.any():
                        key = f"{gname}/{kind}" + ("" if stat == "max" else "_mean")
                        rows[key] = {"accuracy": float(right[sel].mean()), "pairs": int(sel.sum())}
        result["models"][model] = rows
    return result


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def voe_table(result: dict) -> str:
    """Markdown: one row per (types, kind), one column per model: accuracy, '~' where the 95% Wilson
    interval holds 0.5 (not distinguishable from chance)."""
    order = [
        "vjepa_predictor",
        "vjepa_ridge",
        "random_predictor",
        "random_ridge",
        "pixel_ridge",
        "pixel_extrapolate",
    ]
    models = {
        m: result["models"][m]
        for m in sorted(result["models"], key=lambda m: (m not in order, order.index(m) if m in order else m))
    }
    first = next(iter(models.values()))
    kinds = ["all", *sorted({k.split("/", 1)[1] for k in first if not k.endswith("_mean")} - {"all"})]
    keys = [f"{g}/{k}" for g in ("all", "seen", "heldout") for k in kinds if f"{g}/{k}" in first]
    lines = ["| types | kind | pairs | " + " | ".join(models) + " |", "|" + "---|" * (len(models) + 3)]
    for key in keys:
        group, kind = key.split("/", 1)
        cells = []
        for rows in models.values():
            r = rows.get(key)
            if r is None:
                cells.append("")
                continue
            lo, hi = wilson_interval(r["accuracy"], r["pairs"])
            cells.append(f"{r['accuracy']:.2f}{' ~' if lo <= 0.5 <= hi else ''}")
        lines.append(f"| {group} | {kind} | {first[key]['pairs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_voe_table(result: dict) -> None:
    print(
        f"VoE pairwise accuracy ({result['num_pairs']} pairs, surprise = {result['surprise']}); "
        "'~': the 95% Wilson interval holds 0.5 (chance)"
    )
    if result.get("predictor_note"):
        print(result["predictor_note"])
    print(voe_table(result))


# ---------------------------------------------------------------- probes


def _object_features(tokens: np.ndarray, seg: np.ndarray, info: dict) -> tuple[np.ndarray, np.ndarray]:
    """Mask-pooled features [T', N, D] and each object's patch coverage [T', N] of one clip, from its
    tokens [T', h, w, D] and segmentation [T, H, W] (the first frame of each tubelet step)."""
    tub = info["tubelet"]
    steps, gh, gw, _ = tokens.shape
    res = seg.shape[-1]
    cell = res // gh
    labels = seg[: steps * tub : tub].astype(np.int64)  # [T', H, W]
    labels = np.where(labels >= 65535, 0, labels)  # static geometry is no object
    n = int(labels.max())
    if n == 0:  # no body in view in any step
        return np.zeros((steps, 0, tokens.shape[-1])), np.zeros((steps, 0))
    onehot = np.stack([labels == k + 1 for k in range(n)], 1).astype(np.float32)  # [T', N, H, W]
    frac = onehot.reshape(steps, n, gh, cell, gw, cell).mean(axis=(3, 5))  # [T', N, h, w]
    cover = frac.sum(axis=(2, 3))
    weights = frac / np.maximum(cover[..., None, None], 1e-12)
    pooled = np.einsum("tnhw,thwd->tnd", weights, tokens)
    return pooled, cover


def probe_scores(checkpoint: str, clips_dir, seed: int = 0, progress: bool = True, batch: int = 8) -> dict:
    """R^2 of ridge probes per target for the checkpoint's encoder, a random one and raw pixels."""
    from tqdm.auto import tqdm

    from physworld.data.clip_view import ClipDataset, prepare_clips
    from physworld.data.store import Dataset

    clips_dir = Path(clips_dir)
    if not clips_dir.is_dir():
        raise IntuitivePhysicsError(
            f"--clips-dir {clips_dir}: no such folder; render clips with physworld render-clips --data-dir D "
            "and pass D/clips"
        )
    models = load_models(checkpoint, seed)
    info = models["info"]
    view = prepare_clips(None, clips_dir=clips_dir, progress=progress)
    data = ClipDataset(view, streams=("rgb", "segmentation", "states"))
    res = data.meta["clip"]["resolution"]
    size, tub = info["image_size"], info["tubelet"]
    if res < size or res % size:
        raise IntuitivePhysicsError(
            f"{clips_dir}: clips are {res} x {res} px, the encoder takes {size} x {size}; render them with "
            f"physworld render-clips --resolution {size} (or a multiple of it)"
        )
    frames = data.meta["clip"]["frames"]
    if frames % tub:
        raise IntuitivePhysicsError(
            f"{clips_dir}: clips have {frames} frames, not a multiple of the tubelet {tub}"
        )
    try:
        scenes = Dataset(clips_dir.parent)
    except Exception as e:
        raise IntuitivePhysicsError(
            f"{clips_dir.parent}: the clips' dataset (needed for the bodies' mass, friction and restitution) "
            f"cannot be read ({e}); pass the clips folder inside its dataset"
        ) from None
    encoders = {"random": models["random"]["target"]}
    if models["vjepa"] is not None:
        encoders = {"vjepa": models["vjepa"]["target"], **encoders}
    feature_sets = [*encoders, "pixel"]
    rows = {name: {"state": [], "param": []} for name in feature_sets}
    state_y, param_y, state_clip, param_clip = [], [], [], []
    dims = None
    bar = tqdm(total=len(data), desc="probe features", unit="clip", disable=not progress)
    for start in range(0, len(data), batch):
        items = [data[i] for i in range(start, min(len(data), start + batch))]
        rgb = np.stack([it["rgb"].numpy() for it in items])
        toks = {name: causal_tokens(enc, rgb, info) for name, enc in encoders.items()}
        toks["pixel"] = pixel_tokens(rgb, info)
        for j, it in enumerate(items):
            states = it["states"].numpy()  # [T, N, d]
            d = states.shape[-1]
            dims = 3 if d == 13 else 2
            pos = list(range(dims))
            vel = [7, 8, 9] if dims == 3 else [3, 4]
            spec = scenes.scene(int(it["scene_id"]))["spec"]
            bodies = spec["bodies"]
            seg = it["segmentation"].numpy()
            covers = None
            pooled = {}
            for name in feature_sets:
                pooled[name], covers = _object_features(toks[name][j], seg, info)
            steps, n_seen = covers.shape
            mass = np.array([max(float(b.get("mass", 0.0)), 1e-9) for b in bodies])
            log_mass = np.log(mass) - np.log(mass).mean()
            restitution = [float(b.get("elasticity", b.get("restitution", 0.0))) for b in bodies]
            for k in range(min(n_seen, len(bodies))):
                visible = covers[:, k] > 0
                if not visible.any() or bodies[k].get("kinematic"):
                    continue
                for s in np.nonzero(visible)[0]:
                    state_y.append(np.concatenate([states[s * tub, k, pos], states[s * tub, k, vel]]))
                    state_clip.append(start + j)
                    for name in feature_sets:
                        rows[name]["state"].append(pooled[name][s, k])
                param_y.append([log_mass[k], float(bodies[k].get("friction", 0.0)), restitution[k]])
                param_clip.append(start + j)
                for name in feature_sets:
                    rows[name]["param"].append(pooled[name][visible, k].mean(0))
        bar.update(len(items))
    bar.close()
    if not state_y:
        raise IntuitivePhysicsError(f"{clips_dir}: no visible dynamic bodies in any clip; nothing to probe")
    names = {
        "state": (["x", "y", "z"][:dims] + ["vx", "vy", "vz"][:dims]),
        "param": ["log_mass_rel", "friction", "restitution"],
    }
    targets = {"state": np.array(state_y), "param": np.array(param_y)}
    groups = {"state": np.array(state_clip), "param": np.array(param_clip)}
    rng = np.random.default_rng(seed)
    clip_ids = rng.permutation(len(data))
    test = set(clip_ids[: max(1, int(round(TEST_FRACTION * len(data))))].tolist())
    result = {
        "checkpoint": str(checkpoint),
        "clips_dir": str(clips_dir),
        "num_clips": len(data),
        "test_clips": len(test),
        "encoder": {k: info[k] for k in ("frames", "image_size", "tubelet", "patch", "dim", "source")},
        "r2": {},
        "rows": {k: int(len(v)) for k, v in targets.items()},
    }
    for name in feature_sets:
        result["r2"][name] = {}
        for kind in ("state", "param"):
            x = np.array(rows[name][kind], dtype=np.float64)
            y = targets[kind]
            is_test = np.array([g in test for g in groups[kind]])
            if is_test.all() or not is_test.any():
                raise IntuitivePhysicsError(
                    f"{clips_dir}: too few clips ({len(data)}) for a held-out split; render more"
                )
            std = x[~is_test].std(0) + 1e-6
            xs = (x - x[~is_test].mean(0)) / std
            w, penalty = ridge_select(xs[~is_test], y[~is_test], groups[kind][~is_test], seed)
            r2 = r2_scores(y[is_test], ridge_predict(w, xs[is_test]))
            for t_name, v in zip(names[kind], r2, strict=True):
                result["r2"][name][t_name] = None if np.isnan(v) else float(v)
            result["r2"][name][f"{kind}_penalty"] = penalty
    return result


def probe_table(result: dict) -> str:
    order = ["x", "y", "z", "vx", "vy", "vz", "log_mass_rel", "friction", "restitution"]
    present = next(iter(result["r2"].values()))
    targets = [t for t in order if t in present]
    lines = ["| features | " + " | ".join(targets) + " |", "|" + "---|" * (len(targets) + 1)]
    for name, r2 in result["r2"].items():
        cells = ["" if r2[t] is None else f"{r2[t]:.2f}" for t in targets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_probe_table(result: dict) -> None:
    print(
        f"Linear probes, R^2 on {result['test_clips']} held-out clips of {result['num_clips']} "
        f"({result['rows']['state']} object-steps, {result['rows']['param']} object-clips)"
    )
    print(probe_table(result))
