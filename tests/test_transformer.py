"""The encoder-decoder Transformer: shapes, masks, parity with torch.nn.Transformer, gradients,
and that it learns to copy."""

import time

import numpy as np
import pytest
import torch

from precision import to_float64
from tinyautograd import Tensor, gradcheck, manual_seed, nn, optim
from tinyautograd.functional import cross_entropy, dropout_mask
from tinyformer.attention import causal_mask, padding_mask
from tinyformer.blocks import residual
from tinyformer.decoding import beam_search
from tinyformer.transformer import Transformer

PAD = 0


def random_tokens(rng, batch, length, vocab_size):
    """Tokens 1 .. vocab_size-1: no padding."""
    return rng.integers(1, vocab_size, (batch, length))


# --------------------------------------------------------------------------------------------
# Shapes, options, errors


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "rope", "none"])
def test_logits_shape_and_every_parameter_gets_a_gradient(positions, norm):
    manual_seed(0)
    model = Transformer(7, 9, context=8, n_layer=2, n_head=2, d_model=8, positions=positions,
                        norm=norm)
    rng = np.random.default_rng(0)
    src, tgt = random_tokens(rng, 3, 5, 7), random_tokens(rng, 3, 6, 9)
    logits = model(src, tgt)
    assert logits.shape == (3, 6, 9)
    cross_entropy(logits, tgt).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(np.isfinite(p.grad).all() for p in model.parameters())


def test_shared_and_tied_embeddings_are_one_parameter():
    model = Transformer(10, 10, context=8, d_model=8, share_embeddings=True)
    assert model.tgt_embed is model.src_embed
    assert model.head is None                     # the logits use the embedding, transposed
    names = [name for name, _ in model.named_parameters()]
    assert "src_embed.tok.weight" in names and not any(n.startswith("tgt_embed") for n in names)


def test_config_rebuilds_the_same_model():
    model = Transformer(5, 6, context=8, n_layer=1, n_head=2, d_model=8, norm="pre",
                        positions="learned", tie_weights=False)
    rebuilt = Transformer(**model.config)
    assert rebuilt.config == model.config
    assert ({name: p.shape for name, p in rebuilt.named_parameters()}
            == {name: p.shape for name, p in model.named_parameters()})


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_head=2, share_embeddings=True), "share_embeddings needs one vocabulary"),
    (dict(n_head=3), "n_head 3 does not divide d_model 8"),
    (dict(n_head=2, norm="middle"), "unknown norm placement 'middle'"),
    (dict(n_head=2, positions="alibi"), "unknown positional encoding 'alibi'"),
    (dict(n_head=2, pad_id=-1), "Transformer: pad_id must be a whole number >= 0, got -1"),
    (dict(n_head=2, pad_id="0"), "Transformer: pad_id must be a whole number >= 0, got '0'"),
    # A pad_id outside a vocabulary made greedy decoding fail once it filled a finished row.
    (dict(n_head=2, pad_id=5), "^Transformer: pad_id 5 is not a token id of both "
                               "vocabularies: src has ids 0 to 4, tgt 0 to 5$"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Transformer(5, 6, context=8, d_model=8, **kwargs)


def test_a_decoder_with_cross_attention_refuses_to_run_without_the_encoders_output():
    # Without the check, cross-attention would silently attend to the decoder's own input.
    model = Transformer(5, 5, context=8, n_head=2, d_model=8)
    with pytest.raises(ValueError, match="cross-attention needs the encoder's output"):
        model.decoder(Tensor(np.zeros((1, 3, 8))))


@pytest.mark.parametrize("n_src, n_tgt", [(1, 3), (2, 1), (2, 3)])
def test_src_and_tgt_of_different_batch_sizes_are_refused_as_torch_does(n_src, n_tgt):
    # One source row used to be broadcast to three targets without a word; the others
    # failed in a reshape or in numpy.
    model = Transformer(5, 5, context=8, n_head=2, d_model=8)
    src, tgt = np.ones((n_src, 4), np.int64), np.ones((n_tgt, 3), np.int64)
    with pytest.raises(ValueError, match=rf"^Transformer: src and tgt batches differ, {n_src} "
                       rf"and {n_tgt}: give one target row per source row$"):
        model(src, tgt)


@pytest.mark.parametrize("pad_id, advice", [
    (PAD, r"pad the shorter rows at the end with the model's pad_id 0$"),
    (None, r"this model has no pad_id, so it would read padding as tokens: build it with "
           r"pad_id=<your tokenizer's padding id>, or give each row alone$")])
def test_sources_of_different_lengths_are_told_how_this_model_takes_padding(pad_id, advice):
    # "pad the shorter rows" alone, to a model without a pad_id, led to padding read as source.
    model = Transformer(9, 9, context=8, n_head=2, d_model=8, pad_id=pad_id)
    for call in (lambda src: model(src, [[1], [1]]), lambda src: model.greedy_decode(src, 2, 1)):
        with pytest.raises(TypeError, match=r"^tokens must be a \(B, T\) integer array with "
                           r"rows of one length; " + advice):
            call([[3, 4], [3, 4, 5]])


@pytest.mark.parametrize("shape", ["torch's (B, S)", "another batch's"])
def test_decode_refuses_a_source_mask_not_of_encodes_shape(shape):
    # A (B, S) key-padding mask, torch's memory_key_padding_mask, broadcast its batch axis over
    # the 2 target positions of a batch of 2: each query read another row's padding, silently.
    model = Transformer(9, 9, context=8, n_head=2, d_model=8, pad_id=PAD)
    src = np.array([[3, 4, PAD], [3, 4, 5]])
    memory, src_mask = model.encode(src)
    wrong = src != PAD if shape == "torch's (B, S)" else src_mask[:1]
    with pytest.raises(ValueError, match=r"^Transformer: src_mask must be \(B, 1, 1, S\) = "
                       r"\(2, 1, 1, 3\) .*padding_mask\(src != pad_id\)"):
        model.decode(np.array([[1, 2], [1, 2]]), memory, wrong)
    model.decode(np.array([[1, 2], [1, 2]]), memory, src_mask)      # encode's own: fine


@pytest.mark.parametrize("share_embeddings", [False, True])
@pytest.mark.parametrize("positions", ["sinusoidal", "none"])
def test_sequences_longer_than_the_context_are_refused_naming_src_or_tgt(positions,
                                                                          share_embeddings):
    # The error names the input, as its vocabulary's does: src and tgt may share one module
    model = Transformer(5, 5, context=4, n_layer=1, n_head=2, d_model=8, positions=positions,
                        share_embeddings=share_embeddings)
    fits, too_long = np.ones((1, 4), dtype=int), np.ones((1, 5), dtype=int)
    with pytest.raises(ValueError, match="^src: sequence of 5 tokens exceeds the context of 4"):
        model(too_long, fits)
    with pytest.raises(ValueError, match="^tgt: sequence of 5 tokens exceeds the context of 4"):
        model(fits, too_long)


# --------------------------------------------------------------------------------------------
# Masks


@pytest.mark.parametrize("positions", ["sinusoidal", "rope"])
def test_changing_a_future_target_token_never_changes_earlier_logits(positions):
    manual_seed(0)
    model = Transformer(6, 6, context=8, n_layer=2, n_head=2, d_model=8, positions=positions)
    rng = np.random.default_rng(1)
    src, tgt = random_tokens(rng, 2, 5, 6), random_tokens(rng, 2, 7, 6)
    before = model(src, tgt).data
    for t in range(7):
        changed = tgt.copy()
        changed[:, t] = changed[:, t] % 5 + 1            # another non-pad token
        after = model(src, changed).data
        np.testing.assert_array_equal(after[:, :t], before[:, :t])
        assert not np.allclose(after[:, t:], before[:, t:])   # the change is seen from t on


def test_source_padding_never_changes_the_logits():
    manual_seed(0)
    model = Transformer(6, 6, context=10, n_layer=2, n_head=2, d_model=8, pad_id=PAD)
    rng = np.random.default_rng(2)
    lengths = np.array([3, 6, 8])
    src = random_tokens(rng, 3, 8, 6)
    src[np.arange(8) >= lengths[:, None]] = PAD
    tgt = random_tokens(rng, 3, 5, 6)
    padded = model(src, tgt).data
    # Each source alone, cut to its length, with no padding at all.
    for b, length in enumerate(lengths):
        alone = model(src[b:b + 1, :length], tgt[b:b + 1]).data
        np.testing.assert_allclose(alone, padded[b:b + 1], rtol=1e-5, atol=1e-6)
    # More padding, and a different vector for the pad token: nothing reads either.
    model.src_embed.tok.weight.data[PAD] = rng.standard_normal(8)
    more_padding = np.concatenate([src, np.full((3, 2), PAD)], axis=1)
    np.testing.assert_allclose(model(more_padding, tgt).data, padded, rtol=1e-5, atol=1e-6)


def test_without_a_pad_id_every_source_token_is_read():
    # pad_id was 0 by default: token 0 of a vocabulary with no padding was hidden from
    # attention. As torch's nn.Transformer with no key padding mask, nothing is hidden now.
    manual_seed(0)
    model = Transformer(6, 6, context=10, n_layer=1, n_head=2, d_model=8)
    rng = np.random.default_rng(2)
    src, tgt = random_tokens(rng, 2, 6, 6), random_tokens(rng, 2, 4, 6)
    src[:, ::2] = 0                                           # a real token, half the source
    before = model(src, tgt).data
    model.src_embed.tok.weight.data[0] = rng.standard_normal(8)
    assert not np.allclose(model(src, tgt).data, before)     # token 0 is read
    assert model.encode(src)[1] is None


def test_without_a_pad_id_greedy_decoding_fills_a_finished_row_with_eos():
    # As transformers' generate pads with eos when there is no pad token.
    manual_seed(0)
    model = Transformer(6, 6, context=10, n_layer=1, n_head=2, d_model=8)
    for p in model.parameters():
        p.data *= 3                             # sharper: the two rows write different tokens
    src = np.random.default_rng(0).integers(0, 6, (2, 6))
    free = model.greedy_decode(src, 6, bos_id=1)              # (2, 7), no eos
    eos = 3
    end = list(free[1]).index(eos)                            # row 1 writes eos here
    assert eos not in free[0] and (free[1, end + 1:] != eos).any(), "would prove nothing"
    out = model.greedy_decode(src, 6, bos_id=1, eos_id=eos)
    np.testing.assert_array_equal(out[0], free[0])
    np.testing.assert_array_equal(out[1], [*free[1, :end], *[eos] * (7 - end)])


@pytest.mark.parametrize("pad_id", [None, 5])
def test_greedy_decoding_takes_several_eos_ids_and_fills_with_one_token_as_gpt_does(pad_id):
    # A list of ids once went into the filling as it was: a broadcast error, or, with as many
    # rows as ids, row i filled with the i-th id.
    manual_seed(0)
    model = Transformer(6, 6, context=10, n_layer=1, n_head=2, d_model=8, pad_id=pad_id)
    for p in model.parameters():
        p.data *= 3                             # sharper: the two rows write different tokens
    src = np.random.default_rng(0).integers(1, 5, (2, 6))
    free = model.greedy_decode(src, 6, bos_id=1)              # (2, 7), no eos
    end = 1                                                   # row 1 ends at its first token
    unused = next(t for t in range(6) if t not in free[:, 1:])
    assert free[1, end] not in free[0] and (free[1, end + 1:] != free[1, end]).any(), \
        "would prove nothing"
    out = model.greedy_decode(src, 6, bos_id=1, eos_id=[unused, free[1, end]])
    fill = unused if pad_id is None else pad_id               # the first id, or the padding
    np.testing.assert_array_equal(out[0], free[0])
    np.testing.assert_array_equal(out[1], [*free[1, :end + 1], *[fill] * (6 - end)])
    three = np.concatenate([src, src[:1]])                    # a batch of another size
    np.testing.assert_array_equal(
        model.greedy_decode(three, 6, bos_id=1, eos_id=[unused, free[1, end]]), [*out, out[0]])


def test_target_padding_never_changes_the_logits_of_real_target_positions():
    manual_seed(0)
    model = Transformer(6, 6, context=10, n_layer=2, n_head=2, d_model=8, tie_weights=False)
    rng = np.random.default_rng(3)
    src = random_tokens(rng, 2, 5, 6)
    tgt = random_tokens(rng, 2, 7, 6)
    lengths = np.array([4, 7])
    tgt[np.arange(7) >= lengths[:, None]] = PAD
    padded = model(src, tgt).data
    for b, length in enumerate(lengths):
        alone = model(src[b:b + 1], tgt[b:b + 1, :length]).data
        np.testing.assert_allclose(padded[b:b + 1, :length], alone, rtol=1e-5, atol=1e-6)
    # More padding, and a different vector for the pad token (untied, so the logits' own
    # weights stay put): the real positions do not see it.
    model.tgt_embed.tok.weight.data[PAD] = rng.standard_normal(8)
    more_padding = np.concatenate([tgt, np.full((2, 3), PAD)], axis=1)
    changed = model(src, more_padding).data
    for b, length in enumerate(lengths):
        np.testing.assert_allclose(changed[b, :length], padded[b, :length], rtol=1e-5,
                                   atol=1e-6)


# --------------------------------------------------------------------------------------------
# Parity with torch.nn.Transformer
#
# torch.nn.Transformer ends its encoder stack and its decoder stack with a LayerNorm even for
# post-norm layers (norm_first=False), which the paper's model has not: each post-norm layer
# already ends in one. We remove those two final norms (`encoder.norm = decoder.norm = None`,
# which TransformerEncoder and TransformerDecoder skip), so the torch model is exactly the
# paper's stacks. Keeping them and setting them to identity weights would hide a norm that
# still rescales its input; removing them compares like with like. Pre-norm stacks end in a
# norm in both (our `final_norm`), which is compared with torch's.
#
# Both models get the same embedded inputs: we compare from the embeddings onwards, the encoder
# and decoder stacks with their masks, on float64. Our GELU is the tanh approximation; torch's
# activation="gelu" is the exact one, so torch is given the tanh one.


def _attention_pairs(ours, theirs):
    """(our parameter, torch parameter, rows of it, transpose?) for one attention layer.
    torch packs W_q, W_k, W_v as the rows of in_proj_weight (3C, C), each (out, in); ours are
    three (in, out) Linears."""
    C = ours.d_model
    for i, linear in enumerate((ours.q, ours.k, ours.v)):
        rows = slice(i * C, (i + 1) * C)
        yield linear.weight, theirs.in_proj_weight, rows, True
        yield linear.bias, theirs.in_proj_bias, rows, False
    yield from _linear_pairs(ours.out, theirs.out_proj)


def _linear_pairs(ours, theirs):
    everything = slice(None)
    yield ours.weight, theirs.weight, everything, True     # ours (in, out), torch (out, in)
    yield ours.bias, theirs.bias, everything, False


def _norm_pairs(ours, theirs):
    everything = slice(None)
    yield ours.weight, theirs.weight, everything, False
    yield ours.bias, theirs.bias, everything, False


def _parameter_pairs(model, torch_model):
    for ours, theirs in zip(model.encoder.layers, torch_model.encoder.layers):
        yield from _attention_pairs(ours.attn, theirs.self_attn)
        yield from _linear_pairs(ours.ffn.fc1, theirs.linear1)
        yield from _linear_pairs(ours.ffn.fc2, theirs.linear2)
        yield from _norm_pairs(ours.attn_norm, theirs.norm1)
        yield from _norm_pairs(ours.ffn_norm, theirs.norm2)
    for ours, theirs in zip(model.decoder.layers, torch_model.decoder.layers):
        yield from _attention_pairs(ours.attn, theirs.self_attn)
        yield from _attention_pairs(ours.cross_attn, theirs.multihead_attn)
        yield from _linear_pairs(ours.ffn.fc1, theirs.linear1)
        yield from _linear_pairs(ours.ffn.fc2, theirs.linear2)
        yield from _norm_pairs(ours.attn_norm, theirs.norm1)
        yield from _norm_pairs(ours.cross_norm, theirs.norm2)
        yield from _norm_pairs(ours.ffn_norm, theirs.norm3)
    if model.encoder.final_norm is not None:                     # pre-norm
        yield from _norm_pairs(model.encoder.final_norm, torch_model.encoder.norm)
        yield from _norm_pairs(model.decoder.final_norm, torch_model.decoder.norm)


def _as_ours(array, rows, transpose):
    array = array[rows]
    return array.T if transpose else array


def _tanh_gelu(x):
    return torch.nn.functional.gelu(x, approximate="tanh")


# torch says that it builds the pre-norm and the tanh-GELU encoders without its fast path
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("n_layer, norm, activation", [
    (1, "post", "relu"), (2, "post", "relu"), (1, "pre", "relu"), (1, "post", "gelu"),
    (2, "pre", "gelu")])
def test_stacks_match_torch_transformer_outputs_and_gradients(n_layer, norm, activation):
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(d_model=8, nhead=2, num_encoder_layers=n_layer,
                                  num_decoder_layers=n_layer, dim_feedforward=16, dropout=0.0,
                                  activation="relu" if activation == "relu" else _tanh_gelu,
                                  batch_first=True, norm_first=norm == "pre",
                                  dtype=torch.float64)
    if norm == "post":
        theirs.encoder.norm = theirs.decoder.norm = None   # see the comment above
    ours = to_float64(Transformer(5, 5, context=8, n_layer=n_layer, n_head=2, d_model=8,
                                  d_ff=16, norm=norm, activation=activation))
    pairs = list(_parameter_pairs(ours, theirs))
    stack_params = list(ours.encoder.parameters()) + list(ours.decoder.parameters())
    assert {id(p) for p, *_ in pairs} == {id(p) for p in stack_params}   # every one is copied
    for p, torch_p, rows, transpose in pairs:
        p.data = _as_ours(torch_p.detach().numpy(), rows, transpose).copy()

    rng = np.random.default_rng(0)
    B, S, T = 2, 6, 5
    src_is_token = np.arange(S) < np.array([[6], [4]])          # row 1 has 2 padded keys
    tgt_is_token = np.arange(T) < np.array([[3], [5]])          # row 0 has 2 padded targets
    x, y = rng.standard_normal((B, S, 8)), rng.standard_normal((B, T, 8))
    weights = rng.standard_normal((B, T, 8))     # a random loss: sum(out * weights)

    x_ours = Tensor(x, requires_grad=True, dtype=np.float64)
    y_ours = Tensor(y, requires_grad=True, dtype=np.float64)
    src_mask = padding_mask(src_is_token)
    memory = ours.encoder(x_ours, src_mask)
    out = ours.decoder(y_ours, memory, causal_mask(T) & padding_mask(tgt_is_token), src_mask)
    (out * weights).sum().backward()

    x_torch = torch.tensor(x, requires_grad=True)
    y_torch = torch.tensor(y, requires_grad=True)
    # torch's boolean masks mean the opposite of ours: True = may NOT attend.
    out_torch = theirs(x_torch, y_torch,
                       tgt_mask=torch.from_numpy(~causal_mask(T)),
                       src_key_padding_mask=torch.from_numpy(~src_is_token),
                       tgt_key_padding_mask=torch.from_numpy(~tgt_is_token),
                       memory_key_padding_mask=torch.from_numpy(~src_is_token))
    (out_torch * torch.from_numpy(weights)).sum().backward()

    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, out_torch.detach().numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(x_ours.grad, x_torch.grad.numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(y_ours.grad, y_torch.grad.numpy(), rtol=1e-7, atol=1e-10)
    for p, torch_p, rows, transpose in pairs:
        np.testing.assert_allclose(p.grad, _as_ours(torch_p.grad.numpy(), rows, transpose),
                                   rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_a_residual_drops_out_its_sublayers_output_while_training(placement):
    # Section 5.4: dropout on each sub-layer's output before it is added to the stream, in
    # either placement of the norm (torch's layers drop there too; its parity test above runs
    # without dropout).
    norm, drop = nn.LayerNorm(8), nn.Dropout(0.5)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8)), dtype=np.float64)
    manual_seed(0)
    out = residual(x, lambda h: h * 2.0, norm, drop, placement).data
    manual_seed(0)                             # the same draw: the mask dropout multiplies by
    kept = dropout_mask((2, 3, 8), 0.5, np.float64)
    if placement == "pre":
        expected = x + norm(x) * 2.0 * Tensor(kept, dtype=np.float64)
    else:
        expected = norm(x + x * 2.0 * Tensor(kept, dtype=np.float64))
    np.testing.assert_allclose(out, expected.data, rtol=1e-12, atol=1e-12)
    assert (kept == 0).any() and (kept != 0).any()


# --------------------------------------------------------------------------------------------
# Gradients against finite differences


@pytest.mark.parametrize("kwargs", [
    dict(),                                                        # the paper's model
    dict(norm="pre", positions="rope", tie_weights=False, share_embeddings=True),
])
def test_gradcheck_every_parameter(kwargs):
    manual_seed(0)
    model = to_float64(Transformer(5, 5, context=6, n_layer=1, n_head=2, d_model=4, d_ff=8,
                                   pad_id=PAD, **kwargs))
    src = np.array([[1, 2, 3, 4], [4, 3, PAD, PAD]])
    tgt = np.array([[1, 3, 2, 4], [1, 2, 4, PAD]])
    targets = np.array([[3, 2, 4, 1], [2, 4, 3, 3]])
    parameters = list(model.parameters())
    # gradcheck nudges each parameter's .data in place; the model reads them from there.
    assert gradcheck(lambda *_: cross_entropy(model(src, tgt), targets), *parameters)


# --------------------------------------------------------------------------------------------
# Learning: the copy task

BOS, EOS, FIRST_DIGIT = 1, 2, 3
MAX_DIGITS = 8


def copy_batch(rng, size):
    """Random digit strings of 6 to 8 digits: src = digits, EOS; tgt = BOS, digits, EOS;
    both padded with PAD."""
    src = np.full((size, MAX_DIGITS + 1), PAD)
    tgt = np.full((size, MAX_DIGITS + 2), PAD)
    for i, length in enumerate(rng.integers(6, MAX_DIGITS + 1, size)):
        digits = rng.integers(FIRST_DIGIT, FIRST_DIGIT + 10, length)
        src[i, :length], src[i, length] = digits, EOS
        tgt[i, 0], tgt[i, 1:length + 1], tgt[i, length + 1] = BOS, digits, EOS
    return src, tgt


def test_learns_to_copy_digit_sequences_and_decodes_them_greedily_and_with_beam_3(
        one_blas_thread):
    manual_seed(0)
    model = Transformer(13, 13, context=MAX_DIGITS + 2, n_layer=1, n_head=4, d_model=32,
                        share_embeddings=True, pad_id=PAD)
    optimizer = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    # 500 steps: with the compiled kernels (tinyautograd.kernels) 400 left 9 digits of 1,000
    # wrong, with the numpy forms none; other roundings, another path from the first step.
    for _ in range(500):
        src, tgt = copy_batch(rng, 32)
        # Teacher forcing: the decoder reads tgt[:, :-1] and predicts tgt[:, 1:].
        loss = cross_entropy(model(src, tgt[:, :-1]), tgt[:, 1:], ignore_index=PAD)
        model.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start

    src, tgt = copy_batch(np.random.default_rng(1), 100)             # held out
    decoded = model.greedy_decode(src, max_len=MAX_DIGITS + 1, bos_id=BOS, eos_id=EOS)
    # Every sequence ended with EOS, so decoding stopped at the longest one.
    np.testing.assert_array_equal(decoded, tgt[:, :decoded.shape[1]])
    assert (decoded == EOS).sum() == 100
    print(f"copy task: 500 steps, {seconds:.1f} s, final loss {loss.item():.4f}")

    # Beam search (beam 3, the GNMT length penalty), one session a row as `tinyformer generate
    # --beam` runs it, finds each held-out sequence too: tests/test_beam.py's checks of the
    # search on a trained model, which it once trained a copy model of its own for.
    src, tgt = src[:20], tgt[:20]
    for source, target in zip(src, tgt):
        hypothesis = beam_search(model.start_decoding(source[None], BOS), 3, MAX_DIGITS + 1,
                                 EOS, 0.6)
        ends = list(target).index(EOS) + 1                     # (BOS, digits, EOS), no PAD
        assert list(hypothesis.tokens) == list(target[:ends]) and hypothesis.log_prob <= 0


@pytest.mark.parametrize("bos_id", [1.0, True, -1, 6, "1"])
def test_a_bos_id_the_model_cannot_read_is_refused_in_one_line(bos_id):
    # -1 failed inside the embedding, and 1.0 or True were taken as ids.
    model = Transformer(6, 6, 8, n_layer=1, n_head=2, d_model=8).eval()
    src = np.array([[1, 2, 3]])
    # Each error named what its caller called: greedy_decode's once said start_decoding.
    for called, decode in (("greedy_decode", lambda: model.greedy_decode(src, 3, bos_id)),
                           ("start_decoding",
                            lambda: beam_search(model.start_decoding(src, bos_id), 2, 3))):
        with pytest.raises(ValueError, match=rf"^{called}: bos_id must be a token id in "
                                             r"\[0, 6\), got "):
            decode()


@pytest.mark.parametrize("ids", [dict(bos_id=6), dict(bos_id=1, eos_id=6)])
def test_greedy_decode_refuses_a_bad_token_id_before_the_encoder_runs(ids, monkeypatch):
    # The encoder ran over the whole source before either id was checked.
    model = Transformer(6, 6, 8, n_layer=1, n_head=2, d_model=8).eval()
    encoded = []
    monkeypatch.setattr(model.encoder, "forward", lambda *args: encoded.append(1))
    with pytest.raises(ValueError, match=r"^greedy_decode: [be]os_id must be a token id"):
        model.greedy_decode(np.array([[1, 2, 3]]), 3, **ids)
    assert not encoded


def test_generate_on_the_encoder_decoder_says_how_it_writes_instead():
    # A user who comes from GPT got "'Transformer' object has no attribute 'generate'" alone.
    model = Transformer(6, 6, 8, n_layer=1, n_head=2, d_model=8)
    with pytest.raises(AttributeError, match=r"^'Transformer' object has no attribute "
                                             r"'generate': an encoder-decoder writes a target "
                                             r"for a source.*greedy_decode\(src, max_len, "
                                             r"bos_id, eos_id\).*start_decoding\(src\[:1\], "
                                             r"bos_id\)"):
        model.generate(np.array([[1, 2, 3]]), 3)
    assert not hasattr(model, "generate")
    with pytest.raises(AttributeError, match=r"^'Transformer' object has no attribute 'gen'$"):
        _ = model.gen
