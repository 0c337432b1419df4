"""The KV cache gives exactly the logits of recomputing everything, and generation with it
equals generation without it, including after the sequence outgrows the context."""

import re

import numpy as np
import pytest

import tinyautograd as ta
from tinyformer.attention import KVCache, causal_mask
from tinyformer.gpt import GPT


def tiny_gpt(positions):
    ta.manual_seed(0)
    return GPT(vocab_size=11, context=12, n_layer=2, n_head=2, d_model=16, positions=positions)


def test_causal_mask_with_an_offset_lets_new_queries_see_the_cached_keys():
    np.testing.assert_array_equal(causal_mask(2, start=3), [[1, 1, 1, 1, 0],
                                                            [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(causal_mask(3), np.tril(np.ones((3, 3), bool)))


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "none"])
def test_feeding_tokens_through_the_cache_equals_recomputing(positions):
    model = tiny_gpt(positions)
    idx = np.random.default_rng(0).integers(0, 11, (3, 10))
    with ta.no_grad():
        full = model(idx).data                                   # (3, 10, 11)
        cache = KVCache()
        pieces = [model(idx[:, :4], cache).data]                 # a prompt, then one at a time
        pieces += [model(idx[:, t:t + 1], cache).data for t in range(4, 10)]
    assert cache.length == 10
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-5, atol=1e-6)


def test_the_cache_refuses_to_grow_past_the_context():
    model = tiny_gpt("learned")
    cache = KVCache()
    with ta.no_grad():
        model(np.zeros((1, 12), np.int64), cache)
        with pytest.raises(ValueError, match="13 tokens exceeds the context of 12"):
            model(np.zeros((1, 1), np.int64), cache)


@pytest.mark.parametrize("context", [0, -1, 2.0, "a", True])
def test_a_cache_context_that_is_not_a_count_is_refused_when_made(context):
    # It failed at the first forward, in numpy or in a comparison.
    with pytest.raises(ValueError, match=rf"^KVCache: context must be a whole number >= 1, "
                                         rf"got {re.escape(repr(context))}$"):
        KVCache(context)


@pytest.mark.parametrize("grad", [False, True])
def test_a_cache_given_more_tokens_than_its_context_says_so(grad):
    # A numpy broadcast error, before, once the buffer could not grow.
    model = tiny_gpt("learned")
    with ta.set_grad_enabled(grad), pytest.raises(
            ValueError, match=r"^KVCache: 3 tokens do not fit a cache of context 2; make it "
                              r"KVCache\(model.context\), or None to grow$"):
        model(np.zeros((1, 3), np.int64), KVCache(2))


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("rows", [(1, 2), (2, 1)])
def test_a_cache_given_another_batch_than_it_holds_says_so(grad, rows):
    # numpy's broadcast error before, or concat's, or a reshape's far from the cache.
    model = tiny_gpt("learned")
    cache = KVCache()
    with ta.set_grad_enabled(grad):
        model(np.zeros((rows[0], 3), np.int64), cache)
        with pytest.raises(ValueError, match=rf"^KVCache: this step has {rows[1]} sequences, "
                                             rf"the cache holds {rows[0]}; "):
            model(np.zeros((rows[1], 1), np.int64), cache)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_generation_with_the_cache_equals_generation_without(positions):
    model = tiny_gpt(positions)
    prompt = np.random.default_rng(1).integers(0, 11, (2, 5))
    for settings in (dict(temperature=0), dict(temperature=1.0, top_k=5)):
        # 20 new tokens: past the context of 12, so the window slides too
        with_cache = model.generate(prompt, 20, generator=np.random.default_rng(3), **settings)
        without = model.generate(prompt, 20, generator=np.random.default_rng(3),
                                 use_cache=False, **settings)
        np.testing.assert_array_equal(with_cache, without)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "rope"])
def test_the_decoder_cache_fed_tokens_one_or_more_at_a_time_equals_recomputing(positions):
    from tinyformer.transformer import Transformer

    ta.manual_seed(0)
    model = Transformer(9, 9, context=10, n_layer=2, n_head=2, d_model=16, positions=positions)
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 9, (3, 7)), rng.integers(1, 9, (3, 8))
    with ta.no_grad():
        memory, src_mask = model.encode(src)
        full = model.decode(tgt, memory, src_mask).data
        cache = KVCache()
        steps = [model.decode(tgt[:, t:t + 1], memory, src_mask, cache).data for t in range(8)]
        cache = KVCache()                   # several tokens at a time: a forced prefix, say
        chunks = [model.decode(tgt[:, a:b], memory, src_mask, cache).data
                  for a, b in [(0, 3), (3, 5), (5, 8)]]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), full, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.greedy_decode(src, 9, bos_id=1),
                                  model.greedy_decode(src, 9, bos_id=1, use_cache=False))


def test_under_recording_the_cache_concatenates_so_gradients_reach_earlier_steps():
    # Without recording, extend writes into growing buffers; with it, it must keep the graph.
    model = tiny_gpt("learned")
    idx = np.random.default_rng(0).integers(0, 11, (2, 5))
    model(idx)[:, -1].sum().backward()
    full = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    cache = KVCache()
    model(idx[:, :4], cache)
    model(idx[:, 4:], cache)[:, -1].sum().backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, full[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_a_cache_that_switches_between_recording_and_not_still_equals_recomputing():
    # Steps with and without a graph in one cache: a recorded step's keys are not in the
    # buffers of the unrecorded ones, so the next unrecorded step must not reuse those.
    model = tiny_gpt("learned")
    idx = np.random.default_rng(0).integers(0, 11, (2, 8))
    with ta.no_grad():
        full = model(idx).data                                   # (2, 8, 11)
    cache = KVCache()
    with ta.no_grad():
        pieces = [model(idx[:, :3], cache).data]                 # into the buffers
    pieces.append(model(idx[:, 3:5], cache).data)               # recorded: concatenated
    with ta.no_grad():
        pieces += [model(idx[:, t:t + 1], cache).data for t in range(5, 8)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-5, atol=1e-6)


def test_selecting_rows_keeps_the_caches_dtype():
    # A float64 model (gradcheck's, the tests') beam-searched: its cache must stay float64,
    # as extend keeps it, or the kept keys lose their precision at every selection.
    cache, layer = KVCache(), object()
    k = ta.Tensor(np.full((2, 1, 3, 1), 1 + 1e-12), dtype=np.float64)
    cache.extend(layer, k, 2 * k)
    cache.length += 3                   # as the model advances it
    cache.select(np.array([1, 0, 0]))
    keys, values = cache.extend(layer, ta.Tensor(np.zeros((3, 1, 1, 1)), dtype=np.float64),
                                ta.Tensor(np.zeros((3, 1, 1, 1)), dtype=np.float64))
    assert keys.dtype == values.dtype == np.float64
    np.testing.assert_array_equal(keys.data[:, 0, :3, 0], 1 + 1e-12)


def test_selecting_rows_of_recorded_keys_keeps_those_rows_in_order():
    # Keys and values kept under recording (concatenated, not in buffers) follow a selection
    # as the buffered ones do: the rows asked for, in that order, repeats included.
    cache, layer = KVCache(), object()
    k = ta.Tensor(np.arange(6, dtype=np.float32).reshape(2, 1, 3, 1), requires_grad=True)
    cache.extend(layer, k, k * 10)
    cache.length += 3                   # as the model advances it
    cache.select(np.array([1, 1, 0]))
    step = ta.Tensor(np.full((3, 1, 1, 1), -1.0, dtype=np.float32), requires_grad=True)
    keys, values = cache.extend(layer, step, step)
    np.testing.assert_array_equal(keys.data[:, 0, :, 0], [[3, 4, 5, -1], [3, 4, 5, -1],
                                                          [0, 1, 2, -1]])
    np.testing.assert_array_equal(values.data[:, 0, :3, 0], 10 * keys.data[:, 0, :3, 0])


def test_selecting_rows_keeps_the_buffers_capacity_so_the_next_step_writes_into_it():
    # Beam search selects rows at every step. The kept rows go into buffers as long as the
    # old ones, into which the next step writes its keys and values; buffers dropped instead
    # would be grown by that step, copying every key and value a second time.
    cache, layer = KVCache(), object()
    k = ta.Tensor(np.zeros((2, 1, 3, 1)))
    before, _ = cache.extend(layer, k, k)
    cache.length += 3                   # as the model advances it
    cache.select(np.array([1, 0, 0]))
    step = ta.Tensor(np.ones((3, 1, 1, 1)))
    after, _ = cache.extend(layer, step, step)
    assert after.shape == (3, 1, 4, 1)
    assert after.data.base.shape[2] == before.data.base.shape[2]     # views of the buffers


# A step cut short: Ctrl-C, or an error part way through the model. It stored the new tokens'
# keys in the layers it ran, and the cache's `length` had not advanced: running it again
# appended them a second time in those layers, and every later logit was wrong, without a word.

class Interrupted(Exception):
    pass


def interrupt(_module, _args, _output=None):
    raise Interrupted


def gpt_and_start():
    """A three-layer GPT, and a way to start a session of it at its second step."""
    ta.manual_seed(0)
    model = GPT(vocab_size=11, context=12, n_layer=3, n_head=2, d_model=16).eval()

    def start():
        session = model.start_decoding(np.array([[1, 2, 3], [4, 5, 6]]))
        session.next_logits()
        session.append(np.array([7, 8]))
        return session
    return model, start


def transformer_and_start():
    """A three-layer encoder-decoder, and a way to start a session of it at its second step."""
    from tinyformer.transformer import Transformer

    ta.manual_seed(0)
    model = Transformer(9, 9, context=10, n_layer=3, n_head=2, d_model=16).eval()

    def start():
        session = model.start_decoding(np.array([[3, 4, 5], [6, 7, 8]]), bos_id=1)
        session.next_logits()
        session.append(np.array([2, 3]))
        return session
    return model, start


@pytest.mark.parametrize("make", [gpt_and_start, transformer_and_start])
@pytest.mark.parametrize("where", ["middle layer", "head"])
def test_a_step_cut_short_leaves_the_session_as_it_was(make, where):
    model, start = make()
    fresh = start()
    want = fresh.next_logits()
    session = start()
    if where == "middle layer":         # after the first two layers stored the new keys
        handle = model.decoder.layers[1].ffn.register_forward_hook(interrupt)
        with pytest.raises(Interrupted):
            session.next_logits()
        handle.remove()
    else:                               # after every layer did, and the cache counted them
        model.logits = lambda x: interrupt(None, None)
        with pytest.raises(Interrupted):
            session.next_logits()
        del model.logits
    assert session.cache.length == fresh.cache.length - 1       # the step did not happen
    np.testing.assert_array_equal(session.next_logits(), want)
    for s in (session, fresh):          # and the steps after it are a fresh session's too
        s.append(np.array([4, 5]))
    np.testing.assert_array_equal(session.next_logits(), fresh.next_logits())


@pytest.mark.parametrize("grad", [False, True])
def test_a_model_step_cut_short_in_a_middle_layer_is_overwritten_by_the_next(grad):
    # The model with a cache of one's own: its layers write at `length`, so the first layers'
    # keys of the step cut short are replaced, recorded or not.
    ta.manual_seed(0)
    model = GPT(vocab_size=11, context=12, n_layer=3, n_head=2, d_model=16).eval()
    idx = np.random.default_rng(0).integers(0, 11, (2, 6))
    with ta.no_grad():
        full = model(idx).data                                  # (2, 6, 11)
    cache = KVCache()
    with ta.set_grad_enabled(grad):
        pieces = [model(idx[:, :4], cache).data]
        handle = model.decoder.layers[1].ffn.register_forward_hook(interrupt)
        with pytest.raises(Interrupted):
            model(idx[:, 4:], cache)                            # two tokens, cut short
        handle.remove()
        assert cache.length == 4
        pieces += [model(idx[:, t:t + 1], cache).data for t in (4, 5)]   # one at a time
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-5, atol=1e-6)


def test_a_layer_that_missed_earlier_steps_is_refused():
    # It would attend to the unwritten part of a buffer as to keys.
    from tinyformer.attention import MultiHeadAttention
    cache = KVCache()
    x = ta.Tensor(np.ones((1, 3, 8)))
    MultiHeadAttention(8, 2)(x, mask=causal_mask(3), cache=cache)
    cache.length = 3
    with pytest.raises(ValueError, match=r"^KVCache: this layer holds the keys of 0 tokens, "
                                         r"the cache counts 3; "):
        MultiHeadAttention(8, 2)(x[:, :1], cache=cache)


def test_a_layer_run_again_without_advancing_the_cache_is_refused_not_overwritten():
    # Run alone, a layer has its caller advance `length`. Forgotten, the next step would write
    # over the last one's keys and attend to its own token alone: wrong logits without a word.
    from tinyformer.attention import MultiHeadAttention
    ta.manual_seed(0)
    attn, cache = MultiHeadAttention(8, 2), KVCache()
    x = ta.Tensor(np.random.default_rng(0).standard_normal((1, 4, 8)))
    attn(x[:, :3], mask=causal_mask(3), cache=cache)
    with pytest.raises(ValueError, match=r"^KVCache: this layer holds the keys of 3 tokens, the "
                                         r"cache counts 0; after each step of a layer run alone, "
                                         r"advance cache.length by the step's tokens"):
        attn(x[:, 3:], cache=cache)
    cache.length = 3                     # as the advice says: then the step is the whole one's
    with ta.no_grad():
        whole = attn(x, mask=causal_mask(4)).data[:, 3]
        np.testing.assert_allclose(attn(x[:, 3:], cache=cache).data[:, 0], whole, rtol=1e-5,
                                   atol=1e-6)


def test_a_one_token_step_run_again_without_advancing_the_cache_is_refused():
    # Generation's steps are one token each: a layer holding one token more than the cache
    # counts is the case to catch, not only a step of several
    from tinyformer.attention import MultiHeadAttention
    attn, cache = MultiHeadAttention(8, 2), KVCache()
    x = ta.Tensor(np.ones((1, 1, 8)))
    attn(x, cache=cache)
    with pytest.raises(ValueError, match=r"^KVCache: this layer holds the keys of 1 token, the "
                                         r"cache counts 0; "):
        attn(x, cache=cache)


@pytest.mark.parametrize("grad", [False, True])
def test_rewind_forgets_the_tokens_after_its_length_in_every_layer(grad):
    ta.manual_seed(0)
    model = GPT(vocab_size=11, context=12, n_layer=2, n_head=2, d_model=16).eval()
    idx = np.random.default_rng(1).integers(0, 11, (2, 6))
    cache = KVCache()
    with ta.set_grad_enabled(grad):
        model(idx[:, :4], cache)
        model(idx[:, 4:], cache)                      # a step to be taken back
        cache.rewind(4)
        assert cache.length == 4
        again = model(idx[:, 4:], cache).data         # the same step, stored once
        fresh = KVCache()
        model(idx[:, :4], fresh)
        np.testing.assert_array_equal(model(idx[:, 4:], fresh).data, again)


@pytest.mark.parametrize("length, problem", [
    (-1, "length must be a whole number >= 0, got -1"),        # sliced from the end
    (2.0, "length must be a whole number >= 0, got 2.0"),
    (5, "length 5 is past the 4 tokens the cache counts")])
def test_rewind_refuses_a_length_the_cache_does_not_count(length, problem):
    # -1 kept every layer's keys but its last token's and set length -1: the next step wrote
    # at -1, into the keys of the tokens before it.
    model = GPT(vocab_size=11, context=12, n_layer=1, n_head=2, d_model=16).eval()
    cache = KVCache()
    model(np.zeros((1, 4), dtype=np.int64), cache)
    with pytest.raises(ValueError, match=f"^KVCache.rewind: {re.escape(problem)}"):
        cache.rewind(length)
    assert cache.length == 4 and model(np.zeros((1, 1), dtype=np.int64), cache).shape[1] == 1


# The encoder-decoder's cross-attention: its keys and values are the encoder output's, computed
# at the first step and kept in the cache.

def padded_transformer():
    from tinyformer.transformer import Transformer

    ta.manual_seed(0)
    model = Transformer(9, 9, context=10, n_layer=2, n_head=2, d_model=16, pad_id=0).eval()
    for p in model.parameters():        # larger than initialisation's: more varied tokens
        if p.ndim == 2:
            p.data = 4 * p.data
    src = np.array([[3, 4, 5, 6, 7, 8], [8, 7, 6, 0, 0, 0], [5, 3, 0, 0, 0, 0]])
    return model, src                   # the last two sources end in padding


class RecomputingCache(KVCache):
    """The cache as it was before it kept cross-attention's keys and values: projected from
    the encoder's output again at every step."""

    def cross(self, layer, context, project):
        return project(context)


def decoded(mode, cache_type):
    """What `mode` writes with a `cache_type` cache, and the logits of each of its steps."""
    from tinyformer.decoding import beam_search, generate

    model, src = padded_transformer()
    session = model.start_decoding(src[1:2] if mode == "beam" else src, bos_id=1)
    session.cache = cache_type(model.context)
    steps, next_logits = [], session.next_logits
    session.next_logits = lambda: steps.append(next_logits()) or steps[-1]
    if mode == "beam":
        written = beam_search(session, beam_size=4, max_len=8, length_penalty=0.0).tokens
    elif mode == "reordered":           # rows of different sources swapped halfway
        generate(session, 4, temperature=0)
        session.select(np.array([2, 0, 1]))
        written = generate(session, 4, temperature=0)
    else:
        written = generate(session, 8, temperature=0 if mode == "greedy" else 1.0, top_k=5,
                           generator=np.random.default_rng(2))
    return written, steps


@pytest.mark.parametrize("mode", ["greedy", "sampling", "beam", "reordered"])
def test_keeping_the_cross_attention_keys_changes_no_logit_of_any_step(mode):
    # The same projections of the same memory, computed once instead of at every step, in a
    # batch with padded sources, in a beam search that copies and reorders the rows of the
    # cache at every step, and in a batch whose rows are reordered (the kept keys must follow
    # their sources). Where the rows stay where they were projected, the numbers are the same
    # bit for bit. Where they move, the recomputed projection multiplies them in another batch
    # or at other places in it, and some processors' BLAS rounds a row by where it sits
    # (OpenBLAS's AVX2 kernels: 2.4e-6 apart): to float32's rounding there, while keys that
    # stayed behind when their rows were reordered move a logit by 6.6.
    kept, recomputed = decoded(mode, KVCache), decoded(mode, RecomputingCache)
    np.testing.assert_array_equal(kept[0], recomputed[0])
    assert len(kept[1]) == len(recomputed[1]) == 8
    rows_moved = mode in ("beam", "reordered")
    for step, (a, b) in enumerate(zip(kept[1], recomputed[1])):
        if rows_moved:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"step {step}")
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"step {step}")


@pytest.mark.parametrize("mode", ["greedy", "beam"])
def test_the_memory_is_projected_to_keys_once_per_sequence_not_at_every_step(mode,
                                                                             monkeypatch):
    from tinyformer.decoding import beam_search, generate

    model, src = padded_transformer()
    calls = []
    for i, layer in enumerate(model.decoder.layers):
        project = layer.cross_attn.k.forward
        monkeypatch.setattr(layer.cross_attn.k, "forward",
                            lambda x, i=i, project=project: calls.append(i) or project(x))
    for use_cache, expected in ((False, 8), (True, 1)):    # without: the count is seen
        calls.clear()
        session = model.start_decoding(src[:1] if mode == "beam" else src, 1, use_cache)
        if mode == "beam":
            beam_search(session, beam_size=4, max_len=8, eos_id=None)
        else:
            generate(session, 8, temperature=0)
        assert calls == [0, 1] * expected, f"use_cache={use_cache}"


def test_a_beam_search_hands_the_cache_back_its_own_memory_which_needs_no_comparing(
        monkeypatch):
    # Each step's select moved the memory's rows twice (the session's copy and the cache's) and
    # every layer then compared the two whole arrays to find them equal.
    from tinyformer import attention
    from tinyformer.decoding import beam_search

    model, src = padded_transformer()
    compared = []
    monkeypatch.setattr(attention.np, "array_equal", lambda *a: compared.append(1) or True)
    beam_search(model.start_decoding(src[:1], 1), beam_size=4, max_len=8, eos_id=None)
    assert compared == []


def test_a_cache_refuses_another_memory_than_the_one_it_decodes():
    # Its cross-attention keys are the first memory's: the second would read them silently.
    model, src = padded_transformer()
    cache, tgt = KVCache(), np.ones((3, 1), np.int64)
    with ta.no_grad():
        memory, src_mask = model.encode(src)
        model.decode(tgt, memory, src_mask, cache)
        model.decode(tgt, memory, src_mask, cache)                 # the same memory: fine
        other, other_mask = model.encode(src[::-1])
        with pytest.raises(ValueError, match=r"^KVCache: this cache holds the cross-attention "
                                             r"keys of another context \(encoder output\); "
                                             r"decode a new source with a new KVCache$"):
            model.decode(tgt, other, other_mask, cache)
