"""tinyformer.layers: token embeddings with tying, the four positional encodings, the
embeddings module (and its context check), and the feed-forward network, against their
formulas and against PyTorch."""

import math

import numpy as np
import pytest
import torch

import tinyautograd as ta
from precision import to_float64
from tinyautograd import Tensor
from tinyformer.layers import (Embeddings, FeedForward, LearnedPositions, NoPositions,
                               RotaryPositions, SinusoidalPositions, TokenEmbedding,
                               least_parameters, positional_encoding)


def randn(*shape, seed=0, requires_grad=False):
    data = np.random.default_rng(seed).standard_normal(shape)
    return Tensor(data, requires_grad=requires_grad, dtype=np.float64)


# -------------------------------------------------------------------------- token embeddings


@pytest.mark.parametrize("scale", [False, True])
def test_token_embedding_scales_by_sqrt_d_model(scale):
    emb = TokenEmbedding(11, 16, scale=scale)
    idx = np.array([[1, 5, 5], [0, 10, 3]])
    out = emb(idx)
    assert out.shape == (2, 3, 16) and out.dtype == np.float32
    factor = math.sqrt(16) if scale else 1.0
    np.testing.assert_allclose(out.data, emb.weight.data[idx] * factor, rtol=1e-6)


def test_tied_unembedding_gradients_flow_into_the_one_weight():
    emb = to_float64(TokenEmbedding(7, 4, scale=True))
    idx = np.array([[1, 2, 2], [6, 0, 1]])
    targets = np.array([[2, 2, 3], [0, 1, 5]])
    loss = ta.functional.cross_entropy(emb.unembed(emb(idx).tanh()), targets)
    loss.backward()
    assert [name for name, _ in emb.named_parameters()] == ["weight"]

    weight = torch.tensor(emb.weight.data, requires_grad=True)
    x = (weight[torch.tensor(idx)] * 2.0).tanh()
    expected = torch.nn.functional.cross_entropy((x @ weight.T).reshape(-1, 7),
                                                 torch.tensor(targets).reshape(-1))
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(emb.weight.grad, weight.grad.numpy(), rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------------------- sinusoidal


def test_sinusoidal_table_matches_the_formula():
    context, d = 10, 6
    pe = SinusoidalPositions(context, d)
    out = pe(Tensor(np.zeros((1, context, d)))).data[0]
    for pos in range(context):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert out[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert out[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)
    # feature pair 0 turns once every 2 pi positions: PE[pos, 0] = sin(pos), PE[pos, 1] = cos(pos)
    np.testing.assert_allclose(out[:, 0], np.sin(np.arange(context)), atol=1e-6)
    np.testing.assert_allclose(out[:, 1], np.cos(np.arange(context)), atol=1e-6)


def test_sinusoidal_is_added_and_is_not_learned():
    pe = SinusoidalPositions(8, 5)         # an odd width: one sine more than cosines
    x = randn(2, 4, 5)
    np.testing.assert_allclose(pe(x).data - x.data, np.broadcast_to(pe.table[:4], (2, 4, 5)))
    assert list(pe.parameters()) == [] and pe.state_dict() == {}


# -------------------------------------------------------------------------- learned


def test_learned_positions_are_parameters_with_gradients():
    pe = LearnedPositions(8, 4)
    assert [name for name, _ in pe.named_parameters()] == ["embedding.weight"]
    assert pe.embedding.weight.data.std() == pytest.approx(0.02, rel=0.5)
    x = Tensor(np.ones((3, 5, 4), np.float32), requires_grad=True)
    out = pe(x, start=2)
    np.testing.assert_allclose(out.data[1], 1 + pe.embedding.weight.data[2:7])
    out.sum().backward()
    expected = np.zeros((8, 4))
    expected[2:7] = 3                      # each used position gets one per batch element
    np.testing.assert_array_equal(pe.embedding.weight.grad, expected)
    np.testing.assert_array_equal(x.grad, np.ones((3, 5, 4)))


# -------------------------------------------------------------------------- start offsets


@pytest.mark.parametrize("kind", ["sinusoidal", "learned", "none"])
def test_start_offset_equals_slicing_a_longer_sequence(kind):
    pe = positional_encoding(kind, 12, 6)
    x = randn(2, 9, 6)
    whole = pe(x).data
    np.testing.assert_allclose(pe(x[:, 5:], start=5).data, whole[:, 5:])


def test_rope_start_offset_equals_slicing_a_longer_sequence():
    rope = RotaryPositions(12, 8)
    q = randn(2, 3, 9, 8)
    whole = rope.rotate(q).data
    np.testing.assert_allclose(rope.rotate(q[:, :, 5:], start=5).data, whole[:, :, 5:])


def test_a_table_used_on_its_own_refuses_positions_past_its_end():
    # The token at position 4 of a table of 4 came back from the sinusoids as (B, 0, C).
    with pytest.raises(ValueError, match="SinusoidalPositions: positions 4 to 4 are past "
                                         "the table of 4 positions"):
        SinusoidalPositions(4, 6)(randn(2, 1, 6), start=4)
    with pytest.raises(ValueError, match="RotaryPositions: positions 2 to 5 are past"):
        RotaryPositions(4, 8).rotate(randn(2, 3, 4, 8), start=2)
    # learned: the embedding's "index 4 is out of range for a table of 4 rows" named a row
    with pytest.raises(ValueError, match="LearnedPositions: positions 3 to 4 are past the "
                                         "table of 4 positions; make it with context >= 5"):
        LearnedPositions(4, 6)(randn(2, 2, 6), start=3)


# -------------------------------------------------------------------------- rotary


def test_rope_dot_product_depends_only_on_the_offset():
    rope = RotaryPositions(32, 8)
    q = np.random.default_rng(1).standard_normal(8)
    k = np.random.default_rng(2).standard_normal(8)
    # the same q and k at every position: row m of rotate(...) is q (or k) at position m
    rq = rope.rotate(Tensor(np.tile(q, (1, 1, 32, 1)), dtype=np.float64)).data[0, 0]
    rk = rope.rotate(Tensor(np.tile(k, (1, 1, 32, 1)), dtype=np.float64)).data[0, 0]
    scores = rq @ rk.T                                  # scores[m, n] = <rot(q, m), rot(k, n)>
    for offset in (-7, 0, 3, 12):
        diagonal = np.diagonal(scores, offset=-offset)  # all (m, n) with m - n = offset
        np.testing.assert_allclose(diagonal, diagonal[0], rtol=1e-10)
    assert not np.allclose(scores[3, 0], scores[4, 0])  # and it does depend on the offset


def test_rope_preserves_norms_and_is_the_identity_at_position_0():
    rope = RotaryPositions(16, 6)
    x = randn(2, 3, 16, 6)
    out = rope.rotate(x).data
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x.data, axis=-1))
    np.testing.assert_allclose(out[:, :, 0], x.data[:, :, 0])
    assert not np.allclose(out[:, :, 1], x.data[:, :, 1])


def test_rope_pairs_features_2i_and_2i_plus_1():
    rope = RotaryPositions(4, 4)
    x = Tensor(np.tile([1.0, 0.0, 1.0, 0.0], (1, 1, 4, 1)), dtype=np.float64)
    out = rope.rotate(x).data[0, 0]
    theta = np.array([1.0, 10000 ** -0.5])
    m = np.arange(4)[:, None]
    expected = np.stack([np.cos(m * theta), np.sin(m * theta)], axis=-1).reshape(4, 4)
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_rope_is_transformers_rotation_of_the_features_in_the_other_order():
    # Hugging Face's Llama (apply_rotary_pos_emb, its rotate_half written out below) pairs
    # feature i with i + d/2; ours pairs 2i with 2i + 1. The docstring's promise: the same
    # rotation once the features are put in the other order, outputs and gradients, at any
    # start and base.
    d, T, start, base = 8, 5, 3, 500000.0
    x = np.random.default_rng(3).standard_normal((2, 3, T, d))
    upstream = np.random.default_rng(4).standard_normal(x.shape)
    theirs = torch.tensor(x, requires_grad=True)
    inv_freq = base ** -(torch.arange(0, d, 2, dtype=torch.float64) / d)         # (d/2,)
    angles = torch.arange(start, start + T, dtype=torch.float64)[:, None] * inv_freq
    cos, sin = (torch.cat([f(angles)] * 2, dim=-1) for f in (torch.cos, torch.sin))  # (T, d)
    rotated_half = torch.cat([-theirs[..., d // 2:], theirs[..., :d // 2]], dim=-1)
    want = theirs * cos + rotated_half * sin
    (want * torch.tensor(upstream)).sum().backward()
    ours_order = np.stack([np.arange(d // 2), np.arange(d // 2) + d // 2], -1).reshape(-1)
    ours = Tensor(x[..., ours_order], requires_grad=True, dtype=np.float64)   # 0, d/2, 1, ...
    got = RotaryPositions(start + T, d, base).rotate(ours, start)
    got.backward(upstream[..., ours_order])
    np.testing.assert_allclose(got.data, want.detach().numpy()[..., ours_order], atol=1e-12)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy()[..., ours_order], atol=1e-12)


def test_rope_rotate_gradcheck():
    rope = RotaryPositions(8, 4)
    x = randn(1, 2, 3, 4, requires_grad=True)
    assert ta.gradcheck(lambda x: rope.rotate(x, start=4), x)


def test_rope_forward_is_the_identity_and_has_no_parameters():
    rope = positional_encoding("rope", 8, 16, d_head=4)
    assert isinstance(rope, RotaryPositions) and rope.d_head == 4
    x = randn(2, 5, 16)
    assert rope(x) is x and list(rope.parameters()) == []


def test_rope_needs_an_even_head_size():
    with pytest.raises(ValueError, match="even"):
        RotaryPositions(8, 5)


# -------------------------------------------------------------------------- factory, dtypes


def test_factory_kinds_and_no_positions():
    kinds = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions,
             "rope": RotaryPositions, "none": NoPositions}
    for kind, cls in kinds.items():
        assert type(positional_encoding(kind, 8, 4)) is cls
    x = randn(1, 3, 4)
    assert NoPositions()(x) is x


@pytest.mark.parametrize("kind", ["sinusoidal", "learned", "rope", "none"])
def test_float32_stays_float32(kind):
    pe = positional_encoding(kind, 8, 4)
    x = Tensor(np.ones((2, 3, 4), np.float32))
    assert pe(x).dtype == np.float32
    if kind == "rope":
        assert pe.rotate(Tensor(np.ones((2, 1, 3, 4), np.float32))).dtype == np.float32


def test_unknown_kind_lists_the_choices():
    with pytest.raises(ValueError, match="unknown positional encoding 'alibi'; choose one of "
                                         "'sinusoidal', 'learned', 'rope', 'none'"):
        positional_encoding("alibi", 8, 4)


@pytest.mark.parametrize("kind", ["sinusoidal", "learned", "rope", "none"])
def test_embeddings_refuse_a_sequence_longer_than_the_context(kind):
    embed = Embeddings(10, 4, 64, kind, 0.0)
    assert embed(np.zeros((1, 64), int)).shape == (1, 64, 4)
    message = "sequence of 70 tokens exceeds the context of 64"
    with pytest.raises(ValueError, match=message):
        embed(np.zeros((1, 70), int))
    with pytest.raises(ValueError, match=message):
        embed(np.zeros((1, 10), int), start=60)          # 60 earlier tokens in a KV cache


def test_embeddings_hand_rope_to_attention_and_add_nothing():
    rope = Embeddings(10, 8, 16, "rope", 0.0, d_head=4)
    assert isinstance(rope.rotary, RotaryPositions) and rope.rotary.d_head == 4
    idx = np.array([[1, 2]])
    np.testing.assert_array_equal(rope(idx).data, rope.tok(idx).data)
    assert Embeddings(10, 8, 16, "learned", 0.0).rotary is None


def test_embeddings_scale_norm_and_dropout_in_the_papers_order():
    idx = np.array([[1, 2, 3]])
    plain = Embeddings(10, 4, 8, "sinusoidal", 0.0)
    scaled = Embeddings(10, 4, 8, "sinusoidal", 0.0, scale=True)
    scaled.tok.weight.data[...] = plain.tok.weight.data
    np.testing.assert_allclose(scaled(idx).data - plain(idx).data,
                               plain.tok(idx).data * (np.sqrt(4) - 1), rtol=1e-5, atol=1e-6)
    normed = Embeddings(10, 4, 8, "sinusoidal", 0.0, norm=True)
    out = normed(idx).data
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-5)   # a LayerNorm on the sum
    assert plain.norm is None
    dropped = Embeddings(10, 4, 8, "sinusoidal", 0.5).train()
    assert (dropped(np.ones((4, 8), int)).data == 0).mean() > 0.3   # dropout on the sum


# -------------------------------------------------------------------------- feed-forward


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_matches_torch(activation):
    ffn = to_float64(FeedForward(6, 24, activation=activation))
    assert [name for name, _ in ffn.named_parameters()] == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    act = torch.nn.ReLU() if activation == "relu" else torch.nn.GELU(approximate="tanh")
    ref = torch.nn.Sequential(torch.nn.Linear(6, 24), act, torch.nn.Linear(24, 6)).double()
    with torch.no_grad():                      # our weight is (in, out), torch's is (out, in)
        ref[0].weight.copy_(torch.tensor(ffn.fc1.weight.data.T))
        ref[0].bias.copy_(torch.tensor(ffn.fc1.bias.data))
        ref[2].weight.copy_(torch.tensor(ffn.fc2.weight.data.T))
        ref[2].bias.copy_(torch.tensor(ffn.fc2.bias.data))

    x = randn(2, 5, 6, requires_grad=True)
    x_ref = torch.tensor(x.data, requires_grad=True)
    out, out_ref = ffn(x), ref(x_ref)
    np.testing.assert_allclose(out.data, out_ref.detach().numpy(), rtol=1e-10, atol=1e-12)

    upstream = np.random.default_rng(3).standard_normal(out.shape)
    (out * upstream).sum().backward()
    (out_ref * torch.tensor(upstream)).sum().backward()
    close = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad, x_ref.grad.numpy(), **close)
    np.testing.assert_allclose(ffn.fc1.weight.grad, ref[0].weight.grad.numpy().T, **close)
    np.testing.assert_allclose(ffn.fc1.bias.grad, ref[0].bias.grad.numpy(), **close)
    np.testing.assert_allclose(ffn.fc2.weight.grad, ref[2].weight.grad.numpy().T, **close)
    np.testing.assert_allclose(ffn.fc2.bias.grad, ref[2].bias.grad.numpy(), **close)


def test_feed_forward_float32_and_dropout_only_while_training():
    ffn = FeedForward(4, 16, dropout=0.5)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32))
    assert ffn(x).dtype == np.float32
    ta.manual_seed(0)
    training = ffn(x).data
    ffn.eval()
    evaluating = ffn(x).data
    np.testing.assert_array_equal(ffn(x).data, evaluating)     # no randomness left
    assert not np.allclose(training, evaluating)


def test_feed_forward_drops_the_hidden_activations_after_the_activation():
    # GELU(z / (1 - p)) is not GELU(z) / (1 - p): dropping before the activation is another
    # function, which only a model in training mode shows.
    ffn = to_float64(FeedForward(4, 16, activation="gelu", dropout=0.5)).train()
    x = randn(2, 3, 4)
    ta.manual_seed(0)
    out = ffn(x).data
    ta.manual_seed(0)                          # the same draw: the mask dropout multiplied by
    kept = ta.functional.dropout_mask((2, 3, 16), 0.5, np.float64)
    hidden = ffn.act(ffn.fc1(x)).data * kept
    np.testing.assert_allclose(out, hidden @ ffn.fc2.weight.data + ffn.fc2.bias.data,
                               rtol=1e-12, atol=1e-12)
    assert (kept == 0).any() and (kept != 0).any()


def test_feed_forward_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'swish'; choose one of 'relu', "
                                         "'gelu'"):
        FeedForward(4, 16, activation="swish")


@pytest.mark.parametrize("kind", ["gpt", "gpt_learned", "transformer"])
def test_least_parameters_counts_exactly_the_weight_matrices(kind):
    # Without an untied head, the bound leaves out only biases and norms (vectors): it must
    # count every matrix, cross-attention's and a learned position table included.
    from tinyformer import GPT, Transformer
    if kind == "gpt_learned":
        model = GPT(vocab_size=13, context=8, n_layer=2, n_head=4, d_model=16)
    elif kind == "gpt":
        model = GPT(vocab_size=13, context=8, n_layer=2, n_head=4, d_model=16, n_kv_head=2,
                    activation="swiglu", positions="rope")
    else:
        model = Transformer(11, 11, context=8, n_layer=2, n_head=4, d_model=16, n_kv_head=2,
                            share_embeddings=True)
    matrices = sum(p.size for p in model.parameters() if p.ndim == 2)
    assert least_parameters(model.config) == matrices
