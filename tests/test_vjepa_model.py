"""The V-JEPA model on transformers' layers: shapes, the masked context forward, masks, loading."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from physworld.models import vjepa as V

torch.set_num_threads(1)


def _frames(b=2, t=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, size, size, generator=g)


def test_random_encoder_shapes_and_info():
    torch.manual_seed(0)
    encoder, info = V.load_video_encoder()
    assert info["grid"] == (2, 4, 4) and info["dim"] == 32 and info["tubelet"] == 2 and info["patch"] == 4
    out = encoder(_frames())
    assert out.shape == (2, 2 * 4 * 4, 32)
    assert not any(p.requires_grad for p in encoder.parameters())
    # other clip sizes are resized to the config's image size
    assert encoder(_frames(size=24)).shape == (2, 32, 32)


def test_layer_forward_matches_transformers_layer():
    torch.manual_seed(0)
    model = V.VJEPA(V.VJEPAConfig())
    layer = model.encoder.encoder.layer[0]
    x = torch.randn(2, 32, 32)
    ids = torch.arange(32).unsqueeze(0).expand(2, -1)
    ours = V.layer_forward(layer, x, ids, None)
    theirs = layer(x, ids)[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # and the whole encoder equals transformers' encoder on the full clip
    frames = _frames()
    full = model.encoder(frames)
    ref = model.encoder.encoder(model.encoder.prepare(frames)).last_hidden_state
    torch.testing.assert_close(full, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_masked_context_forward_never_sees_the_target(causal):
    torch.manual_seed(0)
    cfg = V.VJEPAConfig(causal=causal)
    model = V.VJEPA(cfg)
    g = torch.Generator().manual_seed(1)
    ctx_ids, tgt_ids = V.multiblock_masks(2, cfg.grid, g)
    frames = _frames()
    before = model.encoder(frames, ctx_ids)
    # repaint every pixel of every target token
    changed = frames.clone()
    gt, gh, gw = cfg.grid
    p, tub = cfg.patch, cfg.tubelet
    for b in range(2):
        for i in tgt_ids[b].tolist():
            t, rem = divmod(i, gh * gw)
            h, w = divmod(rem, gw)
            changed[b, t * tub : (t + 1) * tub, :, h * p : (h + 1) * p, w * p : (w + 1) * p] = 0.77
    assert not torch.equal(changed, frames)
    after = model.encoder(changed, ctx_ids)
    assert torch.equal(before, after)
    # transformers' own forward lets the masked region leak into its context features
    hf_ctx = V.gather_tokens(model.encoder.encoder(model.encoder.prepare(changed)).last_hidden_state, ctx_ids)
    hf_before = V.gather_tokens(
        model.encoder.encoder(model.encoder.prepare(frames)).last_hidden_state, ctx_ids
    )
    assert not torch.allclose(hf_ctx, hf_before)


def test_masks_are_disjoint_seeded_and_tubes():
    grid = (3, 4, 4)
    a = V.multiblock_masks(4, grid, torch.Generator().manual_seed(5))
    b = V.multiblock_masks(4, grid, torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    ctx, tgt = a
    for c, t in zip(ctx, tgt, strict=True):
        assert not set(c.tolist()) & set(t.tolist())
        assert len(c) > 0 and len(t) > 0
    ctx, tgt, k = V.causal_masks(2, grid, torch.Generator().manual_seed(0))
    assert ctx.max() < tgt.min() and ctx.shape[1] == k * 16 and tgt.shape[1] == (3 - k) * 16


def test_causal_encoder_features_ignore_the_future():
    torch.manual_seed(0)
    encoder, _ = V.load_video_encoder(config=V.VJEPAConfig(causal=True))
    frames = _frames()
    changed = frames.clone()
    changed[:, 2:] = 0.5  # the second tubelet step
    a, b = encoder(frames), encoder(changed)
    assert torch.equal(a[:, :16], b[:, :16]) and not torch.allclose(a[:, 16:], b[:, 16:])


def test_load_save_pretrained_directory_and_clear_errors(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from transformers import VJEPA2Model

    # no hub here: offline mode makes the hub id fail at once instead of after the client's retries
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    torch.manual_seed(0)
    hf = VJEPA2Model(V.hf_config(V.VJEPAConfig()))
    hf.save_pretrained(tmp_path / "tiny_vjepa2")
    encoder, info = V.load_video_encoder(tmp_path / "tiny_vjepa2")
    assert info["grid"] == (2, 4, 4)
    frames = _frames()
    with torch.no_grad():
        ref = hf(encoder.prepare(frames), skip_predictor=True).last_hidden_state
    torch.testing.assert_close(encoder(frames), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        V.load_video_encoder(tmp_path)
    with pytest.raises(FileNotFoundError, match="hub"):
        V.load_video_encoder("physworld-no-such-org/no-such-vjepa2-model")


def test_the_model_file_needs_no_simulator():
    # GPU machines may lack pymunk and pyarrow: the encoder (and bench_vjepa.py --synthetic) must not need them
    code = (
        "import sys; sys.modules.update(pymunk=None, pybullet=None, pyarrow=None)\n"
        "from physworld.models.vjepa import load_video_encoder\n"
        "print(load_video_encoder()[1]['dim'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
