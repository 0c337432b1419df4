"""What the models accept, checked once for all of them: token arrays (forward and every
decoding loop go through one check), and the sizes and counts they are given, each refused in
one line that says what was wrong."""

import json
import re

import numpy as np
import pytest

import tinyautograd as ta
from tinyformer import BERT, GPT, MultiHeadAttention, Transformer
from tinyformer.decoding import beam_search
from tinyformer.train_config import TrainConfig

BOS, EOS = 1, 2


def tiny_models():
    ta.manual_seed(0)
    return (GPT(11, 8, n_layer=1, n_head=2, d_model=16).eval(),
            BERT(11, 8, n_layer=1, n_head=2, d_model=16).eval(),
            Transformer(11, 11, 8, n_layer=1, n_head=2, d_model=16).eval())


def every_use(tokens):
    """Each way a model takes a batch of tokens, as a call with `tokens` in it."""
    gpt, bert, seq2seq = tiny_models()
    fine = np.array([[3, 4, 5]])
    return {"gpt": lambda: gpt(tokens),
            "gpt.generate": lambda: gpt.generate(tokens, 2),
            "gpt beam_search": lambda: beam_search(gpt.start_decoding(tokens), max_len=2),
            # the session alone, as the encoder-decoder's refuses its src when made
            "gpt start_decoding": lambda: gpt.start_decoding(tokens),
            "bert": lambda: bert(tokens),
            "transformer src": lambda: seq2seq(tokens, fine),
            "transformer tgt": lambda: seq2seq(fine, tokens),
            "greedy_decode": lambda: seq2seq.greedy_decode(tokens, 2, bos_id=BOS),
            "transformer beam_search": lambda: beam_search(seq2seq.start_decoding(tokens, BOS),
                                                           max_len=2)}


@pytest.mark.parametrize("use", every_use(None).keys())
@pytest.mark.parametrize("empty", [np.zeros((1, 0), dtype=np.int64), [[]]],
                         ids=["array", "list"])
def test_an_empty_sequence_is_refused_in_one_line(use, empty):
    # [[]], float64 to numpy, was once called an array of the wrong type
    with pytest.raises(ValueError, match=r"^tokens must hold at least one token a row, got "
                                         r"shape \(1, 0\)$"):
        every_use(empty)[use]()


@pytest.mark.parametrize("use", every_use(None).keys())
@pytest.mark.parametrize("tokens, message", [
    ("abc", "tokens must be token ids, not text; encode it with the tokenizer first"),
    ([["a", "b"]], "tokens must be token ids, not text; encode it with the tokenizer first"),
    ([[1.7, 2.2]], r"tokens must be a \(B, T\) integer array, got float64 of shape \(1, 2\)"),
    ([[1.0, 2.0]], r"tokens must be a \(B, T\) integer array, got float64 of shape \(1, 2\)"),
    ([[True, False]], r"tokens must be a \(B, T\) integer array, got bool of shape \(1, 2\)"),
    ([3, 4], r"tokens must be a \(B, T\) integer array, got int64 of shape \(2,\)"),
    ([[3, 4], [5]], r"tokens must be a \(B, T\) integer array with rows of one length"),
], ids=["text", "letters", "floats", "whole floats", "booleans", "one row", "ragged"])
def test_tokens_that_are_not_a_batch_of_ids_are_refused_alike_everywhere(use, tokens, message):
    # generate once converted its prompt itself: float ids were truncated, text failed in int()
    with pytest.raises(TypeError, match=f"^{message}"):
        every_use(tokens)[use]()


@pytest.mark.parametrize("use", every_use(None).keys())
@pytest.mark.parametrize("outside", [11, -1])
def test_a_token_id_outside_the_vocabulary_is_refused_naming_the_input(use, outside):
    # The embedding's own IndexError ("index 11 is out of range for a table of 11 rows") named
    # neither the input nor, for an encoder-decoder, which of its two vocabularies.
    name = {"transformer src": "src", "greedy_decode": "src", "transformer beam_search": "src",
            "transformer tgt": "tgt"}.get(use, "tokens")
    with pytest.raises(IndexError, match=rf"^{name}: token id {outside} is outside the model's "
                                         rf"vocabulary \(11 ids, 0 to 10\); give ids of the "
                                         rf"model's own tokenizer$"):
        every_use([[3, outside]])[use]()


@pytest.mark.parametrize("tokens, advice", [
    (np.array([3, 4]), r"; pass ids\[None\] for one sequence$"),
    ([3, 4], r"; pass \[ids\] for one sequence$"),
    (np.array([[3.0, 4.0]]), r"; pass ids\.astype\(np\.int64\) for ids held as floats$"),
    (ta.Tensor([[3.0, 4.0]]), r"; pass ids\.astype\(np\.int64\) for ids held as floats$"),
    ([[3.0, 4.0]], r"; pass np\.asarray\(ids, np\.int64\) for ids held as floats$"),
    (np.array([3.0, 4.0]), r"; pass ids\[None\] for one sequence, ids\.astype\(np\.int64\) for "
                           r"ids held as floats$"),
    (np.array([[1.7, 2.2]]), r"of shape \(1, 2\)$"),        # not ids: nothing to advise
    (np.zeros((1, 2, 4)), r"of shape \(1, 2, 4\)$"),
], ids=["1-D array", "1-D list", "float array", "float Tensor", "float list", "1-D floats",
        "fractions", "vectors"])
def test_the_refusal_of_tokens_says_what_to_pass_where_it_is_plain(tokens, advice):
    with pytest.raises(TypeError, match=r"^tokens must be a \(B, T\) integer array, got .*"
                                        + advice):
        tiny_models()[0](tokens)


def test_a_prompt_of_ids_in_any_integer_form_generates_the_same_tokens():
    gpt = tiny_models()[0]
    prompt = np.array([[3, 4, 5]])
    expected = gpt.generate(prompt, 3, temperature=0)
    assert expected.dtype == np.int64
    for same in (prompt.tolist(), prompt.astype(np.uint8), ta.Tensor(prompt)):
        out = gpt.generate(same, 3, temperature=0)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, expected)
    assert gpt.generate(prompt.astype(np.uint8), 0).dtype == np.int64     # writing nothing too
    # A batch of no rows writes no rows (it once failed on reading its first row's length).
    assert gpt.generate(np.zeros((0, 3), dtype=np.int64), 2).shape == (0, 5)


# --------------------------------------------------------------------------------------------
# How many tokens to write


def loops():
    """Each decoding loop, as a call taking its count of tokens to write, and that count's
    name and least value."""
    gpt, _, seq2seq = tiny_models()
    prompt, src = np.array([[3, 4, 5]]), np.array([[3, 4, 5]])
    return {"generate": (lambda n: gpt.generate(prompt, n), "max_new_tokens", 0),
            "greedy_decode": (lambda n: seq2seq.greedy_decode(src, n, bos_id=BOS), "max_len", 0),
            "beam_search": (lambda n: beam_search(gpt.start_decoding(prompt), max_len=n),
                            "max_len", 1)}


@pytest.mark.parametrize("loop", loops().keys())
@pytest.mark.parametrize("count", [-1, 2.5, 2.0, True, "3", None])
def test_a_count_of_tokens_that_is_not_a_whole_number_in_range_is_refused(loop, count):
    # -1 once gave back the prompt, 2.5 a TypeError from range(), 2.0 went through
    write, name, least = loops()[loop]
    with pytest.raises(ValueError, match=f"^{loop}: {name} must be a whole number >= {least}, "
                                         f"got {re.escape(repr(count))}$"):
        write(count)


@pytest.mark.parametrize("loop", loops().keys())
def test_a_count_of_tokens_in_range_writes_that_many(loop):
    write, _, least = loops()[loop]
    for count in (least, np.int64(2)):
        out = write(count)
        written = (out.tokens if loop == "beam_search" else out).shape[-1]
        assert written == (1 if loop == "greedy_decode" else 3) + count    # <bos>, or the prompt


@pytest.mark.parametrize("beam_size", [0, 1.5, 2.0, True])
def test_a_beam_size_that_is_not_a_whole_number_is_refused(beam_size):
    gpt = tiny_models()[0]
    with pytest.raises(ValueError, match=f"^beam_search: beam_size must be a whole number >= 1, "
                                         f"got {beam_size!r}$"):
        beam_search(gpt.start_decoding([[3, 4]]), beam_size=beam_size)


# --------------------------------------------------------------------------------------------
# What ends a sequence


def ending_loops():
    """Each decoding loop, as a call taking its eos_id, and the name it is refused under."""
    gpt, _, seq2seq = tiny_models()
    prompt = np.array([[3, 4, 5]])
    return {"generate": (lambda eos: gpt.generate(prompt, 2, eos_id=eos), "generate"),
            "greedy_decode": (lambda eos: seq2seq.greedy_decode(prompt, 2, BOS, eos),
                              "greedy_decode"),
            "gpt beam_search": (lambda eos: beam_search(gpt.start_decoding(prompt), max_len=2,
                                                        eos_id=eos), "beam_search"),
            "transformer beam_search": (lambda eos: beam_search(
                seq2seq.start_decoding(prompt, BOS), max_len=2, eos_id=eos), "beam_search")}


@pytest.mark.parametrize("loop", ending_loops().keys())
@pytest.mark.parametrize("eos_id", [1.5, -1, 11, True, "2", [3, 11], (3, -1), [3, 2.0],
                                    np.array([3, 11])])
def test_an_eos_id_the_model_cannot_write_is_refused(loop, eos_id):
    # the vocabulary has 11 tokens: these were accepted, and never ended anything
    write, called = ending_loops()[loop]
    with pytest.raises(ValueError, match=rf"^{called}: eos_id must be a token id in \[0, 11\) or "
                                         rf"a list of them, got {re.escape(repr(eos_id))}$"):
        write(eos_id)


@pytest.mark.parametrize("loop", ending_loops().keys())
def test_an_eos_id_list_naming_no_token_is_refused_and_ids_in_any_integer_form_are_taken(loop):
    write, called = ending_loops()[loop]
    with pytest.raises(ValueError, match=f"^{called}: eos_id names no token; give an id, a list "
                                         f"of ids, or None$"):
        write([])
    for eos_id in (np.int64(10), [3, np.int64(10)], np.array([3, 10]), (0, 10)):
        write(eos_id)


@pytest.mark.parametrize("loop", ending_loops().keys())
def test_an_eos_id_is_refused_before_the_model_runs(loop, monkeypatch):
    # The loops learned the vocabulary's size from the first step's logits: after a step of
    # the model's work, or never when there was nothing to write.
    from tinyformer.decoding import DecoderOnlySession, EncoderDecoderSession
    for session in (DecoderOnlySession, EncoderDecoderSession):
        monkeypatch.setattr(session, "next_logits", lambda self: pytest.fail("a step ran"))
    write, called = ending_loops()[loop]
    with pytest.raises(ValueError, match=rf"^{called}: eos_id must be a token id in \[0, 11\)"):
        write(11)


def test_an_eos_id_is_refused_with_nothing_to_write():
    from tinyformer.decoding import generate
    gpt, _, seq2seq = tiny_models()
    prompt = np.array([[3, 4, 5]])
    for write in (lambda: gpt.generate(prompt, 0, eos_id=11),
                  lambda: generate(gpt.start_decoding(prompt), 0, eos_id=11),
                  lambda: generate(seq2seq.start_decoding(prompt, BOS), 0, eos_id=11)):
        with pytest.raises(ValueError, match=r"^generate: eos_id must be a token id in "
                                             r"\[0, 11\)"):
            write()


# --------------------------------------------------------------------------------------------
# The sizes a model is built with


SIZES = {"GPT": dict(vocab_size=11, context=8, n_layer=1, n_head=2, d_model=8, d_ff=16,
                     d_head=4),
         "BERT": dict(vocab_size=11, context=8, n_layer=1, n_head=2, d_model=8, d_ff=16),
         "Transformer": dict(src_vocab_size=11, tgt_vocab_size=11, context=8, n_layer=1,
                             n_head=2, d_model=8, d_ff=16)}
MODELS = {"GPT": GPT, "BERT": BERT, "Transformer": Transformer}


@pytest.mark.parametrize("model, size", [(model, size) for model, sizes in SIZES.items()
                                         for size in sizes])
@pytest.mark.parametrize("value", [0, -1, 2.0, 2.5, True, "2"])
def test_every_models_sizes_are_whole_numbers_of_at_least_one(model, size, value):
    # BERT and the Transformer once divided by n_head 0; every model by d_ff 0; GPT took 2.0
    with pytest.raises(ValueError, match=f"^{model}: {size} must be a whole number >= 1, got "
                                         f"{re.escape(repr(value))}$"):
        MODELS[model](**{**SIZES[model], size: value})


@pytest.mark.parametrize("model, size", [(model, size) for model, sizes in SIZES.items()
                                         for size in sizes if size not in ("d_ff", "d_head")])
def test_only_the_widths_with_a_default_may_be_none(model, size):
    # GPT(None, 8) failed inside nn.Embedding with a TypeError; d_ff and d_head None mean
    # their defaults, and no other size has one.
    with pytest.raises(ValueError, match=f"^{model}: {size} must be a whole number >= 1, got "
                                         f"None$"):
        MODELS[model](**{**SIZES[model], size: None})


SWITCHES = [
    # TrainConfig refused these; the models took them to a comparison that failed inside
    ("dropout", "0.1", "a finite number in [0, 1]"),
    ("dropout", None, "a finite number in [0, 1]"),
    ("dropout", True, "a finite number in [0, 1]"),
    ("rope_theta", "1e4", "a finite number > 1"),
    ("rope_theta", float("inf"), "a finite number > 1"),
    # "does not divide", before, of a count that was not one
    ("n_kv_head", True, "a whole number >= 1"),
    ("n_kv_head", 2.0, "a whole number >= 1"),
]


@pytest.mark.parametrize("model, switch, value, rule", [
    (model, *case) for model in [*MODELS, "MultiHeadAttention"] for case in SWITCHES
    if model != "MultiHeadAttention" or case[0] != "rope_theta"])   # it takes a RotaryPositions
def test_every_models_switches_follow_the_rules_of_a_runs_settings(model, switch, value, rule):
    build, args = ((MultiHeadAttention, dict(d_model=8, n_head=2)) if model not in MODELS else
                   (MODELS[model], dict(SIZES[model], positions="rope")))
    with pytest.raises(ValueError, match=f"^{model}: {switch} must be {re.escape(rule)}, got "
                                         f"{re.escape(repr(value))}$"):
        build(**args, **{switch: value})


@pytest.mark.parametrize("switch, value", [("dropout", 1.5), ("rope_theta", 1.0),
                                           ("n_kv_head", 4_097)])
def test_a_model_refuses_what_a_runs_settings_refuse_by_the_same_rule(switch, value):
    # A model built in code took an n_kv_head that a run's settings refused as too many.
    with pytest.raises(ValueError) as run:
        TrainConfig(**{switch: value}).check(name=str)
    with pytest.raises(ValueError) as model:
        GPT(8, 8, n_layer=1, n_head=2, d_model=8, positions="rope", **{switch: value})
    assert str(model.value) == f"GPT: {run.value}"


@pytest.mark.parametrize("model", MODELS)
def test_sizes_given_as_numpy_integers_build_the_same_model(model):
    shapes = [{name: p.shape for name, p in MODELS[model](**sizes).named_parameters()}
              for sizes in (SIZES[model], {k: np.int64(v) for k, v in SIZES[model].items()})]
    assert shapes[0] == shapes[1]


@pytest.mark.parametrize("model", MODELS)
def test_a_config_built_from_numpy_numbers_holds_pythons_and_writes_as_json(model):
    # A vocab_size of tokens.max() + 1 (numpy's int64) built the model, then config.json
    # (save_pretrained, a checkpoint) failed: "Object of type int64 is not JSON serializable".
    given = {**SIZES[model], "dropout": 0.1, **({} if model == "GPT" else {"pad_id": 0})}
    plain = MODELS[model](**given).config
    config = MODELS[model](**{name: np.float64(value) if isinstance(value, float)
                              else np.int64(value) for name, value in given.items()}).config
    assert config == plain and json.loads(json.dumps(config)) == plain
    assert not [value for value in config.values() if isinstance(value, np.generic)]
