"""tinyformer.attention: the Attention op against the readable graph, finite differences
(first and second order) and PyTorch; the masks' promises (causality, padding, rows with
nothing to attend to); and MultiHeadAttention against torch.nn.MultiheadAttention."""

import re
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyautograd as ta
from precision import to_float64
from tinyautograd import Tensor, concat
from tinyformer.attention import (Attention, MultiHeadAttention, attention_readable,
                                  attention_weights, causal_mask, padding_mask,
                                  scaled_dot_product_attention)

B, H, T, D, DV = 2, 3, 5, 4, 6
LENGTHS = [5, 3]                      # the second sequence ends in two padding tokens


def randn(*shape, seed=0, dtype=np.float64):
    data = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return Tensor(data, requires_grad=True, dtype=dtype)


def qkv(dtype=np.float64, t_q=T, t_k=T):
    return randn(B, H, t_q, D, seed=1, dtype=dtype), randn(B, H, t_k, D, seed=2, dtype=dtype), \
        randn(B, H, t_k, DV, seed=3, dtype=dtype)


def is_token(lengths=LENGTHS, t=T):
    return np.arange(t)[None, :] < np.array(lengths)[:, None]           # (B, T)


MASKS = {
    "none": None,
    "causal": causal_mask(T),
    "padding": padding_mask(is_token()),
    "causal&padding": causal_mask(T) & padding_mask(is_token()),
}


def output_and_grads(attend, q, k, v, mask, seed=4):
    """The output, and the gradients of q, k, v for a random upstream gradient."""
    for t in (q, k, v):
        t.grad = None
    out = attend(q, k, v, mask)
    out.backward(np.random.default_rng(seed).standard_normal(out.shape))
    return out.data, q.grad, k.grad, v.grad


def fused(q, k, v, mask):
    return scaled_dot_product_attention(q, k, v, mask)        # the Attention op


def readable(q, k, v, mask):
    return attention_readable(q, k, v, mask)


# -------------------------------------------------------------------------- op == readable


@pytest.mark.parametrize("kind", MASKS)
def test_fused_and_readable_agree(kind):
    q, k, v = qkv()
    got = output_and_grads(fused, q, k, v, MASKS[kind])
    want = output_and_grads(readable, q, k, v, MASKS[kind])
    for name, a, b in zip(["out", "dq", "dk", "dv"], got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=name)


def test_fused_and_readable_agree_on_cross_attention_shapes():
    q, k, v = qkv(t_q=3, t_k=7)          # 3 queries (a decoder) attend 7 keys (an encoder)
    mask = padding_mask(is_token([7, 4], 7))
    got = output_and_grads(fused, q, k, v, mask)
    want = output_and_grads(readable, q, k, v, mask)
    assert got[0].shape == (B, H, 3, DV)
    for name, a, b in zip(["out", "dq", "dk", "dv"], got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=name)


def test_fused_is_one_node_and_readable_shows_every_step():
    q, k, v = qkv()
    assert fused(q, k, v, causal_mask(T)).grad_fn.fn is Attention
    assert readable(q, k, v, causal_mask(T)).grad_fn.name == "matmul"      # weights @ v


def test_gradcheck_fused():
    q, k, v = (randn(2, 3, 4, seed=s) for s in (1, 2, 3))
    mask = causal_mask(3) & np.array([False, True, True])     # query 0 may attend no key
    assert ta.gradcheck(lambda q, k, v: Attention.apply(q, k, v, keep=mask), q, k, v)
    assert ta.gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v), q, k, v)


def test_gradgradcheck_readable():
    q, k, v = (randn(1, 3, 2, seed=s) for s in (1, 2, 3))
    assert ta.gradgradcheck(lambda q, k, v: attention_readable(q, k, v, causal_mask(3)),
                            q, k, v)


def test_gradgradcheck_fused_with_a_row_that_attends_nothing():
    q, k, v = (randn(2, 3, 2, seed=s) for s in (1, 2, 3))
    mask = causal_mask(3) & np.array([False, True, True])     # query 0 may attend no key
    assert ta.gradgradcheck(lambda q, k, v: fused(q, k, v, mask), q, k, v)


def test_gradgradcheck_fused_with_dropout():
    q, k, v = (randn(2, 3, 2, seed=s) for s in (1, 2, 3))

    def dropped(q, k, v):
        ta.manual_seed(1)          # the same weights dropped at every call of gradcheck
        return scaled_dot_product_attention(q, k, v, causal_mask(3), dropout_p=0.4,
                                            training=True)

    assert ta.gradcheck(dropped, q, k, v)
    assert ta.gradgradcheck(dropped, q, k, v)


def test_the_backward_graph_of_the_op_is_recorded_and_matches_the_readable_ones():
    # Under create_graph the op's backward formula is recorded: its gradient has a graph, whose
    # own gradient (a Hessian-vector product) equals the readable graph's.
    for attend in (fused, readable):
        q, k, v = qkv()
        (dq,) = ta.grad(attend(q, k, v, MASKS["causal&padding"]).sum(), [q],
                        create_graph=True)
        assert dq.requires_grad
        if attend is fused:
            assert dq.grad_fn.backward_of.fn is Attention
        hvp = ta.grad((dq * dq).sum(), [q, k, v])
        if attend is fused:
            want = [g.data for g in hvp]
        else:
            for a, b in zip(want, hvp):
                np.testing.assert_allclose(a, b.data, rtol=1e-9, atol=1e-12)


# -------------------------------------------------------------------------- against PyTorch


def torch_output_and_grads(q, k, v, seed=4, **kwargs):
    tq, tk, tv = (torch.tensor(t.data, requires_grad=True) for t in (q, k, v))
    out = F.scaled_dot_product_attention(tq, tk, tv, **kwargs)
    out.backward(torch.tensor(np.random.default_rng(seed).standard_normal(out.shape)))
    return out.detach().numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()


@pytest.mark.parametrize("attend", [fused, readable])
@pytest.mark.parametrize("kind", ["none", "causal", "padding", "causal&padding"])
def test_matches_torch_boolean_attn_mask(attend, kind):
    q, k, v = qkv()
    mask = MASKS[kind]
    want = torch_output_and_grads(q, k, v, attn_mask=None if mask is None
                                  else torch.tensor(np.broadcast_to(mask, (B, H, T, T))))
    got = output_and_grads(attend, q, k, v, mask)
    for name, a, b in zip(["out", "dq", "dk", "dv"], got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("attend", [fused, readable])
def test_causal_mask_matches_torch_is_causal(attend):
    q, k, v = qkv()
    want = torch_output_and_grads(q, k, v, is_causal=True)
    got = output_and_grads(attend, q, k, v, causal_mask(T))
    for name, a, b in zip(["out", "dq", "dk", "dv"], got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("attend", [fused, readable])
def test_queries_and_keys_of_width_0_weigh_the_allowed_keys_evenly_as_torch(attend):
    # Every score is an empty sum, 0: 1/sqrt(0) was a ZeroDivisionError
    q, k, v = randn(2, 3, 0, seed=1), randn(2, 4, 0, seed=2), randn(2, 4, 5, seed=3)
    got = output_and_grads(attend, q, k, v, causal_mask(3, start=1))
    want = torch_output_and_grads(q, k, v, attn_mask=torch.tensor(causal_mask(3, start=1)))
    for name, a, b in zip(["out", "dq", "dk", "dv"], got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=name)


# -------------------------------------------------------------------------- masks


def test_query_with_nothing_to_attend_to_outputs_zeros():
    # Left padding: the first two tokens of sequence 1 are padding, so under the causal mask
    # its queries 0 and 1 may attend no key at all.
    mask = causal_mask(T) & padding_mask(np.array([[True] * 5, [False, False, True, True, True]]))
    q, k, v = qkv()
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        got = output_and_grads(fused, q, k, v, mask)
        want = output_and_grads(readable, q, k, v, mask)
    for a, b in zip(got, want):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    out, dq, _, _ = got
    assert np.all(out[1, :, :2] == 0) and np.all(dq[1, :, :2] == 0)
    assert np.all(out[1, :, 2:] != 0)


def test_float16_weights_block_keys_with_a_number_float16_holds():
    # -1e9 cast to float16 is -inf: numpy warned of the overflow, and a query with no key to
    # attend to was NaN inside softmax (attention_maps of a float16 model warned of both).
    q = Tensor(np.random.default_rng(0).standard_normal((1, 2, 3)), requires_grad=True,
               dtype=np.float16)
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        weights = attention_weights(q, q, np.array([[True, False], [False, False]]))
        weights.backward(np.ones(weights.shape, np.float16))
    assert weights.dtype == np.float16
    np.testing.assert_array_equal(weights.data, [[[1, 0], [0, 0]]])
    assert np.isfinite(q.grad).all()


def test_a_query_with_nothing_to_attend_to_outputs_zeros_while_every_key_is_read_by_another():
    # Query 1 may attend no key, yet every key is attended by some query: the row that blocks
    # everything is found by rows (queries), not by columns (keys).
    mask = np.tril(np.ones((T, T), dtype=bool))
    mask[1] = False
    q, k, v = qkv()
    got = output_and_grads(fused, q, k, v, mask)
    for a, b in zip(got, output_and_grads(readable, q, k, v, mask)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    out, dq, _, _ = got
    assert np.all(out[:, :, 1] == 0) and np.all(dq[:, :, 1] == 0)


@settings(max_examples=20)
@given(t=st.integers(1, 6), cut=st.integers(0, 5), seed=st.integers(0, 1000))
def test_causal_mask_hides_the_future(t, cut, seed):
    cut = min(cut, t - 1)                 # tokens 0..cut stay, the later ones change
    rng = np.random.default_rng(seed)
    attn = MultiHeadAttention(8, 2)
    x = rng.standard_normal((2, t, 8))
    changed = x.copy()
    changed[:, cut + 1:] = 100 * rng.standard_normal(changed[:, cut + 1:].shape)
    a = attn(Tensor(x), mask=causal_mask(t)).data
    b = attn(Tensor(changed), mask=causal_mask(t)).data
    np.testing.assert_array_equal(a[:, :cut + 1], b[:, :cut + 1])


@pytest.mark.parametrize("attend", [fused, readable])
def test_padded_keys_change_nothing(attend):
    q, k, v = qkv()
    mask = padding_mask(is_token())
    before = attend(q, k, v, mask).data
    k.data[1, :, 3:] = 1e3                # sequence 1's padding positions
    v.data[1, :, 3:] = -1e3
    np.testing.assert_array_equal(attend(q, k, v, mask).data, before)


def test_padding_tokens_do_not_reach_real_tokens_in_multi_head_attention():
    attn = MultiHeadAttention(8, 2)
    x = np.random.default_rng(0).standard_normal((2, T, 8))
    changed = x.copy()
    changed[1, 3:] = 50.0
    mask = causal_mask(T) & padding_mask(is_token())
    a, b = (attn(Tensor(inp), mask=mask).data for inp in (x, changed))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1, :3], b[1, :3])


def test_masks():
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    # Shared, so read-only: views of one array, not a new array at every forward.
    assert np.shares_memory(causal_mask(3), causal_mask(4, start=1))
    assert not causal_mask(3).flags.writeable
    assert padding_mask(is_token()).shape == (B, 1, 1, T)
    assert (causal_mask(T) & padding_mask(is_token())).shape == (B, 1, T, T)
    with pytest.raises(TypeError, match="boolean"):
        padding_mask(np.array([[1, 1, 0]]))


def test_causal_masks_of_many_lengths_keep_one_array_between_them():
    # A notebook that reads texts of many lengths: masks cached by length kept an array of
    # T * T booleans for each length met (here 7 MB), where one triangle holds them all.
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for T in range(301, 365):
            causal_mask(T)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 364 * 364 + 100_000          # the largest mask's triangle, at most


@pytest.mark.parametrize("args, message", [
    ((-1,), "T must be a whole number >= 1, got -1"),
    ((2.5,), "T must be a whole number >= 1, got 2.5"),
    ((True,), "T must be a whole number >= 1, got True"),    # not causal_mask(1), cached
    ((None,), "T must be a whole number >= 1, got None"),
    (([3],), r"T must be a whole number >= 1, got \[3\]"),   # not a hashing error
    ((3, -2), "start must be a whole number >= 0, got -2"),
])
def test_causal_mask_refuses_a_size_that_is_not_one(args, message):
    causal_mask(1)
    with pytest.raises(ValueError, match=f"^causal_mask: {message}$"):
        causal_mask(*args)


def test_mask_must_be_boolean_and_fit_the_scores():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="True = may attend"):
        fused(q, k, v, np.ones((T, T)))
    with pytest.raises(ta.ShapeError, match="does not broadcast"):
        fused(q, k, v, np.ones((4, 1, 1, T, T), dtype=bool))
    with pytest.raises(ta.ShapeError, match="need q"):
        fused(q, k, v[..., :3, :], None)


ATTENDS = {"scaled_dot_product_attention": scaled_dot_product_attention,
           "attention_readable": attention_readable,
           "attention_weights": lambda q, k, v: attention_weights(q, k)}    # no values


@pytest.mark.parametrize("attend, vector", [
    (name, vector) for name in ATTENDS for vector in "qkv"
    if (name, vector) != ("attention_weights", "v")])
def test_a_vector_in_place_of_queries_keys_or_values_is_refused_in_one_line(attend, vector):
    # A (d,) vector has no axis of positions (torch refuses it too): it failed in Python's
    # words, "tuple index out of range", naming nothing.
    given = {name: Tensor(np.ones((T, D))) for name in "qkv"}
    given[vector] = Tensor(np.ones(D))
    with pytest.raises(ta.ShapeError, match=r"^attention: q .* need q \(\.\.\., T_q, d\)"):
        ATTENDS[attend](*given.values())


# -------------------------------------------------------------------------- dropout


def test_dropout_in_the_op_drops_what_the_readable_graph_drops_and_only_when_training():
    q, k, v = qkv()
    no_dropout = fused(q, k, v, None).data
    evaluated = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    np.testing.assert_array_equal(evaluated.data, no_dropout)
    outputs = []
    for attend in (scaled_dot_product_attention, attention_readable):
        ta.manual_seed(0)
        outputs.append(output_and_grads(
            lambda q, k, v, mask, attend=attend: attend(q, k, v, mask, dropout_p=0.5,
                                                        training=True),
            q, k, v, MASKS["causal"]))
    for name, a, b in zip(["out", "dq", "dk", "dv"], *outputs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=name)
    ta.manual_seed(0)
    assert scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True).grad_fn.fn \
        is Attention
    assert not np.allclose(outputs[0][0], fused(q, k, v, MASKS["causal"]).data)


@pytest.mark.parametrize("attend", [scaled_dot_product_attention, attention_readable])
def test_torch_style_positional_dropout_and_is_causal_are_refused(attend):
    # torch's sixth positional is is_causal: (q, k, v, None, 0.0, True) is causal there. The
    # readable attention takes the op's keywords with its rules: it took dropout_p fifth and
    # training sixth, False unless said, so that dropout_p=0.5 alone dropped nothing.
    q, k, v = qkv()
    with pytest.raises(TypeError, match="positional"):
        attend(q, k, v, None, 0.0, True)
    # torch drops whenever dropout_p > 0; ours would drop nothing unless told it is training
    with pytest.raises(ValueError, match=rf"^{attend.__name__}: dropout_p=0\.5 needs "
                                         r"training=True or training=False \(torch's drops "
                                         r"whenever dropout_p > 0; ours only when training\)$"):
        attend(q, k, v, dropout_p=0.5)


@pytest.mark.parametrize("dropout_p", [-0.5, float("nan"), 1.5, "0.1"])
def test_a_dropout_p_outside_0_to_1_is_refused_training_or_not(dropout_p):
    # -0.5 and nan dropped nothing, without a word
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"^scaled_dot_product_attention: dropout_p must be a "
                                         r"finite number in \[0, 1\], got "):
        scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, training=True)


def test_integer_inputs_compute_in_float32_as_the_engines_ops_do():
    # numpy could not scale the int64 scores in place (UFuncTypeError)
    ints = np.arange(24).reshape(2, 3, 4) % 5
    out = scaled_dot_product_attention(*[Tensor(ints)] * 3)
    assert out.dtype == np.float32
    same = scaled_dot_product_attention(*[Tensor(ints.astype(np.float32))] * 3)
    np.testing.assert_array_equal(out.data, same.data)



def test_the_readable_forms_take_numpy_arrays_as_the_op_does():
    # scaled_dot_product_attention took arrays, as constant Tensors; attention_readable and
    # attention_weights failed on them (AttributeError: masked_fill).
    q, k, v = (x.data for x in qkv())             # float64 arrays: float32 Tensors, as the op's
    mask = MASKS["causal&padding"]
    fused = scaled_dot_product_attention(q, k, v, mask)
    out = attention_readable(q, k, v, mask)
    weights = attention_weights(q, k, mask)
    assert isinstance(out, Tensor) and out.dtype == fused.dtype == np.float32
    np.testing.assert_allclose(out.data, fused.data, atol=1e-6)
    assert isinstance(weights, Tensor) and weights.dtype == np.float32
    np.testing.assert_allclose((weights @ v.astype(np.float32)).data, fused.data, atol=1e-6)


# -------------------------------------------------------------------------- MultiHeadAttention


def torch_copy(attn, bias=True):
    """torch.nn.MultiheadAttention with attn's weights. torch stores the three input
    projections stacked as rows [q; k; v] of in_proj_weight, each (out, in): ours is (in, out)."""
    C = attn.d_model
    ref = torch.nn.MultiheadAttention(C, attn.n_head, bias=bias, batch_first=True,
                                      dtype=torch.float64)
    with torch.no_grad():
        for i, lin in enumerate([attn.q, attn.k, attn.v]):
            ref.in_proj_weight[i * C:(i + 1) * C] = torch.tensor(lin.weight.data.T)
            if bias:
                ref.in_proj_bias[i * C:(i + 1) * C] = torch.tensor(lin.bias.data)
        ref.out_proj.weight[:] = torch.tensor(attn.out.weight.data.T)
        if bias:
            ref.out_proj.bias[:] = torch.tensor(attn.out.bias.data)
    return ref


def torch_grads(ref, bias=True):
    """ref's parameter gradients under our names and layout."""
    C = ref.embed_dim
    w, grads = ref.in_proj_weight.grad.numpy(), {}
    for i, name in enumerate("qkv"):
        grads[f"{name}.weight"] = w[i * C:(i + 1) * C].T
        if bias:
            grads[f"{name}.bias"] = ref.in_proj_bias.grad.numpy()[i * C:(i + 1) * C]
    grads["out.weight"] = ref.out_proj.weight.grad.numpy().T
    if bias:
        grads["out.bias"] = ref.out_proj.bias.grad.numpy()
    return grads


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", ["self-causal", "self-causal&padding", "cross-padding",
                                  "cross"])
def test_multi_head_attention_matches_torch(case, bias):
    # The output, and the gradients of every parameter and of the inputs: x, and the context
    # (the keys' and values' source) of cross-attention, whose length S differs from T.
    attn = to_float64(MultiHeadAttention(12, 3, bias=bias))
    ref = torch_copy(attn, bias)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, 12))
    upstream = rng.standard_normal((B, T, 12))
    S = 7
    context = rng.standard_normal((B, S, 12)) if case.startswith("cross") else None
    if case == "self-causal":
        mask, torch_kwargs = causal_mask(T), {"attn_mask": torch.tensor(
            ~causal_mask(T))}                         # torch's MHA: True means blocked
    elif case == "self-causal&padding":
        keep = is_token()
        mask = causal_mask(T) & padding_mask(keep)
        torch_kwargs = {"attn_mask": torch.tensor(~causal_mask(T)),
                        "key_padding_mask": torch.tensor(~keep)}
    elif case == "cross-padding":
        keep = is_token([7, 4], S)
        mask, torch_kwargs = padding_mask(keep), {"key_padding_mask": torch.tensor(~keep)}
    else:
        mask, torch_kwargs = None, {}
    x_ours = Tensor(x, requires_grad=True, dtype=np.float64)
    context_ours = None if context is None else Tensor(context, requires_grad=True,
                                                       dtype=np.float64)
    out = attn(x_ours, context=context_ours, mask=mask)
    out.backward(upstream)
    tx = torch.tensor(x, requires_grad=True)
    tc = tx if context is None else torch.tensor(context, requires_grad=True)
    want, _ = ref(tx, tc, tc, need_weights=False, **torch_kwargs)
    want.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out.data, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x_ours.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    if context is not None:
        np.testing.assert_allclose(context_ours.grad, tc.grad.numpy(), rtol=1e-10, atol=1e-12)
    grads = torch_grads(ref, bias)
    names = [name for name, _ in attn.named_parameters()]
    assert sorted(names) == sorted(grads)
    for name, p in attn.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_parameter_names():
    names = [name for name, _ in MultiHeadAttention(16, 4).named_parameters()]
    assert names == ["q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias",
                     "out.weight", "out.bias"]


@pytest.mark.parametrize("kwargs, shown", [
    ({}, "d_model=8, n_head=2, dropout=0.0"),
    ({"d_head": 4}, "d_model=8, n_head=2, dropout=0.0"),          # d_model / n_head: default
    ({"d_head": 3, "bias": False}, "d_model=8, n_head=2, d_head=3, dropout=0.0, bias=False"),
    ({"n_kv_head": 1, "qk_norm": True, "bias": False},
     "d_model=8, n_head=2, n_kv_head=1, qk_norm=True, dropout=0.0, bias=False"),
])
def test_the_repr_shows_each_setting_that_is_not_its_default(kwargs, shown):
    # As LayerNorm's says bias=False: d_head and bias were left out, so a Qwen3-style head
    # width, or an attention without biases, read as the defaults.
    assert MultiHeadAttention(8, 2, **kwargs).extra_repr() == shown


@pytest.mark.parametrize("training", [False, True])
def test_float32_stays_float32(training):
    attn = MultiHeadAttention(8, 2, dropout=0.1).train(training)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 4, 8)), requires_grad=True)
    out = attn(x, mask=causal_mask(4))
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in attn.parameters())
    q, k, v = qkv(np.float32)
    for attend in (fused, readable):
        got = output_and_grads(attend, q, k, v, causal_mask(T))
        assert all(a.dtype == np.float32 for a in got)


def test_n_head_must_divide_d_model():
    with pytest.raises(ValueError, match="MultiHeadAttention: n_head 3 does not divide "
                                         "d_model 64"):
        MultiHeadAttention(64, 3)


@pytest.mark.parametrize("args, kwargs, message", [
    # ZeroDivisionError, or a word about n_kv_head, before
    ((16, 0), {}, "n_head must be a whole number >= 1, got 0"),
    ((16, -2), {}, "n_head must be a whole number >= 1, got -2"),
    ((16, 2.0), {}, "n_head must be a whole number >= 1, got 2.0"),
    ((0, 2), {}, "d_model must be a whole number >= 1, got 0"),
    ((16, 2), dict(d_head=0), "d_head must be a whole number >= 1, got 0"),
])
def test_sizes_are_whole_numbers_or_a_clear_error(args, kwargs, message):
    with pytest.raises(ValueError, match=f"MultiHeadAttention: {message}"):
        MultiHeadAttention(*args, **kwargs)


def test_context_of_another_batch_size_is_refused():
    # A context of one row used to be broadcast to every row of x; others failed in numpy.
    attn = MultiHeadAttention(8, 2)
    x = Tensor(np.zeros((2, 3, 8)))
    for rows in (1, 3):
        with pytest.raises(ValueError, match=rf"^MultiHeadAttention: x and context batches "
                           rf"differ, 2 and {rows}: give one context row per row of x$"):
            attn(x, context=Tensor(np.zeros((rows, 5, 8))))


@pytest.mark.parametrize("shape", [(3, 8), (1, 2, 3, 8)])
def test_input_must_be_a_batch_of_sequences(shape):
    # (T, C) or (B, H, T, C) used to fail unpacking the shape: "not enough values to unpack".
    attn = MultiHeadAttention(8, 2)
    ok = Tensor(np.zeros((1, 3, 8)))
    with pytest.raises(ValueError, match=re.escape(
            f"MultiHeadAttention: x must be (B, T, d_model), got shape {shape}; pass x[None] "
            f"for one sequence")):
        attn(Tensor(np.zeros(shape)))
    with pytest.raises(ValueError, match=r"^MultiHeadAttention: context must be \(B, T, "):
        attn(ok, context=Tensor(np.zeros(shape)))


def test_input_of_another_width_is_refused_naming_the_layers():
    # It failed in the query or key projection's matmul: "(2, 5, 6) @ (8, 8): inner sizes 6
    # and 8 differ", naming neither the layer nor the width it takes.
    attn = MultiHeadAttention(8, 2)
    x = Tensor(np.zeros((2, 3, 8)))
    with pytest.raises(ValueError, match=re.escape(
            "MultiHeadAttention: x has 6 features a position, the layer's d_model is 8: give "
            "(B, T, 8)")):
        attn(Tensor(np.zeros((2, 3, 6))))
    with pytest.raises(ValueError, match=re.escape(
            "MultiHeadAttention: context has 16 features a position, the layer's d_model is 8: "
            "give (B, T, 8) (keys and values of another width, torch's kdim and vdim, are not "
            "offered: project the context to d_model first)")):
        attn(x, context=Tensor(np.zeros((2, 5, 16))))


def test_dropout_of_one_drops_every_weight_as_torch_does():
    # torch's MultiheadAttention and nn.Dropout both take p = 1: training, every attention
    # weight is dropped and the output is the output projection's bias alone.
    attn = to_float64(MultiHeadAttention(12, 3, dropout=1.0)).train()
    attn.out.bias.data[:] = np.arange(12)
    ref = torch_copy(attn)
    ref.dropout = 1.0
    x = np.random.default_rng(0).standard_normal((B, T, 12))
    out = attn(Tensor(x, dtype=np.float64), mask=causal_mask(T))
    want, _ = ref(*[torch.tensor(x)] * 3, need_weights=False,
                  attn_mask=torch.tensor(~causal_mask(T)))
    np.testing.assert_array_equal(out.data, want.detach().numpy())
    np.testing.assert_array_equal(out.data, np.broadcast_to(np.arange(12.0), (B, T, 12)))
    with pytest.raises(ValueError, match=r"dropout must be a finite number in \[0, 1\], got 1.5"):
        MultiHeadAttention(12, 3, dropout=1.5)


@pytest.mark.parametrize("shape", [(B, 2, T, T), (B, T, T), (B, 3, T, T), (3, T, T)])
def test_grouped_query_attention_refuses_the_masks_plain_attention_refuses(shape):
    # With 2 key-value heads for 4 query heads, a mask with a heads axis of 2 (or a batch
    # axis of 2 where the heads go) was split into groups of one and applied to the key-value
    # heads, where the same model without grouping refused it; others failed in numpy's
    # reshape.
    x = Tensor(np.zeros((B, T, 8)))
    mask = np.ones(shape, dtype=bool)
    for n_kv_head in (4, 2):
        with pytest.raises(ta.ShapeError, match=re.escape(
                f"a mask of shape {shape} does not broadcast to the scores' shape "
                f"({B}, 4, {T}, {T})")):
            MultiHeadAttention(8, 4, n_kv_head=n_kv_head)(x, mask=mask)


def test_cross_attention_with_a_cache_attends_each_context_key_once_at_every_step():
    # Cross-attention's keys are the context's, the same at every step. A cache given with a
    # context once appended all of them again at each call, attending to each context token
    # twice, then three times, ...; the cache now keeps them from the first step.
    from tinyformer.attention import KVCache
    ta.manual_seed(0)
    attn = MultiHeadAttention(8, 2)
    x, context = randn(2, 4, 8, seed=1), randn(2, 3, 8, seed=2)
    keep = padding_mask(is_token([3, 2], t=3))            # the second context ends in padding
    cache = KVCache()
    with ta.no_grad():
        for t in range(4):
            step = x[:, t:t + 1]
            np.testing.assert_array_equal(attn(step, context, keep, cache).data,
                                          attn(step, context, keep).data)
            cache.length += 1                             # as the model advances it


def test_a_cache_refuses_a_context_other_than_the_one_its_keys_came_from():
    # The keys kept are those of the first context: another would attend to them silently.
    from tinyformer.attention import KVCache
    attn, cache = MultiHeadAttention(8, 2), KVCache()
    x, context = Tensor(np.ones((1, 1, 8))), Tensor(np.ones((1, 3, 8)))
    attn(x, context=context, cache=cache)
    attn(x, context=Tensor(np.ones((1, 3, 8))), cache=cache)     # equal values: the same one
    for other in (np.zeros((1, 3, 8)), np.ones((1, 4, 8))):
        with pytest.raises(ValueError, match=r"^KVCache: this cache holds the cross-attention "
                                             r"keys of another context \(encoder output\); "
                                             r"decode a new source with a new KVCache$"):
            attn(x, context=Tensor(other), cache=cache)


# -------------------------------------------------------------------------- an additive bias


def alibi(n_head, start, t, s):
    """ALiBi's bias (n_head, t, s): query start + i against key j gets -slope_h (start + i -
    j), a slope per head from 2^-8/n_head down to 2^-8 (Press et al. 2022)."""
    slopes = 2.0 ** (-8 * np.arange(1, n_head + 1) / n_head)
    distance = (start + np.arange(t))[:, None] - np.arange(s)[None, :]
    return -slopes[:, None, None] * distance


def with_bias_grads(attend, q, k, v, mask, bias, seed=4):
    """output_and_grads, and the bias's gradient."""
    bias.grad = None
    got = output_and_grads(lambda q, k, v, mask: attend(q, k, v, mask, bias=bias), q, k, v, mask)
    return (*got, bias.grad)


@pytest.mark.parametrize("attend", [scaled_dot_product_attention, attention_readable])
@pytest.mark.parametrize("shape", [(H, T, T), (B, 1, 1, T), (T,), (B, H, T, T)])
@pytest.mark.parametrize("kind", ["none", "causal&padding"])
def test_bias_matches_torch_float_attn_mask(attend, shape, kind):
    # torch takes the boolean mask and the bias as one float attn_mask: -inf where blocked
    q, k, v = qkv()
    bias = randn(*shape, seed=5)
    mask = MASKS[kind]
    got = with_bias_grads(attend, q, k, v, mask, bias)
    tbias = torch.tensor(bias.data, requires_grad=True)
    attn_mask = tbias if mask is None else torch.where(torch.tensor(mask), tbias, -torch.inf)
    want = torch_output_and_grads(q, k, v, attn_mask=attn_mask)
    want_bias = tbias.grad.numpy()
    assert got[-1].shape == shape
    for name, a, b in zip(["out", "dq", "dk", "dv", "dbias"], got, (*want, want_bias)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def test_a_bias_that_is_an_array_or_wants_no_gradient_shifts_the_scores_alone():
    q, k, v = qkv()
    bias = alibi(H, 0, T, T)
    out = scaled_dot_product_attention(q, k, v, causal_mask(T), bias=bias)
    np.testing.assert_allclose(out.data, attention_readable(q, k, v, causal_mask(T),
                                                            bias=bias).data, atol=1e-12)
    assert not np.allclose(out.data, scaled_dot_product_attention(q, k, v, causal_mask(T)).data)
    frozen = Tensor(bias, dtype=np.float64)
    out = scaled_dot_product_attention(q, k, v, bias=frozen)
    (dq,) = ta.grad(out.sum(), [q])
    assert frozen.grad is None and dq.shape == q.shape


def test_a_float64_array_bias_is_added_in_float64():
    # Not rounded to float32 on its way into the op: torch's float attn_mask, to the last digits
    q, k, v = qkv()
    bias = np.random.default_rng(5).standard_normal((H, T, T))
    out = scaled_dot_product_attention(q, k, v, bias=bias)
    want = F.scaled_dot_product_attention(*(torch.tensor(t.data) for t in (q, k, v)),
                                          attn_mask=torch.tensor(bias))
    np.testing.assert_allclose(out.data, want.numpy(), rtol=0, atol=1e-12)


def test_a_row_with_nothing_to_attend_to_outputs_zeros_whatever_its_bias():
    mask = causal_mask(T) & padding_mask(np.array([[True] * 5, [False, False, True, True, True]]))
    q, k, v = qkv()
    bias = randn(B, H, T, T, seed=5)
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        out, dq, dk, dv, dbias = with_bias_grads(scaled_dot_product_attention, q, k, v, mask,
                                                 bias)
    assert np.all(out[1, :, :2] == 0) and np.all(dq[1, :, :2] == 0)
    assert np.all(dbias[1, :, :2] == 0) and np.all(dbias[~np.broadcast_to(mask, dbias.shape)] == 0)
    assert np.all(out[1, :, 2:] != 0)


def test_gradgradcheck_fused_in_the_bias():
    q, k, v = (randn(2, 3, 2, seed=s) for s in (1, 2, 3))
    bias = randn(3, 3, seed=4)
    mask = causal_mask(3) & np.array([False, True, True])     # query 0 may attend no key
    assert ta.gradgradcheck(lambda q, k, v, b: fused_with(q, k, v, mask, b), q, k, v, bias)


def fused_with(q, k, v, mask, bias):
    return scaled_dot_product_attention(q, k, v, mask, bias=bias)


def test_the_second_derivative_in_the_bias_matches_the_readable_graphs():
    # Under create_graph the op's backward recomputes P from q, k and the bias, as Tensors
    hvps = []
    for attend in (scaled_dot_product_attention, attention_readable):
        q, k, v = qkv()
        bias = randn(H, T, T, seed=5)
        out = attend(q, k, v, MASKS["causal&padding"], bias=bias)
        dq, dbias = ta.grad((out * out).sum(), [q, bias], create_graph=True)
        hvps.append([g.data for g in ta.grad((dq * dq).sum() + (dbias ** 3).sum(),
                                             [q, k, v, bias])])
    for a, b in zip(*hvps):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loops", [True, False])
def test_float32_bias_on_the_loops_and_the_numpy_forms(loops, monkeypatch):
    # A (H, T, T) bias repeats over the batch: the compiled loop adds it with the blocked
    # scores; a (B, 1, 1, T) one takes numpy's lines. Both agree with float64.
    if not loops:
        monkeypatch.setattr(ta.kernels, "usable", lambda *arrays, into=(): False)
    q, k, v = qkv(np.float32)
    for shape in [(H, T, T), (B, 1, 1, T)]:
        bias = randn(*shape, seed=5, dtype=np.float32)
        got = with_bias_grads(scaled_dot_product_attention, q, k, v, causal_mask(T), bias)
        want = with_bias_grads(scaled_dot_product_attention, *map(to64, (q, k, v)),
                               causal_mask(T), to64(bias))
        for a, b in zip(got, want):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def to64(t):
    return Tensor(t.data.astype(np.float64), requires_grad=True, dtype=np.float64)


def test_a_bias_must_be_numbers_that_fit_the_scores_and_a_float_mask_points_to_it():
    q, k, v = qkv()
    with pytest.raises(TypeError, match=r"got float64; numbers to add to the scores \(torch's "
                                        r"float attn_mask\) go to bias=$"):
        fused(q, k, v, np.full((T, T), 0.5))
    # A mask of 0s and 1s (np.tril(np.ones(...))) given as a bias would block nothing
    for ones in (np.tril(np.ones((T, T))), np.tril(np.ones((T, T), int))):
        with pytest.raises(TypeError, match=rf"^attention: the mask must be boolean \(True = may "
                                            rf"attend\), got {ones.dtype} of 0s and 1s; give "
                                            rf"mask.astype\(bool\) \(its 1s may attend\)$"):
            fused(q, k, v, ones)
    with pytest.raises(TypeError, match=r"^attention: the bias must hold real numbers to add to "
                                        r"the scores, got bool; a boolean mask \(True = may "
                                        r"attend\) goes to mask=$"):
        scaled_dot_product_attention(q, k, v, bias=causal_mask(T))
    for values in (np.ones((T, T), complex), np.full((T, T), "1")):
        with pytest.raises(TypeError, match=rf"^attention: the bias must hold real numbers to "
                                            rf"add to the scores, got {values.dtype}$"):
            scaled_dot_product_attention(q, k, v, bias=values)
    for attend in (scaled_dot_product_attention, attention_readable):
        with pytest.raises(ta.ShapeError, match=re.escape(
                f"attention: a bias of shape (4, 1, 1, {T}, {T}) does not broadcast to the "
                f"scores' shape ({B}, {H}, {T}, {T}) (..., T_q, T_k)")):
            attend(q, k, v, bias=np.zeros((4, 1, 1, T, T)))


@pytest.mark.parametrize("shape", [(4, T, T), (B, 4, T, T), (1, 4, 1, T), (T, T)])
def test_grouped_query_attention_fits_a_bias_per_head_as_it_fits_masks(shape):
    # 4 query heads share 2 key-value heads: the bias of query head h must reach head h,
    # and its gradient come back to it, as attention over the key-value heads repeated
    ta.manual_seed(0)
    attn = to_float64(MultiHeadAttention(8, 4, n_kv_head=2))
    x = randn(B, T, 8, seed=1)
    bias = randn(*shape, seed=2)
    out = attn(x, mask=causal_mask(T), bias=bias)
    (dbias,) = ta.grad((out * out).sum(), [bias])

    def repeated(z, n):                    # (B, T, n * 2) -> (B, 4, T, 2), heads repeated
        heads = z.reshape(B, T, n, 2).swapaxes(1, 2)
        return heads if n == 4 else concat([heads[:, i:i + 1] for i in (0, 0, 1, 1)], axis=1)

    heads = attention_readable(repeated(attn.q(x), 4), repeated(attn.k(x), 2),
                               repeated(attn.v(x), 2), causal_mask(T), bias=bias)
    want = attn.out(heads.swapaxes(1, 2).reshape(B, T, 8))
    (want_dbias,) = ta.grad((want * want).sum(), [bias])
    np.testing.assert_allclose(out.data, want.data, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbias.data, want_dbias.data, rtol=1e-10, atol=1e-12)


class ALiBiAttention(MultiHeadAttention):
    """Self-attention with ALiBi's bias in place of positions: the queries of this call, at
    positions start .. start + T - 1, against every key so far."""

    def forward(self, x, context=None, mask=None, cache=None, *, bias=None):
        start, t = (0 if cache is None else cache.length), x.shape[1]
        return super().forward(x, context, mask, cache, bias=alibi(self.n_head, start, t,
                                                                  start + t))


@pytest.mark.parametrize("n_kv_head", [4, 2])
def test_generation_with_an_alibi_bias_and_the_cache_writes_the_tokens_recomputing_does(
        n_kv_head):
    # A step with the cache has one query against all the keys, and no mask: the bias of its
    # one row must still reach the scores, or the cached tokens differ from recomputed ones
    from tinyformer import GPT
    ta.manual_seed(0)
    gpt = GPT(11, context=16, n_layer=2, n_head=4, d_model=16, positions="none",
              n_kv_head=n_kv_head)
    for layer in gpt.decoder.layers:
        layer.attn = ALiBiAttention(16, 4, n_kv_head=n_kv_head)
    gpt.eval()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    cached = gpt.generate(prompt, 8, temperature=0, use_cache=True)
    recomputed = gpt.generate(prompt, 8, temperature=0, use_cache=False)
    np.testing.assert_array_equal(cached, recomputed)
    x = gpt.embed(Tensor(prompt), 0)
    plain = MultiHeadAttention(16, 4, n_kv_head=n_kv_head)
    plain.load_state_dict(gpt.decoder.layers[0].attn.state_dict())
    assert not np.allclose(gpt.decoder.layers[0].attn(x, mask=causal_mask(3)).data,
                           plain(x, mask=causal_mask(3)).data)


def test_a_cached_step_refuses_the_bias_of_the_whole_sequence():
    # The caller gives the rows of the new queries: the whole (S, S) bias would not fit
    from tinyformer.attention import KVCache
    attn, cache = MultiHeadAttention(8, 2), KVCache()
    x = Tensor(np.ones((1, 3, 8)))
    attn(x, mask=causal_mask(3), cache=cache, bias=alibi(2, 0, 3, 3))
    cache.length = 3
    attn(x[:, :1], cache=cache, bias=alibi(2, 3, 1, 4))       # row 3 of the 4 x 4 bias
    cache.length = 4
    with pytest.raises(ta.ShapeError, match=re.escape("a bias of shape (2, 5, 5) does not "
                                                      "broadcast to the scores' shape (1, 2, "
                                                      "1, 5)")):
        attn(x[:, :1], cache=cache, bias=alibi(2, 0, 5, 5))
