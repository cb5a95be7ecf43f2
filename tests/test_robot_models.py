"""The robot model families: losses against hand-computed values, shapes, the skill routing."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from physworld.models.convgru import ConvGRUConfig, ConvGRUDynamics
from physworld.models.sac import SACNetConfig, SkillActor, VectorCritic
from physworld.models.simclr import SimCLR, SimCLRConfig, augment, nt_xent
from physworld.models.unet import UNet, UNetConfig, dice_loss, focal_loss
from physworld.recipes.simclr import ridge_probe

torch.set_num_threads(1)


def test_nt_xent_matches_a_hand_computation():
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]]), dim=1)
    t = 0.5
    sim = (z @ z.t() / t).numpy()
    expected = 0.0
    for i, pos in enumerate([2, 3, 0, 1]):
        others = [j for j in range(4) if j != i]
        expected += -sim[i, pos] + math.log(sum(math.exp(sim[i, j]) for j in others))
    assert float(nt_xent(z, t)) == pytest.approx(expected / 4, rel=1e-5)


def test_nt_xent_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(16, 8, generator=g), dim=1)
    aligned = nt_xent(torch.cat([a, a]), 0.2)
    shuffled = nt_xent(torch.cat([a, a[torch.randperm(16, generator=g)]]), 0.2)
    assert aligned < shuffled


def test_simclr_loss_and_augment_shapes():
    m = SimCLR(SimCLRConfig(width=8, embed_dim=16, proj_dim=8, reconstruction_weight=1.0))
    x = torch.rand(4, 3, 32, 32)
    v = augment(x, torch.Generator().manual_seed(0))
    assert v.shape == x.shape and v.min() >= 0 and v.max() <= 1 and not torch.equal(v, x)
    out = m.loss(v, augment(x, torch.Generator().manual_seed(1)), x)
    assert set(out) == {"loss", "nt_xent", "reconstruction"} and torch.isfinite(out["loss"])
    assert m.encoder.feature_map(x).shape == (4, 16, 4, 4)


def test_focal_with_gamma_zero_is_cross_entropy_and_dice_is_zero_when_perfect():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    assert float(focal_loss(logits, target, 0.0)) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-5
    )
    assert focal_loss(logits, target, 2.0) < focal_loss(logits, target, 0.0)
    perfect = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 100
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-4)


def test_unet_shapes():
    m = UNet(UNetConfig(width=4, depth=2))
    assert m(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_convgru_rollout_and_smoothness():
    m = ConvGRUDynamics(ConvGRUConfig(feature_channels=6, hidden_channels=5))
    f = torch.randn(2, 4, 6, 3, 3)
    a = torch.randn(2, 3, 4)
    preds, hidden = m.rollout(f[:, 0], a)
    assert preds.shape == (2, 3, 6, 3, 3) and hidden.shape == (2, 3, 5, 3, 3)
    out = m.loss(f, a)
    assert out["smoothness"] > 0 and torch.isfinite(out["loss"])


def test_skill_heads_are_separate():
    actor = SkillActor(SACNetConfig(hidden=16))
    obs = torch.randn(3, 39)
    skill0 = torch.zeros(3, dtype=torch.long)
    before = actor(obs, skill0)[0].clone()
    with torch.no_grad():  # change only skill 1's head
        a = actor.cfg.action_dim
        actor.heads.weight[2 * a : 4 * a] += 1.0
    assert torch.equal(actor(obs, skill0)[0], before)
    assert not torch.equal(actor(obs, torch.ones(3, dtype=torch.long))[0], before)


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    actor = SkillActor(SACNetConfig(hidden=16))
    obs, skill = torch.randn(5, 39), torch.tensor([0, 1, 2, 0, 1])
    g = torch.Generator().manual_seed(3)
    action, logp, _ = actor.sample(obs, skill, g)
    mean, log_std = actor(obs, skill)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform(cache_size=1)]
    )
    pre = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(pre).sum(-1) - torch.log1p(
        -action.pow(2) + 1e-12
    ).sum(-1)
    assert torch.allclose(logp, expected, atol=1e-3)
    del dist


def test_vector_critic_shape():
    q = VectorCritic(SACNetConfig(hidden=16))
    assert q(torch.randn(7, 39), torch.randn(7, 4)).shape == (2, 7, 4)


def test_ridge_probe_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = x @ rng.normal(size=(5, 2)) + 0.3
    r = ridge_probe(x[:150], y[:150], x[150:], y[150:], ridge=1e-6)
    assert min(r["r2"]) > 0.999


def test_untrained_convgru_starts_at_copy_last():
    m = ConvGRUDynamics(ConvGRUConfig(feature_channels=6, hidden_channels=5))
    f0 = torch.randn(2, 6, 3, 3)
    preds, _ = m.rollout(f0, torch.randn(2, 4, 4))
    assert torch.equal(preds, f0[:, None].expand_as(preds))
