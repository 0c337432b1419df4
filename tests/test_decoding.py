"""tinyformer.decoding: one set of decoding loops (greedy, sampling, beam search) over one
session interface, for the decoder-only GPT and the encoder-decoder Transformer alike.

- with and without the KV cache, every loop writes the same tokens, for both model kinds,
  and across the sliding window of a GPT that outgrows its context;
- beam search keeps the right rows when it reorders the beams: each hypothesis's log_prob is
  the model's own log-likelihood of those tokens, recomputed from scratch;
- a beam of one is greedy decoding, on a GPT too; a wider beam never finds a worse sequence.
"""

import inspect
import re
from functools import partial
from itertools import product

import numpy as np
import pytest

import tinyautograd as ta
from tinyformer.attention import KVCache
from tinyformer.decoding import (DecoderOnlySession, EncoderDecoderSession, StepCall,
                                 beam_search, generate, step_call)
from tinyformer.gpt import GPT
from tinyformer.schema import BadInput
from tinyformer.transformer import Transformer

BOS, EOS, PAD = 1, 2, 0


def tiny_gpt(context=8, positions="learned"):
    ta.manual_seed(0)
    return GPT(vocab_size=9, context=context, n_layer=2, n_head=2, d_model=16,
               positions=positions).eval()


def tiny_transformer(pad_id=None):
    ta.manual_seed(0)
    return Transformer(9, 9, context=10, n_layer=1, n_head=2, d_model=16, pad_id=pad_id).eval()


def sharpened(model):
    """Larger weights than initialisation's: a random tiny model then writes varied tokens
    (at its initial scale every beam writes nearly the same thing, and a mix-up of beams
    would hide)."""
    for p in model.parameters():
        if p.ndim == 2:
            p.data = 4 * p.data
    return model


def sessions(kind, rows, use_cache):
    rng = np.random.default_rng(1)
    if kind == "gpt":
        return DecoderOnlySession(sharpened(tiny_gpt(context=12)),
                                  rng.integers(0, 9, (rows, 3)), use_cache)
    return EncoderDecoderSession(sharpened(tiny_transformer()), rng.integers(3, 9, (rows, 6)),
                                 BOS, use_cache)


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_cache_changes_nothing_that_is_written(kind, temperature):
    written = [generate(sessions(kind, 3, use_cache), 8, temperature, top_k=5,
                        generator=np.random.default_rng(2))
               for use_cache in (True, False)]
    np.testing.assert_array_equal(*written)


@pytest.mark.parametrize("positions", ["learned", "rope", "sinusoidal"])
def test_a_gpt_outgrowing_its_context_slides_the_window_with_or_without_the_cache(positions):
    model = tiny_gpt(context=6, positions=positions)
    prompt = np.random.default_rng(3).integers(0, 9, (2, 4))
    written = [generate(DecoderOnlySession(model, prompt, use_cache), 10, temperature=0)
               for use_cache in (True, False)]
    assert written[0].shape == (2, 14)
    np.testing.assert_array_equal(*written)



def modern_gpt(context):
    """Qwen3's block (Llama's with QK-norm): rotary positions, RMSNorm, SwiGLU, grouped-query
    attention, no biases, an untied head; and nanochat's soft-capped logits."""
    ta.manual_seed(0)
    return GPT(vocab_size=9, context=context, n_layer=2, n_head=2, d_model=16, positions="rope",
               normalization="rmsnorm", activation="swiglu", n_kv_head=1, qk_norm=True,
               bias=False, tie_weights=False, logit_softcap=5.0).eval()


@pytest.mark.parametrize("build", [tiny_gpt, modern_gpt], ids=["gpt-2 block", "modern block"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_past_its_context_a_gpt_reads_the_newest_tokens(use_cache, build):
    # The window slides over the end of the text: each step's logits are those of the last
    # `context` tokens, whatever came before them; three contexts long, in a batch of two.
    model = sharpened(build(context=6))
    text = np.random.default_rng(4).integers(0, 9, (2, 18))
    session = DecoderOnlySession(model, text[:, :4], use_cache)
    for t in range(4, 18):
        with ta.no_grad():
            expected = model(text[:, max(0, t - 6):t]).data[:, -1]
        np.testing.assert_allclose(session.next_logits(), expected, rtol=1e-5, atol=1e-6)
        session.append(text[:, t])


def test_the_cache_feeds_the_model_the_new_token_alone_until_the_window_slides():
    # With the cache a step runs the model on its new token only, up to a text as long as
    # the context (which still fits the cache); past it every step runs the whole window.
    model = tiny_gpt(context=4)
    fed = []

    class Recording:                    # the model, noting how many tokens each step feeds it
        context = model.context

        def __call__(self, new, cache, **kwargs):
            fed.append(new.shape[1])
            return model(new, cache, **kwargs)

    session = DecoderOnlySession(model, np.zeros((1, 2), dtype=np.int64))
    session.model = Recording()
    generate(session, 4, temperature=0)
    assert fed == [2, 1, 1, 4]          # texts of 2, 3, 4 (the context) and 5 tokens


def log_likelihood(kind, session, tokens, start):
    """log P(tokens[start:] | tokens[:start]) from one run of the model on the whole row."""
    with ta.no_grad():
        if kind == "gpt":
            logits = session.model(tokens[None, :-1])
        else:
            logits = session.model.decode(tokens[None, :-1], session.memory, session.src_mask)
    log_probs = logits.log_softmax().data[0]                    # (T - 1, V), float32
    return float(sum(log_probs[t - 1, tokens[t]] for t in range(start, len(tokens))))


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
@pytest.mark.parametrize("beam_size", [3, 4])
def test_beam_search_scores_the_tokens_it_returns(kind, beam_size):
    session = sessions(kind, 1, use_cache=True)
    fresh = sessions(kind, 1, use_cache=False)
    start = session.tokens.shape[1]
    reorders = []                              # the beams must really be shuffled
    select = session.select
    session.select = lambda rows: (reorders.append(list(rows) != sorted(rows)), select(rows))
    found = beam_search(session, beam_size=beam_size, max_len=7, eos_id=None,
                        length_penalty=0.0)
    assert any(reorders), "no step reordered the beams: the test would prove nothing"
    assert found.log_prob == pytest.approx(log_likelihood(kind, fresh, found.tokens, start),
                                           abs=1e-4)
    assert found.score == pytest.approx(found.log_prob)           # alpha 0: no penalty


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
def test_beam_search_finds_the_same_with_and_without_the_cache(kind):
    # Every step selects rows of the cache (test_beam_search_scores_the_tokens_it_returns
    # checks that they are reordered): the keys and values kept must be those of the beams.
    found = [beam_search(sessions(kind, 1, use_cache), beam_size=6, max_len=8, eos_id=None,
                         length_penalty=0.0)
             for use_cache in (True, False)]
    np.testing.assert_array_equal(found[0].tokens, found[1].tokens)
    assert found[0].score == pytest.approx(found[1].score, abs=1e-5)


# --------------------------------------------------------------------------------------------
# The head computes the logits a step reads, the last position's, and no others


def decoding_model(kind):
    """A model of each kind that writes: GPT-2's block, Llama's (an untied head, soft-capped
    here too), the encoder-decoder's."""
    if kind == "gpt":
        return sharpened(tiny_gpt(context=12))
    if kind == "llama-like gpt":
        ta.manual_seed(0)
        return sharpened(GPT(vocab_size=9, context=12, n_layer=2, n_head=2, d_model=16,
                             positions="rope", normalization="rmsnorm", activation="swiglu",
                             n_kv_head=1, bias=False, tie_weights=False,
                             logit_softcap=5.0).eval())
    return sharpened(tiny_transformer())


def start_decoding(model, use_cache, rows=2):
    rng = np.random.default_rng(1)
    if isinstance(model, Transformer) or isinstance(getattr(model, "model", None), Transformer):
        return EncoderDecoderSession(model, rng.integers(3, 9, (rows, 6)), BOS, use_cache)
    return DecoderOnlySession(model, rng.integers(0, 9, (rows, 5)), use_cache)


def every_way_of_decoding(model, use_cache):
    """Greedy, sampled (seeded) and beam-searched tokens of `model`, and the beam's score."""
    greedy = generate(start_decoding(model, use_cache), 4, temperature=0)
    sampled = generate(start_decoding(model, use_cache), 4, temperature=1.0, top_k=5,
                       generator=np.random.default_rng(2))
    beam = beam_search(start_decoding(model, use_cache, rows=1), beam_size=3, max_len=4,
                       eos_id=None)
    return greedy, sampled, beam


class EveryPosition:
    """`model` as the loops ran it before they asked for the last position's logits: it
    computes the logits of every position, whatever `logits_to_keep` says, and the session
    reads the last row."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):                   # context, config, encode
        return getattr(self.model, name)

    def __call__(self, idx, cache=None, logits_to_keep=0):
        return self.model(idx, cache)

    def decode(self, tgt, memory, src_mask, cache=None, logits_to_keep=0):
        return self.model.decode(tgt, memory, src_mask, cache)


@pytest.mark.parametrize("kind", ["gpt", "llama-like gpt", "transformer"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_every_decoding_step_computes_the_logits_of_the_last_position_only(kind, use_cache,
                                                                           monkeypatch):
    # The first step (a GPT's whole prompt; without the cache, every step) computed the
    # logits of every position, (B, T, vocab), and read the last row: for a 1000-token prompt
    # and GPT-2's vocabulary, 200 MB thrown away.
    model = decoding_model(kind)
    products, head = [], model.logits

    def spy(x):
        logits = head(x)
        products.append(logits.shape)
        return logits
    monkeypatch.setattr(model, "logits", spy)
    every_way_of_decoding(model, use_cache)
    assert products, "the head never ran: the test would prove nothing"
    assert {rows for rows, positions, vocab in products} == {2, 1, 3}   # batch, beams
    assert {positions for rows, positions, vocab in products} == {1}, products


@pytest.mark.parametrize("kind", ["gpt", "llama-like gpt", "transformer"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_the_last_positions_logits_alone_write_what_every_positions_wrote(kind, use_cache):
    model = decoding_model(kind)
    ours = every_way_of_decoding(model, use_cache)
    before = every_way_of_decoding(EveryPosition(model), use_cache)
    for written, expected in zip(ours[:2], before[:2]):
        np.testing.assert_array_equal(written, expected)
    np.testing.assert_array_equal(ours[2].tokens, before[2].tokens)
    assert ours[2].score == pytest.approx(before[2].score, abs=1e-6)


FAVOURED = 0.5 * np.eye(9)[4]          # added to token 4's logit by the models of your own


class ForwardOfYourOwn(GPT):
    """A GPT whose forward is one of your own, as a subclass writes it: without the cache
    and without logits_to_keep."""

    def forward(self, idx):
        return super().forward(idx) + FAVOURED


class ForwardWithTheCache(GPT):
    """One that passes the cache on, as forwards did before logits_to_keep."""

    def forward(self, idx, cache=None):
        return super().forward(idx, cache) + FAVOURED


class DecodeOfYourOwn(Transformer):
    def decode(self, tgt, memory, src_mask):
        return super().decode(tgt, memory, src_mask) + FAVOURED


@pytest.mark.parametrize("own", [ForwardOfYourOwn, ForwardWithTheCache, DecodeOfYourOwn])
@pytest.mark.parametrize("use_cache", [True, False])
def test_a_subclass_whose_forward_takes_no_logits_to_keep_writes_as_its_forward_says(
        own, use_cache):
    # Every step passed the cache and logits_to_keep=1 to the model: a subclass's forward (or
    # decode) written without them failed in generate with a TypeError. Expected: the model
    # it subclasses, with the same weights and its head favouring token 4 too.
    model = decoding_model("transformer" if own is DecodeOfYourOwn else "gpt")
    ta.manual_seed(0)
    ours = own(**model.config).eval()
    ours.load_state_dict(model.state_dict())
    head = model.logits
    model.logits = lambda x: head(x) + FAVOURED
    written, expected = (every_way_of_decoding(m, use_cache) for m in (ours, model))
    for tokens, same in zip(written[:2], expected[:2]):
        np.testing.assert_array_equal(tokens, same)
    np.testing.assert_array_equal(written[2].tokens, expected[2].tokens)
    assert written[2].score == pytest.approx(expected[2].score, abs=1e-5)


KEEP_ONE = {"logits_to_keep": 1}


@pytest.mark.parametrize("method, given, expected", [
    (lambda idx: None, 1, StepCall(False, {})),
    (lambda idx, cache=None: None, 1, StepCall(True, {})),
    # logits_to_keep next after the tokens is no cache: it takes the keyword alone.
    (lambda idx, logits_to_keep=0: None, 1, StepCall(False, KEEP_ONE)),
    (lambda idx, cache=None, *, logits_to_keep=0: None, 1, StepCall(True, KEEP_ONE)),
    (lambda idx, *args, **kwargs: None, 1, StepCall(True, KEEP_ONE)),     # passes all on
    (lambda tgt, memory, src_mask: None, 3, StepCall(False, {})),
])
def test_a_step_gives_a_model_the_cache_and_logits_to_keep_where_its_signature_takes_them(
        method, given, expected):
    assert step_call(method, given) == expected


def test_a_step_gives_the_models_own_methods_the_cache_and_logits_to_keep():
    assert step_call(tiny_gpt().forward, 1) == step_call(tiny_transformer().decode, 3) == \
        StepCall(True, KEEP_ONE)


def test_logits_to_keep_gives_the_last_positions_logits_and_refuses_what_is_no_count():
    gpt, seq2seq = tiny_gpt(), tiny_transformer()
    idx = np.random.default_rng(5).integers(0, 9, (2, 6))
    with ta.no_grad():
        for n in (1, 3):
            np.testing.assert_allclose(gpt(idx, logits_to_keep=n).data, gpt(idx).data[:, -n:],
                                       rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(seq2seq(idx, idx, logits_to_keep=n).data,
                                       seq2seq(idx, idx).data[:, -n:], rtol=1e-6, atol=1e-6)
        assert gpt(idx, logits_to_keep=0).shape == (2, 6, 9)          # 0: every position
        for model, run in ((gpt, lambda n: gpt(idx, logits_to_keep=n)),
                           (seq2seq, lambda n: seq2seq(idx, idx, logits_to_keep=n))):
            for bad in (-1, 1.0, True):
                with pytest.raises(ValueError, match=rf"^{type(model).__name__}: "
                                                     rf"logits_to_keep must be a whole number "
                                                     rf">= 0, got {bad!r}$"):
                    run(bad)


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
def test_the_caches_buffers_never_hold_more_positions_than_the_model_reads(kind, monkeypatch):
    # They grow by doubling: a prompt just past half the context would get room for nearly
    # twice the context, which no step can ever fill.
    capacities, extend = [], KVCache.extend

    def recording(self, layer, k, v):
        keys, values = extend(self, layer, k, v)
        capacities.append(keys.data.base.shape[2])              # views of the buffers
        return keys, values
    monkeypatch.setattr(KVCache, "extend", recording)
    session = sessions(kind, 2, use_cache=True)
    generate(session, session.model.context - session.tokens.shape[1], temperature=0)
    assert max(capacities) == session.model.context


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
def test_a_beam_of_one_is_greedy_and_a_wider_beam_is_never_worse(kind):
    greedy = generate(sessions(kind, 1, True), 6, temperature=0)[0]
    one = beam_search(sessions(kind, 1, True), beam_size=1, max_len=6, eos_id=None,
                      length_penalty=0.0)
    np.testing.assert_array_equal(one.tokens, greedy)
    wide = beam_search(sessions(kind, 1, True), beam_size=5, max_len=6, eos_id=None,
                       length_penalty=0.0)
    assert wide.log_prob >= one.log_prob - 1e-6


@pytest.fixture
def one_torch_thread():
    """torch on one thread: on a tiny model its threads only wait on each other (a beam search
    of transformers' took 0.2 s instead of 0.05 on two busy cores)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_beam_search_is_transformers_num_beams_but_for_the_length_penalty(tmp_path,
                                                                          one_torch_thread):
    # transformers ranks a finished text by log P / |Y|^length_penalty, here by GNMT's
    # log P / ((5 + |Y|) / 6)^alpha. With no penalty (0 in both) the search must find what
    # transformers' finds with its defaults, token for token; with transformers' own formula
    # put in place of GNMT's, what it finds with early_stopping="never" (the exact stop, as
    # here: its default stops on an estimate, exact only without a penalty).
    import torch
    import transformers
    import tinyformer.decoding as decoding
    penalties = {0.0: (decoding.gnmt_length_penalty, False),
                 1.0: (lambda length, alpha: length ** alpha, "never")}
    prompt, eos, ended, differs = np.array([[1, 2, 3]]), 0, 0, 0
    for seed in (3, 31):                       # texts ended at different steps
        model, rng = tiny_gpt(context=16), np.random.default_rng(seed)
        for p in model.parameters():           # sharp enough to write varied texts
            if p.ndim == 2:
                p.data = rng.normal(0, 0.5, p.shape).astype(p.dtype)
        model.save_pretrained(tmp_path / str(seed))
        theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / str(seed),
                                                              dtype=torch.float64)
        greedy = generate(model.start_decoding(prompt), 8, temperature=0)[0]
        for (alpha, (penalty, early_stopping)), beams in product(penalties.items(), (2, 3)):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(decoding, "gnmt_length_penalty", penalty)
                ours = beam_search(model.start_decoding(prompt), beams, max_len=8, eos_id=eos,
                                   length_penalty=alpha)
            found = theirs.generate(torch.tensor(prompt), num_beams=beams, max_new_tokens=8,
                                    do_sample=False, eos_token_id=eos, pad_token_id=eos,
                                    length_penalty=alpha, early_stopping=early_stopping,
                                    output_scores=True, return_dict_in_generate=True)
            tokens = found.sequences[0].numpy()
            written = list(tokens[3:])
            tokens = tokens[:3 + written.index(eos) + 1] if eos in written else tokens
            np.testing.assert_array_equal(ours.tokens, tokens, err_msg=f"{seed} {alpha} {beams}")
            assert ours.score == pytest.approx(found.sequences_scores[0].item(), abs=1e-5)
            ended += ours.tokens[-1] == eos
            differs += not np.array_equal(ours.tokens[:len(greedy)], greedy[:len(ours.tokens)])
    assert ended and differs, "no text ended, or all were greedy's: this would prove nothing"


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
def test_selecting_rows_gives_the_logits_a_session_of_those_rows_would(kind):
    # Rows of different sources (padded differently): the encoding and its padding mask must
    # follow the selected rows, as the tokens and the cache do.
    rows = np.array([1, 1, 0])
    if kind == "gpt":
        model, start = tiny_gpt(), np.array([[3, 4, 5], [6, 7, 8]])
        def session(prompt, use_cache=True):
            return DecoderOnlySession(model, prompt, use_cache)
    else:
        model, start = tiny_transformer(pad_id=PAD), np.array([[3, 4, 5, 6], [7, 8, PAD, PAD]])
        def session(src, use_cache=True):
            return EncoderDecoderSession(model, src, BOS, use_cache)
    written = np.array([[4, 5], [6, 7]])                       # (B, 2) tokens
    with ta.no_grad():
        selected = session(start)
        selected.next_logits()
        selected.append(written[:, 0])
        selected.next_logits()
        selected.select(rows)
        selected.append(written[rows, 1])
        fresh = session(start[rows], use_cache=False)
        fresh.append(written[rows, 0])
        fresh.append(written[rows, 1])
        np.testing.assert_allclose(selected.next_logits(), fresh.next_logits(), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_logits_asked_for_again_before_a_token_is_appended_are_the_same(kind, use_cache):
    # A loop of one's own may read a step's logits twice (to log them, then to pick). With the
    # cache, the second call found every token's keys in the cache, ran the model on no new
    # token and failed ("at least one token a row"), where without the cache it gave them.
    session = sessions(kind, rows=2, use_cache=use_cache)
    first = session.next_logits()
    expected = first.copy()
    first[:, 0] = -np.inf                   # the caller rules a token out in what it got
    np.testing.assert_array_equal(session.next_logits(), expected)
    session.select(np.array([1, 1, 0]))     # the rows chosen, as beam search chooses them
    np.testing.assert_array_equal(session.next_logits(), expected[[1, 1, 0]])
    session.append(np.array([3, 4, 5]))     # and after a token, the next step's, as always
    fresh = sessions(kind, rows=2, use_cache=False)
    fresh.select(np.array([1, 1, 0]))
    fresh.append(np.array([3, 4, 5]))
    np.testing.assert_allclose(session.next_logits(), fresh.next_logits(), rtol=1e-5,
                               atol=1e-6)


def test_the_cache_keeps_the_selected_rows_in_order():
    cache = KVCache()
    layer = object()
    k = ta.Tensor(np.arange(2 * 1 * 3 * 1, dtype=np.float32).reshape(2, 1, 3, 1))
    cache.extend(layer, k, k * 10)
    cache.length += 3                   # as the model advances it
    cache.select(np.array([1, 1, 0]))
    keys, values = cache.extend(layer, ta.Tensor(np.full((3, 1, 1, 1), -1.0)),
                                ta.Tensor(np.full((3, 1, 1, 1), -1.0)))
    assert keys.shape == (3, 1, 4, 1)
    np.testing.assert_array_equal(keys.data[:, 0, :, 0], [[3, 4, 5, -1], [3, 4, 5, -1],
                                                          [0, 1, 2, -1]])
    np.testing.assert_array_equal(values.data[:, 0, :3, 0], 10 * keys.data[:, 0, :3, 0])


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
def test_every_way_of_decoding_runs_without_dropout_and_leaves_each_modules_mode(kind):
    # Only GPT.generate once switched to eval: beam search (and greedy_decode: the sessions are
    # what every loop runs the model through) on a model left in training mode dropped
    # activations, a different result at every call.
    ta.manual_seed(0)
    if kind == "gpt":
        model = GPT(vocab_size=9, context=12, n_layer=2, n_head=2, d_model=16, dropout=0.5)
        start = (np.array([[3, 4, 5]]),)                     # model.start_decoding(*start)
    else:
        model = Transformer(9, 9, context=10, n_layer=1, n_head=2, d_model=16, dropout=0.5)
        start = (np.array([[3, 4, 5, 6]]), BOS)
    sharpened(model)
    model.eval()
    expected = beam_search(model.start_decoding(*start), beam_size=3, max_len=6, eos_id=EOS)
    model.train()
    model.decoder.layers[0].eval()                  # a module in a mode of its own keeps it
    for _ in range(3):
        found = beam_search(model.start_decoding(*start), beam_size=3, max_len=6, eos_id=EOS)
        np.testing.assert_array_equal(found.tokens, expected.tokens)
        assert found.score == expected.score
    if kind == "gpt":
        model.generate(np.array([[3, 4, 5]]), 2)    # once left every module in the model's mode
    modes = {name: module.training for name, module in model.named_modules()}
    assert not modes["decoder.layers.0"] and not modes["decoder.layers.0.ffn"]
    assert all(mode for name, mode in modes.items() if not name.startswith("decoder.layers.0"))


def test_finished_rows_can_be_padded_and_the_loop_stops_when_all_are_done():
    class Scripted:
        """A session whose rows write these tokens, one a step, whatever came before."""
        script = [[3, EOS, 7, 7], [EOS, 7, 7, 7]]
        tokens = np.zeros((2, 1), dtype=np.int64)
        room = None                                     # as many steps as asked for

        def next_logits(self):
            step = self.tokens.shape[1] - 1
            logits = np.zeros((2, 9))
            logits[[0, 1], [self.script[0][step], self.script[1][step]]] = 10.0
            return logits

        def append(self, tokens):
            self.tokens = np.concatenate([self.tokens, tokens[:, None]], axis=1)

    out = generate(Scripted(), 10, temperature=0, eos_id=EOS, fill_after_eos=PAD)
    # row 1 ends at once and is padded after; the loop stops when row 0 ends too
    np.testing.assert_array_equal(out, [[0, 3, EOS], [0, EOS, PAD]])


def test_an_encoder_decoder_target_holding_the_pad_id_gives_one_set_of_logits():
    # Targets are padded on the right, so the causal mask alone keeps padding from every real
    # position; a pad_id inside a target (a model may write it) is then a token like any other:
    # one run over the whole target, the cache and no cache see the same thing.
    model = sharpened(tiny_transformer(pad_id=PAD))
    src = np.array([[3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3]])
    tgt = np.array([[BOS, PAD, 5, PAD, 4], [BOS, 3, PAD, PAD, 6]])
    with ta.no_grad():
        whole = model(src, tgt).data                                     # (2, 5, V)
    cached, uncached = (EncoderDecoderSession(model, src, BOS, use_cache)
                        for use_cache in (True, False))
    for t in range(tgt.shape[1]):
        for session in (cached, uncached):
            np.testing.assert_allclose(session.next_logits(), whole[:, t], rtol=1e-5,
                                       atol=1e-5)
            if t + 1 < tgt.shape[1]:
                session.append(tgt[:, t + 1])
    # The decoding loops agree too, on a model that writes the pad_id itself.
    written = [model.greedy_decode(src, 8, bos_id=BOS, use_cache=use_cache)
               for use_cache in (True, False)]
    assert (written[0][:, 1:] == PAD).any(), "no PAD written: the test would prove nothing"
    np.testing.assert_array_equal(*written)
    for row in range(2):
        one = beam_search(EncoderDecoderSession(model, src[row:row + 1], BOS, use_cache=False),
                          beam_size=1, max_len=8, length_penalty=0.0)
        np.testing.assert_array_equal(one.tokens, written[0][row])


def test_an_encoder_decoder_refuses_to_write_past_its_context_before_any_step():
    # Writing token n reads <bos> and the n - 1 before it, so a context of 10 writes at most 10.
    # Asked for more, the loops once did the work and failed at the 11th step; greedy_decode
    # then refused it, but only once its encoder had run. A caller's bad input (BadInput: the
    # command line's exit 2), not a bug.
    model = tiny_transformer()
    src = np.random.default_rng(1).integers(3, 9, (2, 6))
    steps, encoded = [], []
    encode = model.encode
    model.encode = lambda *args: (encoded.append(1), encode(*args))[1]

    def session():
        made = model.start_decoding(src[:1], BOS)
        next_logits = made.next_logits
        made.next_logits = lambda: (steps.append(1), next_logits())[1]
        return made

    loops = {"greedy_decode: max_len": lambda n: model.greedy_decode(src, n, bos_id=BOS),
             "generate: max_new_tokens": lambda n: generate(session(), n, temperature=0),
             "beam_search: max_len": lambda n: beam_search(session(), max_len=n)}
    for called, write in loops.items():
        with pytest.raises(BadInput, match=f"^{called} 11 does not fit in the model's "
                                           f"context: give at most 10$"):
            write(11)
        assert not steps, f"{called}: a step ran before the refusal"
        if called.startswith("greedy_decode"):          # it makes its session itself
            assert not encoded, "greedy_decode ran the encoder before the refusal"
    assert model.greedy_decode(src, 10, bos_id=BOS).shape == (2, 11)
    assert len(beam_search(session(), beam_size=2, max_len=10).tokens) == 11


def test_the_loops_refuse_a_callers_bad_arguments_as_bad_input():
    # BadInput (a ValueError), as their other checks of what they are given: the command line
    # tells it from a bug by its class (exit 2, not 1). These were plain ValueErrors.
    gpt, seq2seq, prompt = tiny_gpt(), tiny_transformer(), np.array([[3, 4, 5]])
    refusals = {
        "eos_id out of range": lambda: gpt.generate(prompt, 2, eos_id=9),
        "eos_id of no token": lambda: generate(gpt.start_decoding(prompt), 2, eos_id=[]),
        "bos_id out of range": lambda: seq2seq.greedy_decode(prompt, 2, bos_id=-1),
        "bos_id not an id": lambda: seq2seq.start_decoding(prompt, 1.5),
        "eos_id of greedy_decode": lambda: seq2seq.greedy_decode(prompt, 2, BOS, eos_id=9),
        "beam of two sequences": lambda: beam_search(gpt.start_decoding([[3, 4], [5, 6]])),
        "length_penalty NaN": lambda: beam_search(gpt.start_decoding(prompt),
                                                  length_penalty=float("nan")),
        "beam eos_id": lambda: beam_search(gpt.start_decoding(prompt), eos_id=[3, 9]),
    }
    for what, call in refusals.items():
        with pytest.raises(ValueError) as refused:
            call()
        assert isinstance(refused.value, BadInput), f"{what}: {refused.value!r}"


@pytest.mark.parametrize("search", ["generate", "beam_search"])
def test_a_session_that_does_not_know_its_vocabulary_checks_eos_id_at_the_first_step(search):
    # The chapter on generation writes such a session: its logits say how many tokens there
    # are, and an eos_id beyond them would never end anything.
    class Counting:
        tokens = np.zeros((1, 1), dtype=np.int64)
        room = None

        def next_logits(self):
            return np.zeros((1, 9))

        def append(self, tokens):
            self.tokens = np.concatenate([self.tokens, np.asarray(tokens)[:, None]], axis=1)

        def select(self, rows):
            self.tokens = self.tokens[rows]

    session = Counting()
    with pytest.raises(ValueError, match=r"eos_id.*9"):
        if search == "generate":
            generate(session, 3, temperature=0, eos_id=9)
        else:
            beam_search(session, beam_size=2, max_len=3, eos_id=9)
    assert session.tokens.shape == (1, 1), "a token was written before the refusal"


@pytest.mark.parametrize("search", ["generate", "beam_search"])
@pytest.mark.parametrize("given, named", [("model", "GPT"), ("tokens", "ndarray")])
def test_a_model_or_tokens_given_for_the_session_are_refused_saying_how_to_make_one(
        search, given, named):
    # Both are easy to pass by mistake (beam_search is exported beside the models); they
    # failed deep in the loop, on an attribute that only a session has.
    model, prompt = tiny_gpt(), np.array([[1, 2, 3]])
    loop = {"generate": lambda s: generate(s, 3, temperature=0),
            "beam_search": lambda s: beam_search(s, beam_size=2, max_len=3)}[search]
    with pytest.raises(TypeError, match=rf"^{search} takes a decoding session: "
                                        r"model\.start_decoding\(prompt\) for a GPT, "
                                        r"model\.start_decoding\(src, bos_id\) for a "
                                        rf"Transformer; got a {named} object$"):
        loop({"model": model, "tokens": prompt}[given])
    assert loop(model.start_decoding(prompt)) is not None


@pytest.mark.parametrize("write", [
    lambda model, prompts: model.generate(prompts, 2),
    lambda model, prompts: beam_search(model.start_decoding(prompts), 2, 2),
], ids=["generate", "beam_search"])
def test_prompts_of_different_lengths_are_not_told_to_be_padded(write):
    # The message said "pad the shorter rows", the one thing a GPT must not be given: it
    # has no padding mask and continues the padding as text.
    with pytest.raises(TypeError, match=r"rows of one length; a GPT has no padding mask .*"
                                        r"each length in a call of their own$") as error:
        write(tiny_gpt(), [[3, 4, 5], [6]])
    assert "pad the" not in str(error.value)


@pytest.mark.parametrize("write", [GPT.generate, generate])
def test_help_on_generate_names_every_setting(write):
    # top_k and top_p were in the signature only: help() never said what they keep.
    unnamed = [name for name in inspect.signature(write).parameters
               if name not in ("self", "idx", "session") and f"`{name}`" not in write.__doc__]
    assert unnamed == []


def poisoned(model):
    """`model` as a training that diverged leaves it in memory: weights of NaN (the CLI
    refuses such a checkpoint; a notebook holds the model itself)."""
    for p in model.parameters():
        p.data.flat[0] = np.nan
    return model


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_every_loop_refuses_the_nan_logits_of_a_model_with_nan_weights(kind, use_cache):
    # argmax reads NaN as the largest logit: greedy decoding and beam search wrote token 0
    # until the end without a word, and sampling failed saying nothing of the model.
    model = poisoned(tiny_gpt() if kind == "gpt" else tiny_transformer())
    prompt = np.random.default_rng(1).integers(3, 9, (2, 3))

    def session(rows=2):
        if kind == "gpt":
            return model.start_decoding(prompt[:rows], use_cache)
        return model.start_decoding(prompt[:rows], BOS, use_cache)

    writes = [("generate", partial(generate, session(), 4, **settings))
              for settings in (dict(temperature=0), dict(temperature=0.8), dict(top_k=3),
                               dict(top_p=0.5))]
    writes.append(("beam_search", partial(beam_search, session(rows=1), beam_size=2, max_len=4)))
    if kind == "gpt":
        writes.append(("generate", partial(model.generate, prompt, 4, temperature=0,
                                           use_cache=use_cache)))
    else:
        # It writes through generate, but is what its caller called: named so, not generate.
        writes.append(("greedy_decode", partial(model.greedy_decode, prompt, 4, BOS,
                                                use_cache=use_cache)))
    for loop, write in writes:
        with pytest.raises(ValueError, match=rf"^{loop}: the model's logits hold NaN at step 1 "
                                             rf"\(row 0\), .*not finite; .*"
                                             rf"detect_anomaly\(\).*lower learning rate"):
            write()


class Turning:
    """A session whose rows' logits are fine (a -inf among them is a token ruled out, as a mask
    would) until the step that writes token `bad_step`, where its last row's are `bad_row`."""
    room = None

    def __init__(self, rows, bad_step, bad_row):
        self.tokens = np.zeros((rows, 1), dtype=np.int64)
        self.bad_step, self.bad_row = bad_step, bad_row

    def next_logits(self):
        logits = np.tile([0.0, 2.0, -np.inf, 1.0], (len(self.tokens), 1))
        if self.tokens.shape[1] == self.bad_step:
            logits[-1] = self.bad_row
        return logits

    def append(self, tokens):
        self.tokens = np.concatenate([self.tokens, np.asarray(tokens)[:, None]], axis=1)

    def select(self, rows):
        self.tokens = self.tokens[rows]


@pytest.mark.parametrize("bad_row, what", [([0.0, np.nan, 1.0, 2.0], "hold NaN"),
                                           ([0.0, np.inf, 1.0, 2.0], r"hold \+inf"),
                                           ([-np.inf] * 4, "are -inf for every token")])
def test_logits_that_leave_no_token_to_pick_are_refused_at_their_step(bad_row, what):
    # +inf ties with nothing and a row of -inf has nothing to pick; -inf among other
    # logits is a token ruled out, and the steps before are written as ever.
    for settings in (dict(temperature=0), dict(temperature=1.0, top_k=2)):
        with pytest.raises(ValueError, match=rf"^generate: the model's logits {what} at step "
                                             rf"3 \(row 1\), so there is no token to pick"):
            generate(Turning(2, 3, bad_row), 5, generator=np.random.default_rng(0), **settings)
    np.testing.assert_array_equal(generate(Turning(2, 9, bad_row), 2, temperature=0),
                                  [[0, 1, 1], [0, 1, 1]])
    # Beam search's one row is two beams at step 2.
    with pytest.raises(ValueError, match=rf"^beam_search: the model's logits {what} at step 2 "
                                         rf"\(row 1\)"):
        beam_search(Turning(1, 2, bad_row), beam_size=2, max_len=3)
    assert beam_search(Turning(1, 9, bad_row), beam_size=2, max_len=3).tokens.tolist() == [
        0, 1, 1, 1]


@pytest.mark.parametrize("tokens", [3, [[3], [4]], [3], [3, 4, 5], [3.0, 2.0], [9, 2], [-1, 2],
                                    [True, False]])
@pytest.mark.parametrize("kind", ["gpt", "transformer"])
def test_appending_what_is_not_a_token_per_sequence_is_refused_and_changes_nothing(kind, tokens):
    # A session driven by hand: numpy's errors before, or the tokens appended (a float made
    # every token a float, an id outside the vocabulary failed every later step).
    if kind == "gpt":
        session = tiny_gpt().start_decoding(np.array([[3, 4], [5, 6]]))
    else:
        session = tiny_transformer().start_decoding(np.array([[3, 4], [5, 6]]), BOS)
    before, logits = session.tokens.copy(), session.next_logits()
    with pytest.raises(BadInput, match=r"^append: tokens must be one token id in \[0, 9\) per "
                                       r"sequence, shape \(2,\); got "):
        session.append(tokens)
    np.testing.assert_array_equal(session.tokens, before)
    assert session.tokens.dtype == np.int64
    np.testing.assert_array_equal(session.next_logits(), logits)
    session.append(np.array([7, 8]))                    # ids of its vocabulary, one a row
    assert session.tokens.tolist() == [before[0].tolist() + [7], before[1].tolist() + [8]]


@pytest.mark.parametrize("fill", [9, -1, 1.5, True])
def test_generate_refuses_a_fill_after_eos_that_is_no_token_before_any_step(fill):
    # It went into the rows that had ended: refused by the next step, or returned if it was
    # the last; a float made every token a float.
    session = tiny_gpt().start_decoding(np.array([[3, 4]]))
    with pytest.raises(BadInput, match=rf"^generate: fill_after_eos must be None or a token id "
                                       rf"in \[0, 9\), got {re.escape(repr(fill))}$"):
        generate(session, 3, temperature=0, eos_id=EOS, fill_after_eos=fill)
    assert session.kept is None                         # no step ran


def test_a_session_without_a_vocab_size_has_its_fill_after_eos_checked_by_its_logits():
    # A session of one's own need not say its vocab_size: the first step's logits (4 tokens
    # here) tell it, and the fill is refused before any token is written with it.
    session = Turning(2, bad_step=99, bad_row=None)
    with pytest.raises(BadInput, match=r"^generate: fill_after_eos must be None or a token id "
                                       r"in \[0, 4\), got 4$"):
        generate(session, 3, temperature=0, eos_id=1, fill_after_eos=4)
    assert session.tokens.shape == (2, 1)               # nothing appended


def test_decoding_puts_the_model_itself_in_eval_mode_not_only_its_layers():
    # A model's own forward may read self.training (its own dropout, say): while it writes,
    # the model itself is in eval mode too, as model.eval() would put it; its modes come back.
    seen = []

    class ReadsItsOwnMode(GPT):
        def forward(self, *args, **kwargs):
            seen.append(self.training)
            return super().forward(*args, **kwargs)

    ta.manual_seed(0)
    model = ReadsItsOwnMode(vocab_size=9, context=8, n_layer=1, n_head=2, d_model=16)
    model.train()
    model.generate(np.array([[1, 2]]), 2)
    assert seen and not any(seen)
    assert all(module.training for module in model.modules())
