"""PhysicsExpert: graph construction, symmetries, integration, noise, training signal."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from physworld.models.physics_expert import (  # noqa: E402
    KINEMATIC,
    PhysicsExpert,
    PhysicsExpertConfig,
    integrate,
)

K = 4
DT = 1.0 / 60.0
TINY = dict(history=K, hidden=16, mlp_layers=2, message_passing_steps=2)


def make_sample(seed, n, statics=2, joints=True, kinematic=(), center=(300.0, 200.0)):
    """A hand-made window (numpy, GRAPH_BATCH.md sample layout): n bodies packed close enough for contacts."""
    rng = np.random.default_rng(seed)
    body = np.zeros((n, 11), np.float32)
    for i in range(n):
        shape = rng.integers(3)
        body[i, shape] = 1.0
        if shape == 1:  # box
            w, h = rng.uniform(10, 30, 2)
            body[i, 4:6] = w, h
            body[i, 3] = 0.5 * math.hypot(w, h)
        else:
            r = rng.uniform(6, 15)
            body[i, 3] = r
            body[i, 4:6] = 2 * r
        kin = i in kinematic
        mass = 0.0 if kin else rng.uniform(0.5, 3.0)
        body[i, 6] = mass
        body[i, 7] = 0.0 if kin else 0.5 * mass * body[i, 3] ** 2
        body[i, 8:10] = rng.uniform(0.2, 0.9, 2)
        body[i, 10] = float(kin)
    pos = np.asarray(center) + rng.uniform(-60, 60, (n, 2))
    history = np.zeros((n, K, 6), np.float32)
    history[:, :, 3:] = rng.normal(0, [100, 100, 3], (n, K, 3))
    history[:, :, 2] = rng.uniform(-3, 3, (n, 1))
    history[:, :, :2] = pos[:, None] - DT * np.arange(K - 1, -1, -1)[None, :, None] * history[:, :, 3:5]
    target = rng.normal(0, [300, 300, 20], (n, 3)).astype(np.float32)
    cx, cy = center
    rows = [[cx - 200, cy - 80, cx + 200, cy - 80, 5.0, 0.7, 0.5]]  # a floor under the cluster
    rows += [[cx - 70, cy + 70, cx - 40, cy + 40, 3.0, 0.4, 0.3]] * (statics > 1)
    rows += [[cx + 50, cy + 70, cx + 50, cy + 70, 8.0, 0.5, 0.6]] * (statics > 2)  # a static circle
    jidx, jkind, janchor = np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
    if joints and n >= 2:
        jidx = np.array([[0, 1], [n - 1, -1], [0, 1]], np.int64)
        jkind = np.array([0, 1, 5], np.int64)
        janchor = np.array([[3, 1, -2, 0], [1, 2, cx, cy + 90], [0, 0, 0, 0]], np.float32)
    state0 = history[:, -1].copy()
    nxt = state0.copy()
    nxt[:, 3:] += target * DT
    nxt[:, :3] += DT * state0[:, 3:]
    return {
        "history": history.astype(np.float32),
        "target": target,
        "next": nxt.astype(np.float32),
        "body": body,
        "statics": np.asarray(rows[:statics], np.float32).reshape(-1, 7),
        "joint_index": jidx,
        "joint_kind": jkind,
        "joint_anchor": janchor,
        "gravity": np.array([0.0, -981.0], np.float32),
        "dt": np.float32(DT),
        "substeps": np.int64(8),
    }


def collate(samples):
    """GRAPH_BATCH.md's batch: rows concatenated, *_batch vectors, joint indices offset (-1 stays -1)."""
    out = {key: [] for key in ("history", "target", "next", "body", "statics", "joint_index", "joint_kind")}
    out.update(joint_anchor=[], batch=[], statics_batch=[], joint_batch=[])
    offset = 0
    for g, s in enumerate(samples):
        n = s["history"].shape[0]
        for key in ("history", "target", "next", "body", "statics", "joint_kind", "joint_anchor"):
            out[key].append(torch.as_tensor(s[key]))
        ji = torch.as_tensor(s["joint_index"])
        out["joint_index"].append(torch.where(ji >= 0, ji + offset, ji))
        out["batch"].append(torch.full((n,), g, dtype=torch.long))
        out["statics_batch"].append(torch.full((s["statics"].shape[0],), g, dtype=torch.long))
        out["joint_batch"].append(torch.full((ji.shape[0],), g, dtype=torch.long))
        offset += n
    batch = {key: torch.cat(value) for key, value in out.items()}
    batch["gravity"] = torch.stack([torch.as_tensor(s["gravity"]) for s in samples])
    batch["dt"] = torch.tensor([float(s["dt"]) for s in samples], dtype=torch.float32)
    batch["substeps"] = torch.tensor([int(s["substeps"]) for s in samples], dtype=torch.long)
    batch["scene"] = torch.arange(len(samples))
    batch["t"] = torch.zeros(len(samples), dtype=torch.long)
    batch["num_graphs"] = len(samples)
    return batch


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    stats = {
        "velocity_mean": [1.0, -2.0, 0.1],
        "velocity_std": [90.0, 110.0, 2.5],
        "accel_mean": [0.0, -500.0, 0.0],
        "accel_std": [300.0, 400.0, 20.0],
    }
    return PhysicsExpert(PhysicsExpertConfig(**{**TINY, **overrides}), stats=stats).eval()


def graph_rows(batch, g):
    return (batch["batch"] == g).nonzero().flatten()


def test_shapes_and_graph_structure():
    samples = [make_sample(1, 6, statics=3), make_sample(2, 1, statics=0, joints=False), make_sample(3, 9)]
    batch = collate(samples)
    model = tiny_model()
    n = batch["history"].shape[0]
    assert model(batch).shape == (n, 3)
    assert model.accelerations(batch).shape == (n, 3)
    assert model.step(batch).shape == (n, 6)
    loss = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)

    graph = model.build_graph(batch)
    recv, send, world_body = graph["receivers"], graph["senders"], graph["world_body"]
    p = graph["num_proximity"]
    assert (
        p > 0 and recv.shape[0] > p and graph["num_static"] > 0 and world_body.shape[0] > graph["num_static"]
    )
    assert torch.equal(batch["batch"][recv], batch["batch"][send])  # never across graphs
    assert torch.equal(
        batch["batch"][graph["world_body"][: graph["num_static"]]],
        batch["statics_batch"][graph["static_row"]],
    )
    assert not torch.any(recv == send)
    pairs = set(zip(recv[:p].tolist(), send[:p].tolist(), strict=True))
    assert all((s, r) in pairs for r, s in pairs)  # proximity edges come in both directions
    # joints: 2 body-body joints per graph with joints -> 4 edges; 1 world joint each
    assert recv.shape[0] - p == 8 and world_body.shape[0] - graph["num_static"] == 2
    assert graph["edge_features"].shape[0] == recv.shape[0]


def test_edge_rules_follow_surface_gaps():
    model = tiny_model(connectivity_radius=20.0, static_radius=10.0)
    s = make_sample(0, 2, statics=1, joints=False)
    s["body"][:] = 0
    s["body"][:, 0] = 1.0  # circles of radius 10, mass 1
    s["body"][:, 3] = 10.0
    s["body"][:, 6] = 1.0
    s["body"][:, 7] = 50.0
    s["statics"] = np.array([[0, 0, 1000, 0, 5.0, 0.7, 0.5]], np.float32)  # floor, surface at y = 5
    for gap, expected in ((19.0, 2), (21.0, 0)):
        s["history"][:, -1, :2] = [[100.0, 200.0], [100.0 + 20.0 + gap, 200.0]]
        graph = model.build_graph(collate([s]))
        assert graph["num_proximity"] == expected
        assert graph["num_static"] == 0
        gap_feature = graph["edge_features"][:, 3] * model.config.length_scale
        assert torch.allclose(gap_feature, torch.full_like(gap_feature, gap), atol=1e-4)
    s["history"][:, -1, :2] = [[100.0, 24.0], [300.0, 26.0]]  # body surface 9 and 11 px above the floor's
    graph = model.build_graph(collate([s]))
    assert graph["num_static"] == 1 and graph["world_body"][0] == 0
    f = graph["world_features"][0] * model.config.length_scale
    assert torch.allclose(f[:4], torch.tensor([0.0, -19.0, 19.0, 9.0]), atol=1e-4)  # vector, length, gap
    assert torch.allclose(f[4:6] / model.config.length_scale, torch.tensor([0.7, 0.5]))


def test_bodies_interact_only_through_edges():
    model = tiny_model(connectivity_radius=20.0)
    s = make_sample(12, 5, statics=1, joints=False)
    s["history"][:, -1, :2] = [[100, 300], [130, 300], [160, 310], [600, 300], [400, 500]]
    base = model.accelerations(collate([s]))
    moved = {**s, "history": s["history"].copy()}
    moved["history"][3, -1, :2] = [650, 450]  # still far from everything
    out = model.accelerations(collate([moved]))
    torch.testing.assert_close(out, base, atol=1e-6, rtol=0)  # nothing depends on where an isolated body is
    moved["history"][3, -1, :2] = [105, 330]  # now touching bodies 0 and 1
    out = model.accelerations(collate([moved]))
    assert not torch.allclose(out[0], base[0]) and torch.allclose(out[4], base[4], atol=1e-6)


def _permute(sample, perm):
    out = dict(sample)
    for key in ("history", "target", "next", "body"):
        out[key] = sample[key][perm]
    inverse = np.argsort(perm)
    ji = sample["joint_index"]
    out["joint_index"] = np.where(ji >= 0, inverse[np.maximum(ji, 0)], ji)
    return out


def test_permutation_equivariance():
    model = tiny_model()
    a, b = make_sample(4, 7, statics=3), make_sample(5, 5)
    perm = np.random.default_rng(0).permutation(7)
    out = model.accelerations(collate([a, b]))
    out_p = model.accelerations(collate([_permute(a, perm), b]))
    assert not torch.allclose(out[:7], out[:7][perm])  # the permutation is not trivial
    assert torch.allclose(out_p[:7], out[:7][perm], atol=1e-5)
    assert torch.allclose(out_p[7:], out[7:], atol=1e-5)


def test_batching_equivalence():
    model = tiny_model()
    samples = [make_sample(6, 5), make_sample(7, 8, statics=3), make_sample(8, 1, statics=1, joints=False)]
    together = model.accelerations(collate(samples))
    start = 0
    for s in samples:
        alone = model.accelerations(collate([s]))
        n = alone.shape[0]
        torch.testing.assert_close(together[start : start + n], alone, atol=1e-5, rtol=1e-5)
        start += n


def test_translation_invariance():
    model = tiny_model()
    s = make_sample(9, 7, statics=3)
    shifted = dict(s)
    shift = np.array([1234.0, -517.0], np.float32)
    shifted["history"] = s["history"].copy()
    shifted["history"][..., :2] += shift
    shifted["statics"] = s["statics"].copy()
    shifted["statics"][:, 0:2] += shift
    shifted["statics"][:, 2:4] += shift
    world = s["joint_index"][:, 1] == -1
    shifted["joint_anchor"] = s["joint_anchor"].copy()
    shifted["joint_anchor"][world, 2:] += shift
    graph, graph_s = model.build_graph(collate([s])), model.build_graph(collate([shifted]))
    for key in ("receivers", "senders", "world_body"):
        assert torch.equal(graph[key], graph_s[key])
    out, out_s = model.accelerations(collate([s])), model.accelerations(collate([shifted]))
    torch.testing.assert_close(out_s, out, atol=2e-3, rtol=1e-4)  # float32 positions near 1e3 px


def test_no_edges_across_graphs():
    model = tiny_model()
    a, b = make_sample(10, 6), make_sample(11, 6, center=(700.0, 500.0))
    base = model.accelerations(collate([a, b]))[:6]
    b_on_top = dict(b)
    b_on_top["history"] = b["history"].copy()
    b_on_top["history"][..., :2] = a["history"][..., :2] + 0.5  # b's bodies overlapping a's
    b_on_top["statics"] = a["statics"].copy()
    batch = collate([a, b_on_top])
    graph = model.build_graph(batch)
    assert torch.equal(batch["batch"][graph["receivers"]], batch["batch"][graph["senders"]])
    torch.testing.assert_close(model.accelerations(batch)[:6], base, atol=1e-6, rtol=0)
    assert not torch.allclose(model.accelerations(batch)[6:], model.accelerations(collate([a, b]))[6:])


@pytest.mark.parametrize("substeps", [1, 3, 8])
def test_integrate_matches_substepped_free_fall(substeps):
    g = torch.tensor([0.0, -981.0, 4.0], dtype=torch.float64)  # gravity and a constant angular acceleration
    state = torch.tensor([[100.0, 500.0, 0.3, 120.0, 250.0, -2.0]], dtype=torch.float64)
    x, v = state[0, :3].clone(), state[0, 3:].clone()
    h = DT / substeps
    predicted = state
    for _ in range(90):
        for _ in range(substeps):  # Chipmunk: move with the old velocity, then accelerate
            x = x + v * h
            v = v + g * h
        predicted = integrate(
            predicted, g[None], torch.tensor([DT], dtype=torch.float64), torch.tensor([substeps])
        )
        torch.testing.assert_close(predicted[0], torch.cat([x, v]), atol=1e-4, rtol=0)
    # one step in float32 with per-body dt and substeps
    s32 = torch.tensor([[0.0, 0.0, 0.0, 10.0, 0.0, 1.0]] * 2)
    out = integrate(
        s32, torch.tensor([[0.0, -981.0, 0.0]] * 2), torch.tensor([DT, 2 * DT]), torch.tensor([1, 8])
    )
    assert out[0, 1].item() == pytest.approx(0.0, abs=1e-6)  # one substep: position uses the old velocity
    assert out[1, 1].item() == pytest.approx(-981.0 * (2 * DT) ** 2 * 7 / 16, rel=1e-5)
    assert out[1, 0].item() == pytest.approx(20 * DT, rel=1e-6)


def test_tiny_model_overfits_a_few_graphs():
    samples = [make_sample(20 + i, n) for i, n in enumerate((3, 4, 5, 4))]
    batch = collate(samples)
    target = batch["target"]
    stats = {
        "velocity_mean": batch["history"][..., 3:].reshape(-1, 3).mean(0).numpy(),
        "velocity_std": batch["history"][..., 3:].reshape(-1, 3).std(0).numpy(),
        "accel_mean": target.mean(0).numpy(),
        "accel_std": target.std(0).numpy(),
    }
    torch.manual_seed(0)
    model = PhysicsExpert(PhysicsExpertConfig(history=K, hidden=32, message_passing_steps=2), stats=stats)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(batch).item()
    for _ in range(300):
        optimizer.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        optimizer.step()
    final = model.loss(batch).item()
    assert final < first / 100, (first, final)


def test_training_noise():
    model = tiny_model()
    batch = collate([make_sample(30, 300, statics=1, joints=False, kinematic=(3, 7))])
    gen = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    a = model.add_training_noise(batch, 0.1, gen(1))
    b = model.add_training_noise(batch, 0.1, gen(1))
    c = model.add_training_noise(batch, 0.1, gen(2))
    assert torch.equal(a["history"], b["history"]) and torch.equal(a["target"], b["target"])
    assert not torch.equal(a["history"], c["history"])
    assert a["next"] is batch["next"] and a["body"] is batch["body"]
    zero = model.add_training_noise(batch, 0.0, gen(1))
    assert torch.equal(zero["history"], batch["history"]) and torch.equal(zero["target"], batch["target"])

    noise = a["history"] - batch["history"]  # [N, k, 6]
    assert torch.all(noise[[3, 7]] == 0)  # kinematic bodies untouched
    dynamic = batch["body"][:, KINEMATIC] < 0.5
    last = noise[dynamic, -1, 3:]
    ratio = last.std(0) / (0.1 * model.velocity_std)
    assert torch.all((ratio > 0.85) & (ratio < 1.15)), ratio  # the last frame's noise has std noise_std * std
    first = noise[dynamic, 0, 3:].std(0) / (0.1 * model.velocity_std / math.sqrt(K))
    assert torch.all((first > 0.85) & (first < 1.15)), first
    # the adjusted target still leads to the clean next velocity
    v_next = batch["history"][:, -1, 3:] + batch["target"] * DT
    torch.testing.assert_close(a["history"][:, -1, 3:] + a["target"] * DT, v_next, atol=1e-3, rtol=1e-5)
    # positions follow the noisy velocities under the integrator's rule (c = 7/16 for 8 substeps)
    c_ = 7.0 / 16.0
    n = noise[..., 3:]
    moves = DT * ((1 - c_) * n[:, :-1] + c_ * n[:, 1:])
    torch.testing.assert_close(noise[:, 1:, :3] - noise[:, :-1, :3], moves, atol=1e-4, rtol=1e-4)
    assert torch.all(noise[:, 0, :3] == 0)


def test_state_dict_round_trips_stats():
    model = tiny_model()
    fresh = PhysicsExpert(PhysicsExpertConfig(**TINY))
    assert torch.equal(fresh.velocity_std, torch.ones(3))
    fresh.load_state_dict(model.state_dict())
    for name in ("velocity_mean", "velocity_std", "accel_mean", "accel_std"):
        assert torch.equal(getattr(fresh, name), getattr(model, name))
    batch = collate([make_sample(40, 5)])
    assert torch.equal(fresh.eval().accelerations(batch), model.accelerations(batch))
    with pytest.raises(ValueError):
        PhysicsExpert(
            PhysicsExpertConfig(**TINY),
            stats={
                **dict.fromkeys(("velocity_mean", "accel_mean"), [0, 0, 0]),
                "velocity_std": [1, 0, 1],
                "accel_std": [1, 1, 1],
            },
        )


def test_kinematic_bodies_excluded_from_loss_and_not_predicted():
    model = tiny_model()
    batch = collate([make_sample(50, 6, kinematic=(2,)), make_sample(51, 4, kinematic=(0, 1))])
    kin = batch["body"][:, KINEMATIC] > 0.5
    changed = dict(batch)
    changed["target"] = batch["target"].clone()
    changed["target"][kin] = 1e6
    assert model.loss(changed).item() == pytest.approx(model.loss(batch).item(), rel=1e-6)
    changed["target"][~kin] += 100.0
    assert model.loss(changed).item() != pytest.approx(model.loss(batch).item(), rel=1e-3)
    assert torch.all(model.accelerations(batch)[kin] == 0)
    nxt = model.step(batch)
    assert torch.equal(nxt[kin], batch["next"][kin])
    no_next = {k: v for k, v in batch.items() if k != "next"}
    state = batch["history"][:, -1]
    free = model.step(no_next)
    torch.testing.assert_close(free[kin, 3:], state[kin, 3:])
    torch.testing.assert_close(free[kin, :3], state[kin, :3] + DT * state[kin, 3:])
    assert not torch.allclose(free[~kin], batch["next"][~kin])


def test_parameter_and_flop_counts():
    model = tiny_model()
    assert model.num_parameters() == sum(p.numel() for p in model.parameters()) > 0
    one = collate([make_sample(60, 5)])
    two = collate([make_sample(60, 5), make_sample(60, 5)])
    f1, f2 = model.flops_per_forward(one), model.flops_per_forward(two)
    assert f1 > 2 * 5 * 16 * 16 and f2 == 2 * f1
