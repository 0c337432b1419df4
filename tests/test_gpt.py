"""GPT: shapes and options, causality, parity with a GPT written in torch, gradcheck over every
parameter, generation, and learning to memorise a text."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyautograd as ta
import tinyautograd.functional as F
from precision import to_float64
from torch_pieces import assert_equals_torchs, torch_pieces
from tinyautograd import optim
from tinyformer.gpt import GPT
from tinyformer.sampling import sample_next


def tiny_gpt(**options):
    ta.manual_seed(0)
    settings = dict(vocab_size=7, context=8, n_layer=2, n_head=2, d_model=8)
    return GPT(**{**settings, **options})


def tokens(shape, vocab=7, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, shape)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "none"])
@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("tie_weights", [True, False])
def test_every_option_gives_logits_and_gradients_for_every_parameter(positions, norm,
                                                                     tie_weights):
    model = tiny_gpt(positions=positions, norm=norm, tie_weights=tie_weights)
    idx = tokens((3, 5))
    logits = model(idx)
    assert logits.shape == (3, 5, 7) and logits.dtype == np.float32
    F.cross_entropy(logits, tokens((3, 5), seed=1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.abs(p.grad).sum() > 0, name


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_changing_a_future_token_never_changes_earlier_logits(positions):
    model = tiny_gpt(positions=positions)
    idx = tokens((2, 8))
    before = model(idx).data
    for t in range(8):
        changed = idx.copy()
        changed[:, t] = (changed[:, t] + 1) % 7
        after = model(changed).data
        np.testing.assert_array_equal(after[:, :t], before[:, :t])
        assert not np.allclose(after[:, t:], before[:, t:])


def test_sequence_longer_than_the_context_is_a_clear_error():
    with pytest.raises(ValueError, match="sequence of 9 tokens exceeds the context of 8"):
        tiny_gpt()(tokens((1, 9)))


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="n_head 3 does not divide d_model 8"):
        tiny_gpt(n_head=3)
    with pytest.raises(ValueError, match="n_layer must be a whole number >= 1, got 0"):
        tiny_gpt(n_layer=0)


# ------------------------------------------------------------------ parity with torch


def torch_gpt(model, idx):
    """The same GPT written directly in torch, reading our parameters (float64)."""
    params, x, linear, norm, heads = torch_pieces(model, idx)
    B, T = idx.shape
    for i in range(model.config["n_layer"]):
        b = f"decoder.layers.{i}"
        h = norm(f"{b}.attn_norm", x)
        q, k, v = (heads(linear(f"{b}.attn.{n}", h)) for n in "qkv")
        a = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + linear(f"{b}.attn.out", a.transpose(1, 2).reshape(B, T, -1))
        h = TF.gelu(linear(f"{b}.ffn.fc1", norm(f"{b}.ffn_norm", x)), approximate="tanh")
        x = x + linear(f"{b}.ffn.fc2", h)
    logits = norm("decoder.final_norm", x) @ params["embed.tok.weight"].T
    return logits, params


def test_equals_a_gpt_written_in_torch_outputs_and_every_gradient():
    model = to_float64(tiny_gpt())
    assert_equals_torchs(model, tokens((3, 6)), tokens((3, 6), seed=1), torch_gpt)


def test_gradcheck_over_every_parameter_of_a_tiny_gpt():
    ta.manual_seed(1)
    model = to_float64(GPT(vocab_size=5, context=4, n_layer=1, n_head=2, d_model=4))
    idx, targets = tokens((2, 3), vocab=5), tokens((2, 3), vocab=5, seed=1)
    params = list(model.parameters())
    assert ta.gradcheck(lambda *_: F.cross_entropy(model(idx), targets), *params)


# ------------------------------------------------------------------ generation


def test_a_sampled_rows_tokens_depend_on_how_many_rows_share_the_seed_not_on_what_they_hold():
    # As GPT.generate's docstring says: one draw per row and step, in row order.
    model = tiny_gpt()
    for p in model.parameters():             # sharp enough that the rows' draws differ
        if p.ndim == 2:
            p.data = 4 * p.data
    prompt = tokens((1, 3))
    others = [np.concatenate([prompt, tokens((2, 3), seed=seed)]) for seed in (1, 2)]
    batches = [model.generate(batch, 8, generator=np.random.default_rng(5)) for batch in others]
    np.testing.assert_array_equal(batches[0][0], batches[1][0])
    alone = model.generate(prompt, 8, generator=np.random.default_rng(5))[0]
    assert alone[3] == batches[0][0, 3]      # the first draw is the same one
    assert not np.array_equal(alone, batches[0][0]), "the same sample: this proves nothing"


def test_generation_is_seeded_and_temperature_zero_is_greedy():
    model = tiny_gpt()
    prompt = tokens((2, 3))
    a = model.generate(prompt, 6, generator=np.random.default_rng(5))
    b = model.generate(prompt, 6, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 9)
    np.testing.assert_array_equal(a[:, :3], prompt)
    greedy = model.generate(prompt, 6, temperature=0)
    np.testing.assert_array_equal(greedy, model.generate(prompt, 6, top_k=1))
    np.testing.assert_array_equal(greedy, model.generate(prompt, 6, top_p=1e-9))


def test_generation_crops_to_the_context_and_restores_training_mode():
    model = tiny_gpt()
    out = model.generate(tokens((1, 8)), 5, temperature=0)
    assert out.shape == (1, 13) and model.training
    model.eval()
    model.generate(tokens((1, 3)), 2, temperature=0)
    assert not model.training                       # an evaluating model stays so


def test_generation_stops_when_every_row_has_ended():
    model = tiny_gpt()
    first = model.generate(tokens((1, 2)), 1, temperature=0)[0, -1]
    out = model.generate(tokens((1, 2)), 10, temperature=0, eos_id=first)
    assert out.shape == (1, 3)


def test_in_a_batch_a_row_that_has_ended_is_filled_with_eos_while_the_others_go_on():
    # As transformers fills with pad_token_id, which is eos_token_id for GPT-2: a finished row
    # once went on writing the model's tokens until every row was done.
    model = tiny_gpt()
    for p in model.parameters():            # sharper: the rows write different tokens
        if p.ndim == 2:
            p.data = 4 * p.data
    prompt = np.array([[3, 3], [5, 6]])
    free = model.generate(prompt, 8, temperature=0)[:, 2:]
    eos = free[1, 0]                        # row 1 ends at once; row 0 never writes it
    assert eos not in free[0] and (free[1, 1:] != eos).any(), "the test would prove nothing"
    out = model.generate(prompt, 8, temperature=0, eos_id=eos)
    np.testing.assert_array_equal(out[0, 2:], free[0])
    np.testing.assert_array_equal(out[1, 2:], [eos] * 8)
    streamed = []
    model.generate(prompt, 8, temperature=0, eos_id=eos, streamer=streamed.append)
    np.testing.assert_array_equal(np.stack(streamed, axis=1), out[:, 2:])   # what it streams


def test_several_eos_ids_end_a_row_at_any_of_them_and_fill_it_with_the_first():
    # As transformers' eos_token_id list (a chat model's <|im_end|> and <|endoftext|>).
    model = tiny_gpt()
    for p in model.parameters():
        if p.ndim == 2:
            p.data = 4 * p.data
    prompt = np.array([[3, 3], [5, 6]])
    free = model.generate(prompt, 8, temperature=0)[:, 2:]
    unused = next(t for t in range(7) if t not in free)    # first in the list: the filler
    eos = [unused, free[1, 0]]                              # row 1 ends at its first token
    assert free[1, 0] not in free[0] and (free[1, 1:] != free[1, 0]).any(), "proves nothing"
    out = model.generate(prompt, 8, temperature=0, eos_id=eos)
    np.testing.assert_array_equal(out[0, 2:], free[0])
    np.testing.assert_array_equal(out[1, 2:], [free[1, 0]] + [unused] * 7)
    assert model.generate(prompt, 8, temperature=0, eos_id=[free[0, 0], free[1, 0]]).shape \
        == (2, 3)                                           # both rows end at once: it stops
    with pytest.raises(ValueError, match="eos_id names no token"):
        model.generate(prompt, 8, eos_id=[])


def test_a_streamer_that_cannot_be_called_is_refused_before_any_step():
    # It failed after the first step's work, "'str' object is not callable"; transformers'
    # streamers are objects whose put takes the tokens, and the message says to give put.
    class HuggingFaceStyle:
        def put(self, tokens):
            pass
    model = tiny_gpt()
    model.forward = lambda *args, **kwargs: pytest.fail("a step ran")
    with pytest.raises(TypeError, match=r"^generate: streamer must be a function, called with "
                                        r"each step's tokens \(B,\), or None; got a str "
                                        r"object$"):
        model.generate(np.array([[3, 3]]), 2, streamer="print")
    with pytest.raises(TypeError, match=r"got a HuggingFaceStyle object \(an object with put, "
                                        r"as transformers' streamers: give its put\)$"):
        model.generate(np.array([[3, 3]]), 2, streamer=HuggingFaceStyle())


def test_an_eos_id_that_is_not_an_id_or_a_list_of_them_is_refused_in_one_line():
    # A set has no first id to fill a finished row with: an AttributeError, before.
    with pytest.raises(ValueError, match=r"^generate: eos_id must be a token id in \[0, 7\) or "
                                         r"a list of them, got \{3\}$"):
        tiny_gpt().generate(np.array([[3, 3]]), 2, eos_id={3})


def test_top_k_and_top_p_restrict_the_choices():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 2000))
    assert set(sample_next(logits, top_k=2, rng=rng)) == {0, 1}
    assert set(sample_next(logits, top_p=0.7, rng=rng)) == {0, 1}      # 0.5 < 0.7 <= 0.8
    assert set(sample_next(logits, top_p=0.85, rng=rng)) == {0, 1, 2}
    draws = sample_next(logits, rng=rng)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / len(draws),
                               [0.5, 0.3, 0.15, 0.05], atol=0.03)


class EvenUniforms:
    """A stand-in generator whose uniforms, one per row, are spread evenly over (0, 1): rows
    of equal logits then draw every token of nonzero probability (above 1 / rows)."""

    def random(self, shape):
        return (np.arange(shape[0])[:, None] + 0.5) / shape[0]


def test_sampling_draws_from_what_transformers_warpers_leave():
    # temperature, then top-k, then top-p, in transformers' order and by its rules: ties at
    # the k-th logit all stay, the token that carries the sum past p stays, top_k beyond the
    # vocabulary and top_p = 1 change nothing.
    rng, rows = np.random.default_rng(0), 5000
    for _ in range(60):
        V = int(rng.integers(2, 9))
        logits = rng.normal(size=V).round(1)                      # rounded: some ties
        temperature = float(rng.choice([0.5, 1.0, 2.0]))
        top_k = [None, 1, 2, V - 1, V + 2][rng.integers(5)]
        top_p = [None, 0.1, 0.5, 0.9, 1.0][rng.integers(5)]
        assert_draws_as_transformers(logits, temperature, top_k, top_p, rows)


def assert_draws_as_transformers(logits, temperature, top_k, top_p, rows):
    """sample_next, given `rows` copies of `logits` and evenly spread uniforms, draws each
    token as often as transformers' warpers' probabilities say, to within 2 draws."""
    from transformers.generation.logits_process import (TemperatureLogitsWarper,
                                                         TopKLogitsWarper, TopPLogitsWarper)
    scores = TemperatureLogitsWarper(temperature)(None, torch.tensor(logits)[None])
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p is not None and top_p < 1:                           # transformers skips 1.0
        scores = TopPLogitsWarper(top_p)(None, scores)
    want = scores.softmax(-1)[0].numpy()
    drawn = sample_next(np.tile(logits, (rows, 1)), temperature, top_k, top_p,
                        rng=EvenUniforms())
    np.testing.assert_allclose(np.bincount(drawn, minlength=len(logits)) / rows, want,
                               atol=2 / rows, err_msg=f"{logits} {temperature} {top_k} {top_p}")


def test_sampling_at_the_edges_draws_from_what_transformers_warpers_leave():
    # The edges of the settings, as transformers' warpers take them: tokens ruled out by a
    # -inf logit (a k-th largest of -inf keeps every finite token), a temperature near 0, a
    # top_p that the likeliest token alone passes (it stays, alone), a top_p just under 1, a
    # top_k of one token or of all of them. Logits without ties: which of tokens tied at
    # top-p's cut stay is ours by design (the lower ids, sample_next's docstring).
    rng, rows = np.random.default_rng(1), 2000
    for _ in range(40):
        V = int(rng.integers(2, 12))
        logits = 3 * rng.normal(size=V)
        logits[rng.permutation(V)[:int(rng.integers(0, V))]] = -np.inf   # one stays finite
        temperature = float(rng.choice([1e-3, 0.05, 0.5, 2.0]))
        top_k = [None, 1, 3, V - 1, V][rng.integers(5)]
        top_p = [None, 0.01, 0.5, 0.999, 1.0][rng.integers(5)]
        assert_draws_as_transformers(logits, temperature, top_k, top_p, rows)
    # A temperature above 0, however small, still draws among the tied likeliest tokens (0 is
    # greedy: the first of them); a top_p just under 1 still drops the unlikeliest tokens.
    assert_draws_as_transformers(np.array([1.0, 1.0, 0.0]), 1e-4, None, None, rows)
    assert_draws_as_transformers(np.log([0.6, 0.397, 0.003]), 1.0, None, 0.995, rows)


def test_top_p_drops_the_token_at_which_the_sum_reaches_p_exactly_as_transformers_does():
    # Four tokens of probability 0.25 exactly: the first two reach p = 0.5, so the nucleus is
    # those two, as transformers' TopPLogitsWarper leaves it (the third is not needed).
    from transformers.generation.logits_process import TopPLogitsWarper
    logits = np.zeros(4)
    kept = TopPLogitsWarper(0.5)(None, torch.tensor(logits)[None]).isfinite().sum().item()
    drawn = set(sample_next(np.tile(logits, (400, 1)), top_p=0.5, rng=EvenUniforms()).tolist())
    assert drawn == {0, 1} and len(drawn) == kept


def test_top_p_breaks_ties_by_the_lower_id_in_any_vocabulary():
    # np.argsort's default order among equal values is its own beyond 16 of them: which of
    # the tied tokens made the nucleus was not the rule the course states (lower id first).
    logits = np.random.default_rng(0).integers(0, 3, 40).astype(float)     # ties everywhere
    drawn = set(sample_next(np.tile(logits, (4000, 1)), top_p=0.5, rng=EvenUniforms()).tolist())
    probs = np.exp(logits) / np.exp(logits).sum()
    order = np.argsort(-probs, kind="stable")
    nucleus = order[np.cumsum(probs[order]) - probs[order] < 0.5]
    assert drawn == set(nucleus.tolist())


class LargestUniforms:
    """A generator whose every uniform is the largest float below 1."""
    def random(self, shape):
        return np.full(shape, np.nextafter(1.0, 0.0))


def test_a_uniform_near_1_never_draws_a_token_ruled_out():
    # The kept tokens' probabilities sum to a little under 1 in floating point: a uniform
    # above that sum drew the last id, which top-k had ruled out. The draw is the last kept
    # token in id order.
    logits = np.array([[-2.4, 1.2, 0.3, -50.0]])
    assert sample_next(logits, top_k=3, rng=LargestUniforms()) == [2]
    assert sample_next([[-2.4, 1.2, 0.3, -np.inf]], rng=LargestUniforms()) == [2]


class ZeroUniforms:
    """A generator whose every uniform is 0, the smallest it may give."""
    def random(self, shape):
        return np.zeros(shape)


def test_a_uniform_of_0_never_draws_a_token_ruled_out():
    # Token 0 ruled out (top-k, a -inf logit): a uniform of exactly 0 drew it, since no
    # cumulative probability is below 0. The draw is the first kept token in id order.
    assert sample_next([[-50.0, 1.2, 0.3, -2.4]], top_k=3, rng=ZeroUniforms()) == [1]
    assert sample_next([[-np.inf, -np.inf, 0.3, 1.2]], rng=ZeroUniforms()) == [2]


@pytest.mark.parametrize("temperature", [1e-300, 1e-320, 5e-324])
def test_a_tiny_temperature_tends_to_greedy(temperature):
    # logits / 1e-320 once overflowed to inf, softmax gave NaN, and token 0 came out every time
    logits = np.array([[0.0, 1.0, 3.0, 2.0], [5.0, -1.0, 4.9, 0.0], [-2.0, -3.0, -1.5, -9.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no overflow on the way either
        drawn = sample_next(logits, temperature, rng=np.random.default_rng(0))
        assert drawn.tolist() == [2, 0, 2]
        model = tiny_gpt()
        prompt = tokens((3, 2))
        greedy = model.generate(prompt, 6, temperature=0)
        assert (greedy[:, 2:] != 0).any(), "greedy writes only token 0: this would prove nothing"
        np.testing.assert_array_equal(model.generate(prompt, 6, temperature=temperature), greedy)


def test_sample_next_draws_from_the_engines_seeded_generator_by_default():
    # it once drew from a fresh, unseeded numpy generator: manual_seed did not repeat it
    logits = np.zeros((200, 5))                             # every token equally likely
    ta.manual_seed(3)
    first = sample_next(logits)
    ta.manual_seed(3)
    np.testing.assert_array_equal(sample_next(logits), first)
    ta.manual_seed(3)
    np.testing.assert_array_equal(sample_next(logits, rng=ta.random.default_generator()),
                                  first)


def test_sample_next_on_one_row_of_logits_draws_one_token():
    # (V,) logits once drew V tokens, each against its own uniform (and top-k raised
    # IndexError); like np.argmax, they give one token, the one the row (1, V) gives.
    logits = np.log([0.1, 0.2, 0.3, 0.4])
    for settings in (dict(), dict(top_k=2), dict(top_p=0.5), dict(temperature=0)):
        one = sample_next(logits, rng=np.random.default_rng(5), **settings)
        row = sample_next(logits[None], rng=np.random.default_rng(5), **settings)
        assert one.shape == () and one == row[0]
    for shape in [(2, 3, 4), (), (2, 0)]:
        with pytest.raises(ValueError, match="logits must be"):
            sample_next(np.zeros(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_logits_with_no_distribution_are_refused_when_sampling(bad):
    # Their probabilities were NaN, and the inverse-CDF draw gave token 0 without a word;
    # torch.multinomial refuses them. -inf alone is a token ruled out; a row of -inf is not.
    logits = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    logits[0] = -np.inf if bad == -np.inf else [0.0, bad, 2.0]
    # Greedy (temperature 0) too: its argmax took NaN for the largest logit, a row of -inf for
    # token 0, where the decoding loops refuse such logits.
    for settings in (dict(), dict(top_k=2), dict(top_p=0.9), dict(temperature=0.5),
                     dict(temperature=0)):
        with pytest.raises(ValueError, match="give no probabilities to draw from"):
            sample_next(logits, rng=np.random.default_rng(0), **settings)
        with pytest.raises(ValueError, match="give no probabilities to draw from"):
            sample_next(logits[0], rng=np.random.default_rng(0), **settings)   # one row, (V,)
    assert sample_next([[0.0, -np.inf, -np.inf]], rng=np.random.default_rng(0)) == [0]
    assert sample_next([[0.0, -np.inf, -np.inf]], temperature=0) == [0]


def test_bad_sampling_settings_are_clear_errors():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        model.generate(tokens((1, 2)), 1, temperature=-1)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0, got nan"):
        model.generate(tokens((1, 2)), 1, temperature=float("nan"))
    with pytest.raises(ValueError, match=r"top_p must be a finite number in \(0, 1\]"):
        model.generate(tokens((1, 2)), 1, top_p=1.5)
    # transformers' top_k=0 means no top-k; here that is None, which the error says
    with pytest.raises(ValueError, match=r"top_k must be a whole number >= 1, got 0 \(to keep "
                                         r"every token, leave it unset\)$"):
        model.generate(tokens((1, 2)), 1, top_k=0)
    # transformers' top_p=0 keeps the likeliest token alone: the error says how to have that
    with pytest.raises(ValueError, match=r"got 0 \(for the likeliest token alone, give "
                                         r"temperature 0; to keep every token, leave it unset\)$"):
        model.generate(tokens((1, 2)), 1, top_p=0)
    # a seed in the generator's place once failed at the first draw: 'int' has no 'random'
    with pytest.raises(TypeError, match=r"^generate: generator must be a numpy Generator, as "
                                        r"np.random.default_rng\(seed\) makes, .*got 42$"):
        model.generate(tokens((1, 2)), 1, generator=42)
    with pytest.raises(TypeError, match=r"^sample_next: rng must be a numpy Generator.*got 42$"):
        sample_next([[0.0, 1.0]], rng=42)
    # Python's own generator has a random() too, of no shape: it failed deep inside
    import random
    with pytest.raises(TypeError, match=r"^generate: generator must be a numpy Generator"):
        model.generate(tokens((1, 2)), 1, generator=random.Random(0))


# ------------------------------------------------------------------ learning


def test_gpt_memorises_a_short_text(one_blas_thread):
    text = "the quick brown fox jumps over the lazy dog; "
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text * 3])
    ta.manual_seed(0)
    model = GPT(len(chars), context=16, n_layer=2, n_head=2, d_model=32)
    optimizer = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(0)
    for _ in range(250):
        starts = rng.integers(0, len(ids) - 17, 16)
        x = np.stack([ids[s:s + 16] for s in starts])
        y = np.stack([ids[s + 1:s + 17] for s in starts])
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2, loss.item()
    out = model.generate(ids[None, :5], len(text) - 5, temperature=0)
    assert "".join(chars[i] for i in out[0]) == text
