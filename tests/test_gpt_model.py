"""GPT (physworld/models/gpt.py): shapes, causality, the completion-only loss mask, generation,
parameter counts, muP's coordinate check and per-group learning rates. Tiny widths, CPU, seconds."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from physworld.models.gpt import GPT, PRESETS, GPTConfig, estimated_parameters, parameter_kind
from physworld.training.loop_utils import set_lr

V, T = 32, 16


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and immune to a busy machine's OpenMP stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("tiny", vocab_size=V, block_size=T, **overrides))


def batch(b: int = 3, t: int = T, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (b, t + 1), generator=g)
    return x[:, :-1], x[:, 1:]


def perturb_readout(model: GPT) -> None:
    """muP zero-initialises the readout; give it weights so logits depend on the input."""
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("mup", [None, 32])
def test_shapes(mup):
    model = tiny(mup_base_width=mup)
    idx, tgt = batch()
    logits, loss = model(idx, tgt)
    assert logits.shape == (3, T, V)
    assert loss.shape == () and torch.isfinite(loss)
    logits, loss = model(idx[:, :5])
    assert logits.shape == (3, 5, V) and loss is None
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, T + 1, dtype=torch.long))
    if mup:  # zero readout: the model starts at the uniform distribution
        assert torch.allclose(model(idx, tgt)[1], torch.tensor(math.log(V)))


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=3, n_embd=64)
    with pytest.raises(KeyError, match="unknown preset"):
        GPTConfig.from_preset("huge", V, T)
    assert set(PRESETS) == {"tiny", "small", "125M", "350M", "760M"}
    cfg = GPTConfig.from_preset("small", V, T, dropout=0.1, mup_base_width=64)
    assert (cfg.n_layer, cfg.n_embd, cfg.dropout, cfg.width_mult) == (4, 128, 0.1, 2.0)


@pytest.mark.parametrize("mup", [None, 32])
def test_causal(mup):
    model = tiny(mup_base_width=mup)
    perturb_readout(model)
    idx, _ = batch()
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 7) % V
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.equal(a[:, :10], b[:, :10])  # earlier positions: bit-identical
    assert not torch.allclose(a[:, 10:], b[:, 10:])  # the changed position and later do see it


def test_loss_mask_is_ce_over_unmasked_positions():
    model = tiny()
    idx, tgt = batch()
    mask = torch.zeros(3, T)
    mask[:, 9:13] = 1  # "the predicted frame's tokens"
    mask[1, 9] = 0
    logits, loss = model(idx, tgt, mask)
    keep = mask.bool()
    manual = F.cross_entropy(logits[keep], tgt[keep])
    assert torch.allclose(loss, manual, rtol=1e-6)
    assert torch.allclose(model(idx, tgt, mask.bool())[1], manual, rtol=1e-6)  # bool masks too
    assert torch.allclose(model(idx, tgt)[1], F.cross_entropy(logits.flatten(0, 1), tgt.flatten()))
    zero = model(idx, tgt, torch.zeros(3, T))[1]
    assert zero.item() == 0.0  # no counted position: 0, not NaN


def test_masked_targets_get_no_gradient():
    model = tiny()
    idx, tgt = batch()
    mask = torch.zeros(3, T)
    mask[:, 12:] = 1
    logits, loss = model(idx, tgt, mask)
    logits.retain_grad()
    loss.backward()
    assert torch.count_nonzero(logits.grad[:, :12]) == 0
    assert torch.count_nonzero(logits.grad[:, 12:]) > 0
    other = tgt.clone()
    other[:, :12] = (other[:, :12] + 5) % V  # change only masked targets: the loss does not move
    assert torch.equal(model(idx, other, mask)[1], loss.detach())


def test_generate_greedy_deterministic_and_stops():
    model = tiny()
    perturb_readout(model)
    model.train()
    prompt, _ = batch(b=2, t=4)
    out = model.generate(prompt, max_new_tokens=30)  # longer than block_size: the context is cropped
    assert out.shape == (2, 34) and torch.equal(out[:, :4], prompt)
    assert torch.equal(model.generate(prompt, max_new_tokens=30), out)
    assert model.training  # mode restored
    # the stop token: whatever row 0 emits as its 3rd new token
    stop = int(out[0, 4 + 2])
    firsts = []
    for row in out:
        hits = (row[4:] == stop).nonzero()
        firsts.append(int(hits[0]) if len(hits) else None)
    stopped = model.generate(prompt, max_new_tokens=30, stop_token=stop)
    length = 4 + max(firsts) + 1 if None not in firsts else 34  # ends once every row has emitted it
    assert stopped.shape == (2, length)
    for i, f in enumerate(firsts):
        if f is None:
            assert torch.equal(stopped[i], out[i, :length])
        else:
            assert torch.equal(stopped[i, : 4 + f + 1], out[i, : 4 + f + 1])
            assert (stopped[i, 4 + f :] == stop).all()  # padded with the stop token once finished
    single = model.generate(prompt[:1], max_new_tokens=30, stop_token=stop)
    assert single.shape == (1, 4 + firsts[0] + 1) and int(single[0, -1]) == stop


@pytest.mark.parametrize("mup_base_width", [None, 32])
def test_kv_cache_matches_the_full_forward(mup_base_width):
    """Prefill, a multi-token chunk and single tokens through the cache give the logits of one pass."""
    model = tiny(mup_base_width=mup_base_width).eval()
    perturb_readout(model)
    idx, _ = batch(b=2, t=T)
    full = model.head(model.hidden_states(idx))  # [B, T, V]
    cache = model.new_cache()
    pieces = [idx[:, :5], idx[:, 5:9], *[idx[:, i : i + 1] for i in range(9, T)]]
    cached = torch.cat([model.head(model.hidden_states(piece, cache)) for piece in pieces], dim=1)
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)
    assert cache[0][0].shape == (2, 4, T, 16)  # [B, n_head, T, head_dim]
    with pytest.raises(ValueError, match="exceeds block_size"):
        model.hidden_states(idx[:, :1], cache)


def test_cached_generation_equals_the_uncached_reference():
    model = tiny()
    perturb_readout(model)
    for t in (1, 4, T):  # short prompts run past block_size while generating; T starts at the limit
        prompt, _ = batch(b=2, t=t, seed=t)
        ref = model.generate(prompt, max_new_tokens=24, use_cache=False)
        assert torch.equal(model.generate(prompt, max_new_tokens=24), ref)
        kw = dict(temperature=0.8, top_k=10)
        a = model.generate(prompt, 24, generator=torch.Generator().manual_seed(5), **kw)
        b = model.generate(prompt, 24, generator=torch.Generator().manual_seed(5), use_cache=False, **kw)
        assert torch.equal(a, b)


def test_generate_sampling():
    model = tiny()
    perturb_readout(model)
    prompt, _ = batch(b=2, t=4)
    greedy = model.generate(prompt, 8)
    assert torch.equal(model.generate(prompt, 8, temperature=1.0, top_k=1), greedy)
    a = model.generate(prompt, 8, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = model.generate(prompt, 8, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        model.generate(prompt, 1, temperature=-1.0)


def expected_count(d: int, layers: int, vocab: int, block: int, bias: bool) -> int:
    """Written out per tensor, independently of gpt.estimated_parameters."""
    b = 1 if bias else 0
    per_block = (d + b * d) * 2 + (d * 3 * d + b * 3 * d) + (d * d + b * d) + (d * 4 * d + b * 4 * d)
    per_block += 4 * d * d + b * d
    return vocab * d + block * d + layers * per_block + (d + b * d) + d * vocab


@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("bias", [False, True])
def test_preset_parameter_counts(preset, bias):
    cfg = GPTConfig.from_preset(preset, vocab_size=V, block_size=T, bias=bias)
    model = GPT(cfg)
    d, L = PRESETS[preset]["n_embd"], PRESETS[preset]["n_layer"]
    total = expected_count(d, L, V, T, bias)
    assert model.num_parameters(non_embedding=False) == total == estimated_parameters(cfg)
    assert model.num_parameters() == total - V * d - T * d == estimated_parameters(cfg, non_embedding=True)
    for name, _ in model.named_parameters():
        parameter_kind(name)  # every parameter has a muP rule


def test_large_presets_counted_without_allocating():
    # GPT-2 small (124,439,808) and medium (354,823,168) parameters, tied; ours adds the untied head
    vocab, ctx = 50257, 1024
    for preset, gpt2 in (("125M", 124_439_808), ("350M", 354_823_168)):
        cfg = GPTConfig.from_preset(preset, vocab, ctx, bias=True)
        assert estimated_parameters(cfg) - vocab * cfg.n_embd == gpt2
    cfg = GPTConfig.from_preset("760M", vocab, 2048)  # GPT-3 Large shape: about 760M with a tied head
    assert 755e6 < estimated_parameters(cfg) - vocab * cfg.n_embd < 765e6
    cfg = GPTConfig.from_preset("125M", V, 512)  # with a character vocabulary: the blocks dominate
    assert estimated_parameters(cfg) == expected_count(768, 12, V, 512, bias=False)


def test_same_shape_as_hf_gpt2():
    transformers = pytest.importorskip("transformers")
    cfg = GPTConfig.from_preset("tiny", V, T, bias=True)
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=V,
            n_positions=T,
            n_embd=64,
            n_layer=2,
            n_head=4,
            tie_word_embeddings=False,
            bos_token_id=None,
            eos_token_id=None,
        )
    )
    assert sum(p.numel() for p in hf.parameters()) == GPT(cfg).num_parameters(non_embedding=False)


def test_flops_per_token():
    model = tiny()
    c = model.config
    assert model.flops_per_token() == 6 * model.num_parameters() + 12 * c.n_layer * T * c.n_embd
    assert model.flops_per_token(4) == 6 * model.num_parameters() + 12 * c.n_layer * 4 * c.n_embd


def test_mup_init_rules():
    for width in (64, 256):
        sp = GPT(GPTConfig(V, T, n_layer=2, n_head=4, n_embd=width))
        mup = GPT(GPTConfig(V, T, n_layer=2, n_head=4, n_embd=width, mup_base_width=64))
        m = width / 64
        p = dict(mup.named_parameters())
        std = 0.02 / math.sqrt(m)
        assert p["transformer.h.0.attn.c_attn.weight"].std().item() == pytest.approx(std, rel=0.05)
        assert p["transformer.h.0.mlp.c_fc.weight"].std().item() == pytest.approx(std, rel=0.05)
        assert p["transformer.h.0.mlp.c_proj.weight"].std().item() == pytest.approx(std / 2, rel=0.05)  # 2L=4
        assert p["transformer.wte.weight"].std().item() == pytest.approx(0.02, rel=0.1)
        assert p["transformer.wpe.weight"].std().item() == pytest.approx(0.02, rel=0.1)
        assert torch.count_nonzero(p["lm_head.weight"]) == 0
        assert (p["transformer.ln_f.weight"] == 1).all()
        assert mup.readout_scale == pytest.approx(1 / m)
        assert mup.transformer.h[0].attn.scale == pytest.approx(1.0 / (width // 4))
        q = dict(sp.named_parameters())
        assert q["transformer.h.0.attn.c_attn.weight"].std().item() == pytest.approx(0.02, rel=0.05)
        assert sp.readout_scale == 1.0
        assert sp.transformer.h[0].attn.scale == pytest.approx(1 / math.sqrt(width // 4))


def test_optimizer_groups():
    lr, wd = 1e-3, 0.1
    model = GPT(GPTConfig(V, T, n_layer=2, n_head=4, n_embd=128, mup_base_width=32, bias=True))
    opt = model.configure_optimizers(weight_decay=wd, lr=lr, betas=(0.9, 0.95))
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"hidden", "embedding", "readout", "vector"}
    expected = {"hidden": (lr / 4, wd * 4), "embedding": (lr, wd), "readout": (lr, wd), "vector": (lr, 0.0)}
    for name, (g_lr, g_wd) in expected.items():
        assert groups[name]["lr"] == pytest.approx(g_lr) and groups[name]["weight_decay"] == pytest.approx(
            g_wd
        )
        assert groups[name]["betas"] == (0.9, 0.95)
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in groups["readout"]["params"]} == {"lm_head.weight"}
    assert len(groups["hidden"]["params"]) == 2 * 4  # c_attn, c_proj, c_fc, c_proj per block
    assert all(p.ndim == 1 for p in groups["vector"]["params"])
    set_lr(opt, 2e-3)  # a schedule keeps the muP ratio through lr_scale
    assert groups["hidden"]["lr"] == pytest.approx(2e-3 / 4) and groups["vector"]["lr"] == pytest.approx(2e-3)
    sp = GPT(GPTConfig(V, T, n_layer=2, n_head=4, n_embd=128))
    sp_groups = sp.configure_optimizers(weight_decay=wd, lr=lr, betas=(0.9, 0.95)).param_groups
    assert all(g["lr"] == lr for g in sp_groups)
    assert {g["name"]: g["weight_decay"] for g in sp_groups}["hidden"] == wd


# ------------------------------------------------------------------ muP coordinate check

WIDTHS = (32, 64, 128, 256)


def coordinate_stats(width: int, mup: bool, lr: float = 1e-2, steps: int = 3) -> dict[str, float]:
    """Train `steps` AdamW steps on one fixed batch; mean |x| of the last block's output and of the
    logits, and mean |logits - logits at init|, measured on that batch afterwards."""
    torch.manual_seed(0)
    cfg = GPTConfig(V, T, n_layer=2, n_head=4, n_embd=width, mup_base_width=32 if mup else None)
    model = GPT(cfg)
    idx, tgt = batch(b=8)
    opt = model.configure_optimizers(weight_decay=0.0, lr=lr, betas=(0.9, 0.95))
    with torch.no_grad():
        logits0, _ = model(idx)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        model(idx, tgt)[1].backward()
        opt.step()
    seen = {}
    hook = model.transformer.h[-1].register_forward_hook(lambda mod, args, out: seen.update(block=out))
    with torch.no_grad():
        logits, _ = model(idx)
    hook.remove()
    return {
        "block": seen["block"].abs().mean().item(),
        "logits": logits.abs().mean().item(),
        "dlogits": (logits - logits0).abs().mean().item(),
    }


def test_mup_coordinate_check():
    """muP keeps activations' scale width-independent after training steps at one lr; SP does not."""
    ratios = {}
    for mup in (True, False):
        stats = [coordinate_stats(w, mup) for w in WIDTHS]
        ratios[mup] = {k: stats[-1][k] / stats[0][k] for k in stats[0]}
        for k in stats[0]:
            print(
                f"{'muP' if mup else 'SP '} {k:8s}",
                " ".join(f"{s[k]:.4f}" for s in stats),
                f"ratio {ratios[mup][k]:.2f}",
            )
    for k, r in ratios[True].items():
        assert 0.5 < r < 2.0, (k, r)  # muP: widest / narrowest within 2x
    assert ratios[False]["dlogits"] > 3.0  # SP: the logits' change grows with width...
    assert ratios[False]["block"] > 10.0  # ...and so does the residual stream
    for k in ratios[True]:
        assert ratios[False][k] > 2.5 * max(ratios[True][k], 1 / ratios[True][k]), k
