"""Rollout metrics (docs/METRICS.md): errors per horizon, plausibility, and their aggregation.

2D scenes are scored in px and rad (ERROR_KEYS, SCALAR_KEYS); 3D scenes (states [F, N, 13]) in metres
and degrees (ERROR_KEYS_3D, SCALAR_KEYS_3D): position error (m), velocity error (m/s), orientation
error (the geodesic angle between the predicted and the true rotation, degrees), angular velocity
error (rad/s); energy drift and penetration (m) measured by PyBullet (worlds/checks.py)."""

from __future__ import annotations

import numpy as np

from physworld.data.windows3d import geodesic_angle_np
from physworld.worlds.checks import penetration_depths, penetration_depths_3d_frames, total_energy

ERROR_KEYS = ("position_error_px", "position_mse_px2", "velocity_error", "angle_error_rad")
SCALAR_KEYS = ("energy_drift", "penetration_px", "static_penetration_px", "parse_failures")
ERROR_KEYS_3D = (
    "position_error_m",
    "position_mse_m2",
    "velocity_error",
    "orientation_error_deg",
    "angular_velocity_error",
)
SCALAR_KEYS_3D = ("energy_drift", "penetration_m", "static_penetration_m", "parse_failures")


def units(dims: int) -> dict:
    """The metric names of a 2D or 3D evaluation: position error and MSE keys, unit, penetration keys."""
    if dims == 3:
        return {"error": "position_error_m", "mse": "position_mse_m2", "unit": "m", "unit2": "m²",
                "penetration": "penetration_m", "static_penetration": "static_penetration_m"}  # fmt: skip
    return {"error": "position_error_px", "mse": "position_mse_px2", "unit": "px", "unit2": "px²",
            "penetration": "penetration_px", "static_penetration": "static_penetration_px"}  # fmt: skip


def scene_metrics(
    spec: dict,
    truth: np.ndarray,
    pred: np.ndarray,
    context: int,
    horizons,
    parse_failures: int = 0,
    plausibility: bool = True,
) -> dict:
    """Metrics of one scene's rollout: pred and truth are [>= context + R, N, 6]; frames context ..
    context+R-1 are scored over dynamic bodies. Per-frame position errors are kept for the
    error-versus-horizon curve."""
    rollout = pred.shape[0] - context
    dyn = np.array([not b.get("kinematic") for b in spec["bodies"]])
    p = pred[context:, dyn].astype(np.float64)
    g = truth[context : context + rollout, dyn].astype(np.float64)
    if not dyn.any():
        raise ValueError("a scene without dynamic bodies has nothing to predict")
    three_d = truth.shape[-1] == 13
    if three_d:
        with np.errstate(invalid="ignore", over="ignore"):
            d_pos = p[..., 0:3] - g[..., 0:3]
            per_frame = {
                "position_error_m": np.sqrt((d_pos**2).sum(-1)).mean(1),
                "position_mse_m2": (d_pos**2).mean(-1).mean(1),
                "velocity_error": np.sqrt(((p[..., 7:10] - g[..., 7:10]) ** 2).sum(-1)).mean(1),
                "orientation_error_deg": np.degrees(geodesic_angle_np(p[..., 3:7], g[..., 3:7])).mean(1),
                "angular_velocity_error": np.sqrt(((p[..., 10:13] - g[..., 10:13]) ** 2).sum(-1)).mean(1),
            }
    else:
        per_frame = _per_frame_2d(p, g)
    names = units(3 if three_d else 2)
    out = {}
    for key, curve in per_frame.items():
        values = {str(h): float(curve[h - 1]) for h in horizons if h <= rollout}
        values["all"] = float(curve.mean())
        out[key] = values
    out["curve"] = [float(v) for v in per_frame[names["error"]]]
    out["parse_failures"] = int(parse_failures)
    if plausibility:
        full = np.concatenate([truth[:context], pred[context:]]).astype(np.float32)
        energy = total_energy(spec, full[[context - 1, -1]])
        scale = max(abs(energy[0]), 1e-9)
        out["energy_drift"] = (
            float(abs(energy[1] - energy[0]) / scale) if np.isfinite(energy).all() else float("inf")
        )
        if three_d:  # one PyBullet world for the whole rollout
            depths = penetration_depths_3d_frames(spec, full[context:])
        else:
            depths = [penetration_depths(spec, full[f]) for f in range(context, full.shape[0])]
        out[names["penetration"]] = float(max(d[0] for d in depths))
        out[names["static_penetration"]] = float(max(d[1] for d in depths))
    return out


def _per_frame_2d(p: np.ndarray, g: np.ndarray) -> dict:
    with np.errstate(invalid="ignore", over="ignore"):
        d_pos = p[..., 0:2] - g[..., 0:2]
        pos_err = np.sqrt((d_pos**2).sum(-1))  # [R, N]
        pos_sq = (d_pos**2).mean(-1)
        vel_err = np.sqrt(((p[..., 3:5] - g[..., 3:5]) ** 2).sum(-1))
        ang_err = np.abs((p[..., 2] - g[..., 2] + np.pi) % (2 * np.pi) - np.pi)
    return {
        "position_error_px": pos_err.mean(1),
        "position_mse_px2": pos_sq.mean(1),
        "velocity_error": vel_err.mean(1),
        "angle_error_rad": ang_err.mean(1),
    }


def aggregate(scene_results: list[dict]) -> dict:
    """Mean over scenes (each scene weighs the same) of every metric, and the mean curve."""
    if not scene_results:
        return {}
    out = {}
    three_d = "position_error_m" in scene_results[0]
    for key in ERROR_KEYS_3D if three_d else ERROR_KEYS:
        keys = scene_results[0][key].keys()
        out[key] = {h: _mean([r[key][h] for r in scene_results]) for h in keys}
    for key in SCALAR_KEYS_3D if three_d else SCALAR_KEYS:
        if key in scene_results[0]:
            out[key] = _mean([r[key] for r in scene_results])
    out["parse_failures"] = int(sum(r["parse_failures"] for r in scene_results))
    out["curve"] = [_mean(v) for v in zip(*[r["curve"] for r in scene_results], strict=True)]
    return out


def _mean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if len(values) else float("nan")
