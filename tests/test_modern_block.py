"""The modern block's switches, in the one shared stack: normalization ('layernorm' or
'rmsnorm', rmsnorm_affine), activation ('gelu', 'relu', 'swiglu', 'relu2'), n_kv_head
(grouped-query attention), qk_norm, logit_softcap, bias and rope_theta.

- each switch builds what it says (the parameters it adds or removes, their shapes);
- grouped-query attention against PyTorch (its scaled_dot_product_attention with enable_gqa,
  and a torch reference of the whole layer with QK-norm and RoPE), and against plain
  multi-head attention with each key-value head copied to its group;
- for each switch and all together: causality, padding, and the KV cache (cached logits equal
  recomputed ones, the cache holding n_kv_head heads), in GPT, BERT and the Transformer;
- bad settings are one-line errors; a config without the switches (an old checkpoint's) builds
  the model it always did.
The ops themselves (RMS norm, SwiGLU, squared ReLU, soft-capping) are in tests/op_cases.py
(gradcheck, gradgradcheck, PyTorch); here their second derivatives against PyTorch's too;
whole models' second derivatives in tests/test_second_order.py.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyautograd as ta
from precision import to_float64
from tinyautograd import Tensor, nn
from tinyautograd import functional as F
from tinyformer import BERT, GPT, MultiHeadAttention, Transformer
from tinyformer.attention import KVCache, causal_mask, padding_mask
from tinyformer.layers import FeedForward, RotaryPositions, default_d_ff
from tinyformer.summary import flops_per_token, summary

V, CONTEXT = 13, 12
SIZES = dict(n_layer=2, n_head=4, d_model=16)

# Each switch on its own, then all of them (Llama's block with Qwen3's QK-norm and Gemma's
# soft-capping; and nanochat's, with the squared ReLU and RMS norms without weights).
SWITCHES = {
    "rmsnorm": dict(normalization="rmsnorm"),
    "rmsnorm, no weight": dict(normalization="rmsnorm", rmsnorm_affine=False),
    "swiglu": dict(activation="swiglu"),
    "relu2": dict(activation="relu2"),
    "gqa": dict(n_kv_head=2),
    "mqa": dict(n_kv_head=1),
    "qk_norm": dict(qk_norm=True),
    "qk_norm, layernorm, no bias": dict(qk_norm=True, bias=False),
    "softcap": dict(logit_softcap=2.0),
    "no bias": dict(bias=False),
    "rope_theta": dict(positions="rope", rope_theta=500.0),
    "all": dict(positions="rope", rope_theta=500.0, normalization="rmsnorm",
                activation="swiglu", n_kv_head=2, qk_norm=True, logit_softcap=5.0, bias=False),
    "nanochat": dict(positions="rope", normalization="rmsnorm", rmsnorm_affine=False,
                     activation="relu2", n_kv_head=1, qk_norm=True, logit_softcap=3.0,
                     bias=False, tie_weights=False),
}


def sharpened(model, scale=3.0):
    """Weights larger than initialisation's, so that every part of the model matters."""
    rng = np.random.default_rng(5)
    for name, p in model.named_parameters():
        centre = 1.0 if "norm" in name and name.endswith("weight") else 0.0
        p.data = (centre + scale * 0.3 * rng.standard_normal(p.shape)).astype(p.dtype)
    return model.eval()


def gpt(**switches):
    ta.manual_seed(0)
    return sharpened(GPT(V, CONTEXT, **SIZES, **switches))


def tokens(shape, seed=0, low=0):
    return np.random.default_rng(seed).integers(low, V, shape)


# --------------------------------------------------------------------------------------------
# What each switch builds


def test_rmsnorm_puts_an_rms_norm_wherever_a_layer_norm_was():
    for model in (GPT(V, CONTEXT, **SIZES, normalization="rmsnorm"),
                  BERT(V, CONTEXT, **SIZES, normalization="rmsnorm", norm="pre"),
                  Transformer(V, V, CONTEXT, **SIZES, normalization="rmsnorm", norm="pre")):
        norms = [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))]
        assert norms and all(isinstance(m, nn.RMSNorm) for m in norms)
    affine = GPT(V, CONTEXT, **SIZES, normalization="rmsnorm")
    plain = GPT(V, CONTEXT, **SIZES, normalization="rmsnorm", rmsnorm_affine=False)
    norm_weights = [n for n, _ in affine.named_parameters() if "norm" in n]
    assert len(norm_weights) == 2 * 2 + 1 and all(n.endswith(".weight") for n in norm_weights)
    assert not any("norm" in n for n, _ in plain.named_parameters())   # nothing to learn
    assert plain.num_parameters() == affine.num_parameters() - 5 * 16


def test_the_norm_modules_hold_what_they_learn():
    assert [n for n, _ in nn.LayerNorm(4, bias=False).named_parameters()] == ["weight"]
    assert [n for n, _ in nn.RMSNorm(4).named_parameters()] == ["weight"]
    assert list(nn.RMSNorm(4, elementwise_affine=False).named_parameters()) == []
    assert repr(nn.RMSNorm(4, elementwise_affine=False)) == \
        "RMSNorm(4, eps=1e-06, elementwise_affine=False)"
    assert repr(nn.LayerNorm(4, bias=False)) == "LayerNorm(4, eps=1e-05, bias=False)  # 4 params"
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(nn.RMSNorm(4, eps=1e-3)(Tensor(x)).data,
                               x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-3), rtol=1e-6)
    centred = x - x.mean(-1, keepdims=True)
    np.testing.assert_allclose(nn.LayerNorm(4, bias=False)(Tensor(x)).data,
                               centred / np.sqrt(centred.var(-1, keepdims=True) + 1e-5),
                               rtol=1e-5)


def test_no_bias_leaves_no_bias_anywhere():
    for model in (GPT(V, CONTEXT, **SIZES, bias=False, qk_norm=True),
                  BERT(V, CONTEXT, **SIZES, bias=False),
                  Transformer(V, V, CONTEXT, **SIZES, bias=False, tie_weights=False)):
        names = [n for n, _ in model.named_parameters()]
        assert not [n for n in names if n.endswith("bias")]
        assert any(n.endswith("norm.weight") for n in names)      # the norms keep their scale
    with_bias = [n for n, _ in GPT(V, CONTEXT, **SIZES).named_parameters() if "bias" in n]
    assert len(with_bias) == 2 * (4 + 2 + 2) + 1                  # 4 + 2 linears, 2 norms


def test_swiglu_has_a_gate_beside_the_values_and_its_own_width_rule():
    model = GPT(V, CONTEXT, **SIZES, activation="swiglu")
    ffn = model.decoder.layers[0].ffn
    d_ff = default_d_ff(16, "swiglu")
    assert d_ff == 48 and model.config["d_ff"] == 48                # 2/3 of 4 * 16, to 8s
    assert ffn.fc1.weight.shape == (16, 2 * 48) and ffn.fc2.weight.shape == (48, 16)
    assert default_d_ff(576, "swiglu") == 1536                      # SmolLM-135M's width
    assert default_d_ff(64, "gelu") == 256
    given = GPT(V, CONTEXT, **SIZES, activation="swiglu", d_ff=20).decoder.layers[0].ffn
    assert given.fc1.weight.shape == (16, 40) and given.fc2.weight.shape == (20, 16)


def test_the_feed_forward_computes_each_activation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 16))
    for activation, act in [("swiglu", lambda h: TF.silu(h[..., :48]) * h[..., 48:]),
                            ("relu2", lambda h: torch.relu(h) ** 2),
                            ("gelu", lambda h: TF.gelu(h, approximate="tanh"))]:
        ffn = GPT(V, CONTEXT, **SIZES, activation=activation).decoder.layers[0].ffn
        w1, b1, w2, b2 = (torch.tensor(p.data, dtype=torch.float64)
                          for p in (ffn.fc1.weight, ffn.fc1.bias, ffn.fc2.weight, ffn.fc2.bias))
        want = act(torch.tensor(x) @ w1 + b1) @ w2 + b2
        np.testing.assert_allclose(ffn(Tensor(x)).data, want.numpy(), rtol=1e-4, atol=1e-6)


def test_grouped_query_attention_has_fewer_key_and_value_heads():
    attn = GPT(V, CONTEXT, **SIZES, n_kv_head=2).decoder.layers[0].attn
    assert attn.q.weight.shape == (16, 16) and attn.out.weight.shape == (16, 16)
    assert attn.k.weight.shape == (16, 8) and attn.v.weight.shape == (16, 8)
    mqa = GPT(V, CONTEXT, **SIZES, n_kv_head=1).decoder.layers[0].attn
    assert mqa.k.weight.shape == (16, 4)
    assert "n_kv_head=2" in repr(attn)


SWITCHES_SET = [("normalization", "rmsnorm"), ("activation", "relu2"), ("n_kv_head", 2),
                ("qk_norm", True), ("logit_softcap", 30.0), ("bias", False),
                ("positions", "rope"), ("tie_weights", False), ("pad_id", 0)]


@pytest.mark.parametrize("model, switch, value", [
    (model, switch, value) for model in (GPT, BERT, Transformer) for switch, value in SWITCHES_SET
    if not (model is GPT and switch == "pad_id")])        # a GPT has no padding mask
def test_every_switch_set_shows_in_the_models_repr(model, switch, value):
    # The tree shows most switches by its modules (RMSNorm, n_kv_head=2 in the attention's
    # line); the head's soft cap and the padding id hidden from attention left no trace, so two
    # models that compute differently printed the same.
    def built(**switches):
        if model is Transformer:
            return Transformer(V, V, CONTEXT, **SIZES, **switches)
        return model(V, CONTEXT, **SIZES, **switches)
    assert repr(built(**{switch: value})) != repr(built())
    if switch in ("logit_softcap", "pad_id"):
        assert f"{switch}={value!r}" in repr(built(**{switch: value})).splitlines()[0]


@pytest.mark.parametrize("model", [GPT, BERT, Transformer])
def test_a_switch_left_off_is_not_shown_in_the_models_repr(model):
    # Off is None: "logit_softcap=None, pad_id=None" on every default model's first line
    # would be noise, as torch leaves out an Embedding's padding_idx where it is not set.
    built = (Transformer(V, V, CONTEXT, **SIZES) if model is Transformer
             else model(V, CONTEXT, **SIZES))
    first = repr(built).splitlines()[0]
    assert "logit_softcap" not in first and "pad_id" not in first and "None" not in first


def test_qk_norm_shows_its_normalization_in_the_attentions_repr():
    attn = MultiHeadAttention(16, 4, qk_norm=True, normalization="rmsnorm")
    assert "qk_norm=True" in repr(attn).splitlines()[0]
    assert "(q_norm): RMSNorm(4, eps=1e-06)" in repr(attn)


def test_qk_norm_makes_attention_blind_to_the_size_of_queries_and_keys():
    # Each head's queries and keys are normalised: scaling their projections changes nothing
    # (without QK-norm it sharpens the softmax), and per-head weights of shape (d_head,).
    x = Tensor(np.random.default_rng(0).standard_normal((2, 5, 16)), dtype=np.float64)
    for qk_norm in (True, False):
        attn = float64_attention(qk_norm=qk_norm, normalization="rmsnorm", bias=False)
        before = attn(x, mask=causal_mask(5)).data
        attn.q.weight.data = 10 * attn.q.weight.data
        attn.k.weight.data = 0.5 * attn.k.weight.data
        after = attn(x, mask=causal_mask(5)).data
        assert np.allclose(before, after, rtol=1e-5) == qk_norm
    assert isinstance(attn, MultiHeadAttention)
    qk = GPT(V, CONTEXT, **SIZES, qk_norm=True, normalization="rmsnorm").decoder.layers[0].attn
    assert isinstance(qk.q_norm, nn.RMSNorm) and qk.q_norm.weight.shape == (4,)
    assert isinstance(GPT(V, CONTEXT, **SIZES, qk_norm=True).decoder.layers[0].attn.k_norm,
                      nn.LayerNorm)


def test_rope_theta_is_the_base_of_the_rotation():
    rope = RotaryPositions(context=6, d_head=4, base=100.0)
    np.testing.assert_allclose(rope.cos[5], np.cos(5 * 100.0 ** -np.array([0, 0.5])))
    default, other = gpt(positions="rope"), gpt(positions="rope", rope_theta=50.0)
    idx = tokens((1, 8))
    assert not np.allclose(default(idx).data, other(idx).data)
    with pytest.raises(ValueError, match="rope_theta must be a finite number > 1, got 0"):
        GPT(V, CONTEXT, **SIZES, positions="rope", rope_theta=0)


def test_softcap_squashes_the_logits_and_nothing_else():
    capped, free = gpt(logit_softcap=1.5), gpt()
    idx = tokens((2, 8))
    raw = free(idx).data
    assert np.abs(raw).max() > 3                       # large enough for the cap to matter
    got = capped(idx).data
    assert np.abs(got).max() < 1.5
    np.testing.assert_allclose(got, 1.5 * np.tanh(raw / 1.5), rtol=1e-5, atol=1e-6)


def test_softcap_and_rope_theta_act_in_every_model():
    idx = tokens((2, 8), low=1)
    for build in (lambda **k: GPT(V, CONTEXT, **SIZES, **k),
                  lambda **k: BERT(V, CONTEXT, **SIZES, **k),
                  lambda **k: Transformer(V, V, CONTEXT, **SIZES, tie_weights=False, **k)):
        ta.manual_seed(0)
        model = sharpened(build(logit_softcap=0.5, positions="rope", rope_theta=77.0), 5.0)
        logits = (model(idx, idx) if isinstance(model, Transformer) else model(idx)).data
        assert 0.45 < np.abs(logits).max() <= 0.5          # float32: tanh rounds to 1
        rotaries = [m for m in model.modules() if isinstance(m, RotaryPositions)]
        assert rotaries and all(r.base == 77.0 for r in rotaries)


def test_the_switches_reach_bert_and_the_transformer_too():
    for model in (BERT(V, CONTEXT, **SIZES, **SWITCHES["all"]),
                  Transformer(V, V, CONTEXT, **SIZES, **SWITCHES["all"])):
        attentions = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
        assert all(a.n_kv_head == 2 and a.q_norm is not None for a in attentions)
        assert all(m.fc1.weight.shape == (16, 2 * 48) for m in model.modules()
                   if isinstance(m, FeedForward))
        assert model.logit_softcap == 5.0


def test_d_head_can_differ_from_d_model_over_n_head():
    model = gpt(d_head=6, n_kv_head=2, positions="rope", qk_norm=True)
    attn = model.decoder.layers[0].attn
    assert attn.q.weight.shape == (16, 24) and attn.k.weight.shape == (16, 12)
    assert attn.out.weight.shape == (24, 16) and attn.q_norm.weight.shape == (6,)
    check_cache_equals_recomputing(model)


def test_d_head_reaches_every_attention_of_bert_and_the_transformer():
    switches = dict(d_head=6, n_kv_head=2, positions="rope", qk_norm=True)
    bert = BERT(V, CONTEXT, **SIZES, **switches)
    seq2seq = Transformer(V, V, CONTEXT, **SIZES, **switches)
    for model in (bert, seq2seq):
        attentions = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
        assert len(attentions) == (2 if model is bert else 6)
        for attn in attentions:
            assert attn.q.weight.shape == (16, 24) and attn.k.weight.shape == (16, 12)
            assert attn.out.weight.shape == (24, 16) and attn.q_norm.weight.shape == (6,)
        assert all(m.rotary.d_head == 6 for m in model.modules() if hasattr(m, "rotary")
                   and m.rotary is not None)
        assert type(model)(**model.config).config == model.config    # a checkpoint rebuilds it
    with ta.no_grad():
        assert bert(tokens((2, 5))).shape == (2, 5, V)
    model = to_float64(seq2seq)
    src, tgt = tokens((2, 6), seed=1), tokens((2, 7), seed=2)
    with ta.no_grad():
        memory, src_mask = model.encode(src)
        full = model.decode(tgt, memory, src_mask).data
        cache = KVCache()
        steps = [model.decode(tgt[:, t:t + 1], memory, src_mask, cache).data for t in range(7)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------------
# The new ops' second derivatives against PyTorch's (first derivatives: tests/op_cases.py)


NEW_OPS = {
    "rms_norm": (lambda x, w: F.rms_norm(x, w, eps=1e-3),
                 lambda x, w: TF.rms_norm(x, (x.shape[-1],), w, 1e-3), [(3, 5), (5,)]),
    "swiglu": (F.swiglu, lambda x: TF.silu(x[..., :3]) * x[..., 3:], [(2, 4, 6)]),
    "relu_squared": (F.relu_squared, lambda x: torch.relu(x) ** 2, [(4, 5)]),
    "softcap": (lambda x: F.softcap(x, 1.5), lambda x: 1.5 * torch.tanh(x / 1.5), [(4, 5)]),
}


@pytest.mark.parametrize("name", NEW_OPS)
def test_the_new_ops_second_derivatives_are_pytorchs(name):
    ours_fn, torch_fn, shapes = NEW_OPS[name]
    rng = np.random.default_rng(3)
    arrays = [2 * rng.standard_normal(shape) for shape in shapes]
    out_shape = ours_fn(*[Tensor(a, dtype=np.float64) for a in arrays]).shape
    v = rng.standard_normal(out_shape)                  # d(v . f(x))/dx, then along w
    w = [rng.standard_normal(shape) for shape in shapes]
    ours = [Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    grads = ta.grad((ours_fn(*ours) * v).sum(), ours, create_graph=True)
    hvp = ta.grad(sum((g * wi).sum() for g, wi in zip(grads, w)), ours)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_grads = torch.autograd.grad((torch_fn(*theirs) * torch.tensor(v)).sum(), theirs,
                                  create_graph=True)
    t_hvp = torch.autograd.grad(sum((g * torch.tensor(wi)).sum() for g, wi in zip(t_grads, w)),
                                theirs)
    for mine, want in zip(hvp, t_hvp):
        np.testing.assert_allclose(mine.data, want.numpy(), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Grouped-query attention against PyTorch and against copied heads


def float64_attention(**kwargs):
    ta.manual_seed(0)
    attn = MultiHeadAttention(16, 4, **kwargs)
    rng = np.random.default_rng(7)
    for p in attn.parameters():
        p.data = rng.standard_normal(p.shape)
    return attn


def copied_heads(grouped):
    """Plain multi-head attention with grouped's weights, each key-value head copied to every
    query head of its group: the function grouped-query attention must compute."""
    full = float64_attention(bias=grouped.q.bias is not None)
    group, d = grouped.n_head // grouped.n_kv_head, grouped.d_head
    for name in ("q", "out"):
        for p in ("weight", "bias"):
            if getattr(getattr(grouped, name), p) is not None:
                getattr(getattr(full, name), p).data = getattr(getattr(grouped, name), p).data
    for name in ("k", "v"):
        w = getattr(grouped, name).weight.data.reshape(16, grouped.n_kv_head, 1, d)
        getattr(full, name).weight.data = np.broadcast_to(
            w, (16, grouped.n_kv_head, group, d)).reshape(16, 16).copy()
        b = getattr(grouped, name).bias
        if b is not None:
            getattr(full, name).bias.data = np.repeat(b.data.reshape(-1, 1, d), group,
                                                      axis=1).reshape(16)
    return full


@pytest.mark.parametrize("n_kv_head", [1, 2])
@pytest.mark.parametrize("mask_kind", ["causal", "padding", "per head"])
def test_grouped_query_attention_is_attention_with_each_kv_head_copied(n_kv_head, mask_kind):
    grouped = float64_attention(n_kv_head=n_kv_head)
    full = copied_heads(grouped)
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 5, 16)), dtype=np.float64)
    mask = {"causal": causal_mask(5),
            "padding": padding_mask(np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)),
            "per head": rng.random((2, 4, 5, 5)) < 0.6}[mask_kind]
    grouped.record_weights = full.record_weights = True
    np.testing.assert_allclose(grouped(x, mask=mask).data, full(x, mask=mask).data,
                               rtol=1e-12, atol=1e-12)
    assert grouped.last_weights.shape == (2, 4, 5, 5)
    np.testing.assert_allclose(grouped.last_weights, full.last_weights, rtol=1e-12, atol=1e-14)


def test_grouped_scores_match_torch_scaled_dot_product_attention_with_enable_gqa():
    # The op itself on grouped shapes: queries (B, n_kv, group, T, d) against keys and values
    # (B, n_kv, 1, S, d), gradients summed over each group by the engine.
    from tinyformer.attention import scaled_dot_product_attention
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal(s) for s in [(2, 6, 5, 3), (2, 2, 5, 3), (2, 2, 5, 4)])
    mask = causal_mask(5)
    ours = [Tensor(a, requires_grad=True, dtype=np.float64) for a in (q, k, v)]
    out = scaled_dot_product_attention(ours[0].reshape(2, 2, 3, 5, 3),
                                       ours[1].reshape(2, 2, 1, 5, 3),
                                       ours[2].reshape(2, 2, 1, 5, 4), mask)
    upstream = rng.standard_normal((2, 6, 5, 4))
    out.reshape(2, 6, 5, 4).backward(upstream)
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    want = TF.scaled_dot_product_attention(*theirs, attn_mask=torch.tensor(mask),
                                           enable_gqa=True)
    want.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out.data.reshape(2, 6, 5, 4), want.detach().numpy(), rtol=1e-10)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)


def torch_attention(attn, x, mask):
    """attn's function in PyTorch, from its weights: grouped heads, QK-norm (RMS norm with a
    weight) and RoPE on interleaved pairs."""
    p = {name: torch.tensor(t.data, requires_grad=True) for name, t in attn.named_parameters()}
    B, T, _ = x.shape
    H, KV, d = attn.n_head, attn.n_kv_head, attn.d_head
    q = (x @ p["q.weight"] + p["q.bias"]).reshape(B, T, H, d).transpose(1, 2)
    k = (x @ p["k.weight"] + p["k.bias"]).reshape(B, T, KV, d).transpose(1, 2)
    v = (x @ p["v.weight"] + p["v.bias"]).reshape(B, T, KV, d).transpose(1, 2)
    q = TF.rms_norm(q, (d,), p["q_norm.weight"], attn.q_norm.eps)
    k = TF.rms_norm(k, (d,), p["k_norm.weight"], attn.k_norm.eps)
    cos, sin = (torch.tensor(a[:T]) for a in (attn.rotary.cos, attn.rotary.sin))

    def rotate(t):
        even, odd = t[..., 0::2], t[..., 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).flatten(-2)

    heads = TF.scaled_dot_product_attention(rotate(q), rotate(k), v,
                                            attn_mask=torch.tensor(mask), enable_gqa=True)
    out = heads.transpose(1, 2).reshape(B, T, H * d) @ p["out.weight"] + p["out.bias"]
    return out, p


def test_grouped_attention_with_qk_norm_and_rope_matches_torch():
    attn = float64_attention(n_kv_head=2, qk_norm=True, normalization="rmsnorm",
                             rotary=RotaryPositions(8, 4, base=100.0))
    for norm in (attn.q_norm, attn.k_norm):
        norm.weight.data = 1 + 0.3 * np.random.default_rng(3).standard_normal(4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 16))
    upstream = rng.standard_normal((2, 6, 16))
    out = attn(Tensor(x, dtype=np.float64), mask=causal_mask(6))
    out.backward(upstream)
    want, params = torch_attention(attn, torch.tensor(x), causal_mask(6))
    want.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out.data, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name, p in attn.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


# --------------------------------------------------------------------------------------------
# Causality, padding and the KV cache, for every switch


@pytest.mark.parametrize("name", SWITCHES)
def test_a_later_token_changes_no_earlier_logit(name):
    model = gpt(**SWITCHES[name])
    idx = tokens((2, 10))
    changed = idx.copy()
    changed[:, 6:] = (changed[:, 6:] + 5) % V
    with ta.no_grad():
        before, after = model(idx).data, model(changed).data
    np.testing.assert_array_equal(before[:, :6], after[:, :6])
    assert not np.allclose(before[:, 6:], after[:, 6:])


def check_cache_equals_recomputing(model):
    idx = tokens((3, 10), seed=1)
    model = to_float64(model)
    with ta.no_grad():
        full = model(idx).data
        cache = KVCache()
        pieces = [model(idx[:, :4], cache).data]                  # a prompt, then one at a time
        pieces += [model(idx[:, t:t + 1], cache).data for t in range(4, 10)]
    assert full.dtype == np.float64
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=0, atol=1e-10)
    return cache


@pytest.mark.parametrize("name", SWITCHES)
def test_the_kv_cache_gives_the_logits_of_recomputing(name):
    model = gpt(**SWITCHES[name])
    cache = check_cache_equals_recomputing(model)
    n_kv_head = SWITCHES[name].get("n_kv_head", 4)
    for layer in model.decoder.layers:                # only the key-value heads are kept
        keys, values = cache._kv[layer.attn]
        assert keys.shape == values.shape == (3, n_kv_head, 10, 4)


def test_generation_with_the_cache_equals_generation_without_for_every_switch():
    model = gpt(**SWITCHES["all"])
    prompt = tokens((2, 4), seed=2)
    np.testing.assert_array_equal(model.generate(prompt, 14, temperature=0),     # slides too
                                  model.generate(prompt, 14, temperature=0, use_cache=False))


@pytest.mark.parametrize("name", ["all", "nanochat", "gqa", "rmsnorm"])
def test_bert_padding_changes_no_real_tokens_logits(name):
    ta.manual_seed(0)
    switches = {k: v for k, v in SWITCHES[name].items() if k != "tie_weights"}
    model = sharpened(BERT(V, CONTEXT, **SIZES, **switches, pad_id=0))
    idx = tokens((2, 7), low=1)
    padded = np.concatenate([idx, np.zeros((2, 3), int)], axis=1)    # pad_id 0 at the end
    padded[1, 5:] = 0                                                 # and a shorter row
    with ta.no_grad():
        short = model(idx[:1]).data
        longer = model(padded).data
        row = model(padded[1:, :5]).data
    # The same to rounding: batches of other shapes are other matrix products, which some
    # processors' BLAS rounds otherwise (OpenBLAS's AVX2 kernels: 1.7e-5 apart, with these
    # large weights, where 1e-5 + 1e-5 |logit| allowed 2.2e-5), while padding that is read
    # as a token moves some logit by 1.9 or more.
    np.testing.assert_allclose(longer[0, :7], short[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(longer[1, :5], row[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["all", "gqa", "mqa"])
def test_the_transformer_with_grouped_heads_ignores_padding_and_caches_exactly(name):
    ta.manual_seed(0)
    switches = {k: v for k, v in SWITCHES[name].items()}
    model = to_float64(sharpened(Transformer(V, V, CONTEXT, **SIZES, **switches, pad_id=0)))
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, V, (2, 6)), rng.integers(1, V, (2, 7))
    src_padded = np.concatenate([src, np.zeros((2, 3), int)], axis=1)
    with ta.no_grad():
        np.testing.assert_allclose(model(src_padded, tgt).data, model(src, tgt).data,
                                   rtol=0, atol=1e-10)
        memory, src_mask = model.encode(src_padded)
        full = model.decode(tgt, memory, src_mask).data
        cache = KVCache()
        steps = [model.decode(tgt[:, t:t + 1], memory, src_mask, cache).data for t in range(7)]
    assert full.dtype == np.float64
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=0, atol=1e-10)


def test_gradients_flow_through_the_cache_with_grouped_heads():
    model = gpt(**SWITCHES["all"]).train()
    idx = tokens((2, 6))
    model(idx)[:, -1].sum().backward()
    full = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    cache = KVCache()
    model(idx[:, :4], cache)
    model(idx[:, 4:], cache)[:, -1].sum().backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, full[name], rtol=1e-3, atol=1e-5, err_msg=name)


# --------------------------------------------------------------------------------------------
# Settings: bad ones refused in one line, missing ones the old defaults


@pytest.mark.parametrize("switches, message", [
    (dict(n_kv_head=3), "n_kv_head 3 does not divide n_head 4: each key-value head serves a "
                        "whole group of query heads; give one of 1, 2, 4"),
    (dict(n_kv_head=0), "n_kv_head must be a whole number >= 1, got 0"),
    (dict(normalization="batchnorm"), "unknown normalization 'batchnorm'; choose 'layernorm'"),
    (dict(activation="tanh"), "unknown activation 'tanh'; choose one of 'relu', 'gelu', "
                              "'swiglu', 'relu2'"),
    (dict(logit_softcap=0), "logit_softcap must be a number > 0 (or None for no cap), got 0"),
    (dict(logit_softcap=float("inf")), "logit_softcap must be a number > 0"),
    (dict(logit_softcap=10 ** 400), "logit_softcap must be a number > 0"),   # no float holds it
    (dict(positions="rope", d_head=5), "positions='rope' needs an even head width (features "
                                       "turn in pairs), got d_head 5; give an even d_head, "
                                       "such as 6"),
    # Python takes the text "false" for true: it tied the weights, or turned QK-norm on. And
    # a 0 kept in config.json was refused when the model came back (attention_bias: 0).
    (dict(tie_weights="false"), ": tie_weights must be True or False, got 'false'"),
    (dict(qk_norm="no"), ": qk_norm must be True or False, got 'no'"),
    (dict(bias=0), ": bias must be True or False, got 0"),
    (dict(rmsnorm_affine=None, normalization="rmsnorm"),
     ": rmsnorm_affine must be True or False, got None"),
])
def test_bad_switches_are_one_line_errors(switches, message):
    for build in (lambda: GPT(V, CONTEXT, **SIZES, **switches),
                  lambda: BERT(V, CONTEXT, **SIZES, **switches),
                  lambda: Transformer(V, V, CONTEXT, **SIZES, **switches)):
        with pytest.raises(ValueError) as error:
            build()
        assert message in str(error.value) and "\n" not in str(error.value)


def test_the_on_off_switches_take_numpys_booleans_as_pythons():
    model = GPT(V, CONTEXT, **SIZES, tie_weights=np.False_, bias=np.bool_(False))
    assert model.head is not None and not any(n.endswith("bias") for n, _ in
                                              model.named_parameters())
    assert model.config["tie_weights"] is False and model.config["bias"] is False   # for json
    with pytest.raises(ValueError, match=r"^Transformer: share_embeddings must be True or "
                                         r"False, got 'yes'$"):
        Transformer(V, V, CONTEXT, **SIZES, share_embeddings="yes")


def test_a_config_without_the_switches_builds_the_model_it_always_did():
    old = dict(vocab_size=V, context=CONTEXT, n_layer=2, n_head=4, d_model=16, d_ff=64,
               dropout=0.0, positions="learned", norm="pre", activation="gelu",
               tie_weights=True)
    model = GPT(**old)
    assert {k: model.config[k] for k in old} == old
    assert model.config["normalization"] == "layernorm" and model.config["bias"] is True
    assert model.config["n_kv_head"] is None and model.config["logit_softcap"] is None
    assert all(isinstance(m, nn.LayerNorm) for m in model.modules()
               if isinstance(m, (nn.LayerNorm, nn.RMSNorm)))
    assert GPT(**model.config).num_parameters() == model.num_parameters()


# --------------------------------------------------------------------------------------------
# The summary


def test_flops_with_grouped_heads_and_swiglu_equal_the_formula():
    model = GPT(V, CONTEXT, n_layer=2, n_head=4, d_model=16, n_kv_head=1, activation="swiglu",
                bias=False)
    # per token: q and out 16x16 each, k and v 16x4 each, fc1 16x96 and fc2 48x16, the tied
    # head 16x13; attention's two products over T keys with n_head heads of 4
    per_layer = 2 * (2 * 16 * 16 + 2 * 16 * 4 + 16 * 96 + 48 * 16) + 4 * CONTEXT * 16
    assert flops_per_token(model)["forward"] == 2 * per_layer + 2 * 16 * V
    text = summary(model)
    assert "multi-query attention (4 query heads, 1 key-value head)" in text
    assert "SwiGLU" in text and "no biases" in text


def test_the_summary_names_every_switch():
    text = summary(GPT(V, CONTEXT, **SIZES, **SWITCHES["all"]))
    for words in ("RMSNorm", "SwiGLU feed-forward of width 48",
                  "grouped-query attention (4 query heads, 2 key-value heads)", "QK-norm",
                  "logits soft-capped at 5", "no biases", "RoPE (theta 500)"):
        assert words in text, words
    default = summary(GPT(V, CONTEXT, **SIZES))
    assert "LayerNorm, GELU feed-forward of width 64, multi-head attention (4 heads)" in default
    assert "learned positions" in default
