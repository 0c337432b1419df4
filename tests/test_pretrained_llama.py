"""Llama-family checkpoints: a Llama (SmolLM's architecture) and a Qwen3 that transformers
writes here, with tokenizers that the tokenizers library trains here in SmolLM's and Qwen's
layouts, load into our GPT with the logits of transformers to 3e-5 (float32's rounding) and
its greedy continuations; the tokenizer encodes and decodes as the tokenizers library does;
`tinyformer generate` writes what transformers writes; and everything we do not compute
(scaled RoPE, sliding windows, experts, other model types, other tokenizers) is refused in one
line. The other way: our GPT with the modern block saves as a Llama or a Qwen3 that transformers
loads with our logits, and that loads back here exactly. Nothing is downloaded."""

import contextlib
import json
import random
import re
import resource
import shutil

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_cli_train import assert_input_error, tinyformer
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                        processors, trainers)
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig,
                          LlamaForCausalLM, PreTrainedTokenizerFast, Qwen3Config,
                          Qwen3ForCausalLM)

import tinyautograd as ta
from tinyformer.checkpoint import load_model, load_tokenizer_at
from tinyformer.gpt import GPT
from tinyformer.pretrained import PretrainedError, read_eos_ids, read_tokenizer_json
from tinyformer.safetensors import load_file, save_file
from tinyformer.summary import describe_block
from tinyformer.tokenizers import (MAX_SPECIAL_TOKEN_CHARACTERS, bytes_to_unicode,
                                   describe_vocabulary, merge)

CONTEXT = 48
TEXT = ("It's 2024: the quick brown fox, 3 dogs and 12 cats jumped over 1.5 lazy dogs!\n"
        "Ünïcödé naïve café, e\u0301 (NFC makes it é) and 你好世界 ½ ² \t tabs  spaces\r\n") * 30
# Qwen2's and Qwen3's pre-tokenizer pattern (Llama 3's is nearly the same).
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
EOT = "<|endoftext|>"


def train_tokenizer(layout):
    """A tokenizer.json (as a dict) of SmolLM's layout (special tokens first, then the bytes;
    each digit alone, then GPT-2's pattern) or of Qwen's (its own pattern, NFC, the added
    tokens after the merges, one of them not special). Trained once, copied each time."""
    if layout not in TRAINED:
        TRAINED[layout] = json.dumps(_train_tokenizer(layout))
    return json.loads(TRAINED[layout])


TRAINED = {}


def _train_tokenizer(layout):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    if layout == "smollm":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        specials = [EOT, "<|im_start|>", "<|im_end|>"]
    else:
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = []
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([TEXT], trainer)
    if layout == "qwen":
        tokenizer.add_special_tokens([EOT, "<|im_start|>"])
        tokenizer.add_tokens(["<think>"])                       # not special: always found
    return json.loads(tokenizer.to_str())


@pytest.fixture(scope="module", params=["smollm", "qwen"])
def tokenizer_dir(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    (directory / "tokenizer.json").write_text(json.dumps(train_tokenizer(request.param)))
    return directory


def perturbed(model):
    """Away from the initialisation (norms at 1), so that every weight matters."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


LLAMAS = {
    # SmolLM-135M's shape, scaled down: grouped-query attention, tied embeddings
    "llama, tied, gqa": ("llama", dict(num_key_value_heads=2, tie_word_embeddings=True)),
    "llama, untied, mqa, theta 500": ("llama", dict(num_key_value_heads=1, rope_theta=500.0)),
    "llama, biases": ("llama", dict(attention_bias=True, mlp_bias=True)),
    # Qwen3-0.6B's: QK-norm, a head_dim that is not hidden_size / heads, a padded vocabulary
    "qwen3": ("qwen3", dict(num_key_value_heads=2, head_dim=16, tie_word_embeddings=True)),
}


def hf_model(kind, vocab_size, **changes):
    torch.manual_seed(0)
    sizes = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=40,
                 num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=CONTEXT,
                 rms_norm_eps=1e-5, **changes)
    if kind == "qwen3":
        return perturbed(Qwen3ForCausalLM(Qwen3Config(**sizes)))
    return perturbed(LlamaForCausalLM(LlamaConfig(**sizes)))


@pytest.fixture(scope="module", params=list(LLAMAS))
def llama(request, tmp_path_factory):
    """(a random transformers model, the directory its save_pretrained wrote)."""
    kind, changes = LLAMAS[request.param]
    model = hf_model(kind, 120, **changes)
    directory = tmp_path_factory.mktemp(kind)
    model.save_pretrained(directory)
    return model, directory


def tokens(shape, seed=0, vocab=120):
    return np.random.default_rng(seed).integers(0, vocab, shape)


def their_logits(model, idx):
    with torch.no_grad():
        return model(torch.tensor(idx)).logits.numpy()


# How far float32 logits may be from transformers': the two engines round differently, and
# BLAS's rounding differs with the machine's kernels (seen up to 1.1e-5 here). Any real mismatch
# is larger: the norms' eps at 1e-6 instead of 1e-5 alone moves some logit by 1.6e-4 or more.
ROUNDING = 3e-5


def test_the_logits_are_transformers_to_float32_rounding(llama):
    model, directory = llama
    ours = GPT.from_pretrained(directory)
    assert not ours.training
    for length in (1, 7, CONTEXT):
        idx = tokens((2, length), seed=length)
        with ta.no_grad():
            np.testing.assert_allclose(ours(idx).data, their_logits(model, idx), rtol=0,
                                       atol=ROUNDING)


def test_the_model_is_the_modern_block_it_should_be(llama):
    model, directory = llama
    config = GPT.from_pretrained(directory).config
    hf = model.config
    assert (config["positions"], config["normalization"], config["activation"]) == (
        "rope", "rmsnorm", "swiglu")
    assert config["n_kv_head"] == hf.num_key_value_heads
    assert config["qk_norm"] == (hf.model_type == "qwen3")
    assert config["bias"] == hf.attention_bias
    assert config["tie_weights"] == hf.tie_word_embeddings
    assert config["rope_theta"] == hf.rope_parameters["rope_theta"]
    assert config["d_head"] == (16 if hf.model_type == "qwen3" else None)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_continuations_are_transformers(llama, use_cache):
    model, directory = llama
    idx = tokens((2, 6), seed=3)
    theirs = model.generate(torch.tensor(idx), attention_mask=torch.ones(idx.shape, dtype=int),
                            do_sample=False, max_new_tokens=12, pad_token_id=0,
                            eos_token_id=None).numpy()
    ours = GPT.from_pretrained(directory).generate(idx, 12, temperature=0, use_cache=use_cache)
    np.testing.assert_array_equal(ours, theirs)


def test_a_batchs_rows_end_at_any_end_id_and_are_filled_as_transformers_fills_them(llama):
    # Python's generate with a chat model's several end ids: a row ends at any of them and is
    # filled with the first while the others go on, as transformers fills it with its
    # pad_token_id (here the first end id); it stops once every row has ended.
    model, directory = llama
    idx = tokens((3, 6), seed=4)

    def theirs(eos):
        return model.generate(torch.tensor(idx), attention_mask=torch.ones(idx.shape, dtype=int),
                              do_sample=False, max_new_tokens=12, eos_token_id=eos,
                              pad_token_id=0 if eos is None else eos[0]).numpy()
    unended = theirs(None)
    eos = [int(unended[0, 9]), int(unended[2, 7])]          # ids rows 0 and 2 write
    written = theirs(eos)
    rows_ended = [np.isin(row[6:-1], eos).any() for row in written]     # before the last token
    assert any(rows_ended), "no row ended before the others: the test would prove nothing"
    np.testing.assert_array_equal(GPT.from_pretrained(directory).generate(
        idx, 12, temperature=0, eos_id=eos), written)


def test_a_transformers_4_config_with_rope_theta_and_the_rotary_buffers_loads(llama, tmp_path):
    # SmolLM's config.json predates rope_parameters: rope_theta and rope_scaling at the top;
    # older saves also kept each layer's RoPE frequencies among the weights.
    model, directory = llama
    config = json.loads((directory / "config.json").read_text())
    config["rope_theta"] = config.pop("rope_parameters")["rope_theta"]
    config["rope_scaling"] = None
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = load_file(directory / "model.safetensors")
    for i in range(2):
        weights[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = np.ones(4, np.float32)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    idx = tokens((1, 20))
    with ta.no_grad():
        np.testing.assert_allclose(GPT.from_pretrained(tmp_path)(idx).data,
                                   their_logits(model, idx), rtol=0, atol=ROUNDING)


def test_the_summary_describes_a_loaded_qwen3(tmp_path):
    hf_model("qwen3", 50, num_key_value_heads=1, head_dim=16).save_pretrained(tmp_path)
    assert describe_block(GPT.from_pretrained(tmp_path)) == (
        "pre-norm RMSNorm, SwiGLU feed-forward of width 40, multi-query attention (4 query "
        "heads, 1 key-value head, each of width 16), QK-norm, RoPE (theta 10000), no biases, a "
        "head of its own (untied)")


# --------------------------------------------------------------------------------------------
# The tokenizer


SAMPLES = ["Hello world", "  leading spaces and trailing ", "It's 2024, 3.14159 and 1e10",
           "e\u0301 versus \u00e9", "tabs\tand\r\nnew lines\n\n\n", "你好世界 ½ ² ٣٤",
           "<think>the answer</think>", "IT'S DON'T", "", "\u0000\u007f bytes"]


@pytest.mark.parametrize("text", SAMPLES)
def test_the_tokenizer_encodes_and_decodes_as_the_library_does(tokenizer_dir, text):
    theirs = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    ours = read_tokenizer_json(tokenizer_dir)
    ids = theirs.encode(text).ids
    assert ours.encode(text) == ids
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False)


def test_tokenize_reads_a_folder_of_the_tokenizer_json_alone_but_train_refuses_it(
        tokenizer_dir):
    # Neither layout is GPT-2's (SmolLM's cuts digits first, Qwen's normalises): `tokenize`,
    # which only encodes and decodes, reads them as read_tokenizer_json does; a run saves its
    # tokenizer, which only GPT-2's shape can be, so train refuses, naming the stage.
    theirs = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    text = "e\u0301 versus \u00e9 in 2024 <think>"
    ids = theirs.encode(text).ids
    encoded = tinyformer("tokenize", "encode", text, "--tokenizer", tokenizer_dir)
    assert encoded.exit_code == 0, encoded.output
    assert encoded.stdout.split() == [str(i) for i in ids]
    decoded = tinyformer("tokenize", "decode", *ids, "--tokenizer", tokenizer_dir)
    assert decoded.exit_code == 0, decoded.output
    assert decoded.stdout == theirs.decode(ids, skip_special_tokens=False) + "\n"
    trained = tinyformer("train", "--tokenizer", tokenizer_dir, "--iters", 1, "--out",
                         tokenizer_dir / "run")
    assert_input_error(trained, "GPT-2's BPE", "a run saves")
    assert not (tokenizer_dir / "run").exists()


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=60))
def test_the_tokenizer_agrees_with_the_library_on_any_text(both_tokenizers, text):
    for layout, (theirs, ours) in both_tokenizers.items():
        assert ours.encode(text) == theirs.encode(text).ids, layout


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab 1½²٣\n'sT"), max_size=30) | st.text(max_size=30))
def test_the_pre_tokenizer_cuts_where_the_librarys_does(both_tokenizers, text):
    # The chunks themselves, spelled in bytes as the library spells them: merges never cross
    # a chunk's border, so a chunk cut elsewhere may not show in the ids of a small vocabulary.
    spelled = bytes_to_unicode()
    for layout, (theirs, ours) in both_tokenizers.items():
        normal = theirs.normalizer.normalize_str(text) if theirs.normalizer else text
        want = [piece for piece, _ in theirs.pre_tokenizer.pre_tokenize_str(normal)]
        got = ["".join(spelled[b] for b in chunk.encode("utf-8"))
               for chunk in ours._chunks(normal)]
        assert got == want, layout


@pytest.mark.parametrize("steps", [
    [pre_tokenizers.Digits(individual_digits=False),               # runs of digits, and a
     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)],    # step that keeps
    [pre_tokenizers.Split(Regex("(?=b)|x*"), behavior="isolated"),  # matches of no characters
     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]],
    ids=["digit runs", "empty matches"])
def test_other_pre_tokenizers_cut_where_the_librarys_do(tmp_path, steps):
    theirs = Tokenizer.from_str(json.dumps(train_tokenizer("smollm")))
    theirs.pre_tokenizer = pre_tokenizers.Sequence(steps)
    (tmp_path / "tokenizer.json").write_text(theirs.to_str())
    ours, spelled = read_tokenizer_json(tmp_path), bytes_to_unicode()
    for text in ("a12b3 4x½²", "abab cab", "bxxb"):
        want = [piece for piece, _ in theirs.pre_tokenizer.pre_tokenize_str(text)]
        got = ["".join(spelled[b] for b in chunk.encode("utf-8")) for chunk in ours._chunks(text)]
        assert got == want, text
        assert ours.encode(text) == theirs.encode(text).ids


def test_special_tokens_in_the_text_only_when_allowed_other_added_tokens_always(
        both_tokenizers):
    theirs, ours = both_tokenizers["qwen"]
    think, eot = theirs.token_to_id("<think>"), theirs.token_to_id(EOT)
    assert ours.encode("a<think>b") == theirs.encode("a<think>b").ids        # always one token
    assert think in ours.encode("a<think>b")
    assert eot not in ours.encode(f"a{EOT}b")                                # plain text ...
    assert ours.encode(f"a{EOT}b", allow_special=True) == theirs.encode(f"a{EOT}b").ids
    assert ours.special_id(EOT) == eot and ours.special_id("<think>") is None
    smollm, ours = both_tokenizers["smollm"]
    assert ours.special_id(EOT) == smollm.token_to_id(EOT) == 0


def test_the_vocabulary_is_described_as_any_tokenizers(both_tokenizers):
    # It asked for the characters of a char tokenizer, which this has not: AttributeError.
    _, ours = both_tokenizers["qwen"]
    assert describe_vocabulary(ours) == [f"vocabulary   {ours.vocab_size} ids: "
                                         f"{ours.vocab_size - 2} tokens + 2 special "
                                         f"(<|endoftext|> <|im_start|>)"]


def test_a_lone_surrogate_is_refused_in_one_line_naming_its_position(both_tokenizers):
    # Half of a UTF-16 pair has no UTF-8 bytes: a raw UnicodeEncodeError came out, naming its
    # index in a chunk. Now the one line of BPETokenizer, its position in the whole text.
    for _, ours in both_tokenizers.values():
        with pytest.raises(ValueError, match=r"^cannot encode '\\udfff' at position 15: a lone "
                                             r"surrogate \(half of a UTF-16 pair\)"):
            ours.encode(f"{EOT}x \udfff", allow_special=True)


@pytest.mark.parametrize("layout", ["qwen", "smollm"])
def test_added_tokens_marked_normalized_are_found_in_the_normalised_text(tmp_path, layout):
    """As the library finds them: the added tokens marked "normalized": false in the text as
    written first, then the others in the normalised text (Qwen's NFC makes "cafe\u0301"
    "café"), each as normalised itself; SmolLM's has no normaliser, but the order still
    decides between "ab" and "abc"."""
    theirs = Tokenizer.from_str(json.dumps(train_tokenizer(layout)))
    theirs.add_tokens([AddedToken("ab", normalized=False), AddedToken("abc", normalized=True),
                       AddedToken("cafe\u0301", normalized=True),
                       AddedToken("x\u00e9", normalized=False)])
    (tmp_path / "tokenizer.json").write_text(theirs.to_str())
    ours = read_tokenizer_json(tmp_path)
    for text in ["caf\u00e9", "cafe\u0301", "x\u00e9", "xe\u0301", "xabcx", "abcaf\u00e9"]:
        assert ours.encode(text) == theirs.encode(text).ids, ascii(text)


@pytest.mark.parametrize("normalizer", [None, "NFC", "NFD"])
def test_added_tokens_decode_as_the_library_decodes_them(tmp_path, normalizer):
    """The library keeps an added token marked "normalized" as normalised ("caf\u00e9" under
    NFD as "cafe\u0301"), and decodes every token with its ByteLevel decoder: one whose
    characters all spell bytes, as "na\u00efve"'s do (\u00ef spells the byte 0xef), decodes
    to those bytes, not to its UTF-8; one with another character ("\u6771", a space) to its
    UTF-8."""
    theirs = Tokenizer.from_str(json.dumps(train_tokenizer("smollm")))
    if normalizer is not None:
        theirs.normalizer = getattr(normalizers, normalizer)()
    theirs.add_tokens([AddedToken("caf\u00e9", normalized=True),
                       AddedToken("na\u00efve", normalized=False),
                       AddedToken("\u6771 x", normalized=False)])
    theirs.add_special_tokens([AddedToken("<\u00fc>", special=True)])
    (tmp_path / "tokenizer.json").write_text(theirs.to_str())
    ours = read_tokenizer_json(tmp_path)
    for text in ["caf\u00e9", "cafe\u0301 x", "na\u00efve", "\u6771 x", "<\u00fc>", "a<\u00fc>b"]:
        ids = theirs.encode(text).ids
        assert ours.encode(text, allow_special=True) == ids, ascii(text)
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False), ascii(text)


@pytest.mark.parametrize("layout, inner", [
    ("smollm", []), ("qwen", [{"type": "NFC"}]),
    # one inside another, as the library nests them: it was named "a sequence of several"
    ("smollm", [{"type": "Sequence", "normalizers": []}]),
    ("qwen", [{"type": "Sequence", "normalizers": [{"type": "NFC"}]}]),
], ids=["of none", "of NFC", "of a sequence of none", "of a sequence of NFC"])
def test_a_sequence_of_no_normalizer_or_of_one_is_read_as_that(tmp_path, layout, inner):
    # Some models' tokenizer.json write their normalizer as a Sequence of none, which changes
    # no text in the library, as a Sequence of one does what that one does: both were refused.
    data = train_tokenizer(layout)
    data["normalizer"] = {"type": "Sequence", "normalizers": inner}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    for text in SAMPLES:
        assert ours.encode(text) == theirs.encode(text).ids, ascii(text)
    # Of several, as of one it cannot reproduce, it is refused, naming them.
    data["normalizer"]["normalizers"] = [{"type": "NFC"}, {"type": "Lowercase"}]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(PretrainedError, match="normalizer 'Sequence' of 'NFC', 'Lowercase': "
                                              "a sequence of several normalizers"):
        read_tokenizer_json(tmp_path)
    data["normalizer"]["normalizers"] = [{"type": "Lowercase"}]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(PretrainedError, match="normalizer 'Lowercase': it changes the text"):
        read_tokenizer_json(tmp_path)


def test_two_added_tokens_that_normalise_alike_are_refused(tmp_path):
    # Under Qwen's NFC both are "\u00c5": one pattern for the library, which finds the one or
    # the other from one run to the next (the order of a hash map), so no ids are its.
    data = train_tokenizer("qwen")
    data["added_tokens"] += [{**data["added_tokens"][-1], "content": token, "normalized": True}
                             for token in ("A\u030a", "\u212b")]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(PretrainedError) as error:
        read_tokenizer_json(tmp_path)
    assert str(error.value) == (f"{tmp_path / 'tokenizer.json'}: added tokens 'A\\u030a' and "
                                f"'\\u212b' are both '\\xc5' once normalised (NFC): the "
                                f"tokenizers library finds either one, from run to run; keep "
                                f"one of them")


def test_transformers_reads_the_same_ids_from_the_same_file(tokenizer_dir):
    theirs = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json"))
    ours = read_tokenizer_json(tokenizer_dir)
    for text in SAMPLES:
        assert ours.encode(text) == theirs.encode(text, add_special_tokens=False)


def test_a_padded_vocabulary_decodes_its_extra_ids_to_nothing(tokenizer_dir):
    size = read_tokenizer_json(tokenizer_dir).vocab_size
    padded = read_tokenizer_json(tokenizer_dir, vocab_size=size + 5)
    assert padded.vocab_size == size + 5 and padded.decode([size + 4]) == ""
    with pytest.raises(PretrainedError, match=f"has {size} tokens, more than the model's 10"):
        read_tokenizer_json(tokenizer_dir, vocab_size=10)


@pytest.mark.parametrize("vocab_size", [None, 416])
def test_a_vocabulary_id_past_what_the_file_holds_is_refused_before_building(
        tmp_path, vocab_size):
    # The pieces are a list as long as the largest id: 10**9 would ask for gigabytes (the
    # address space is capped here, so building it fails as running out of memory would).
    # (A vocabulary may skip a few ids: see ADDED_IDS' gap.)
    data = train_tokenizer("qwen")
    token = last_of_the_vocabulary(data)
    held = len(data["model"]["vocab"]) + len(data["added_tokens"])
    beyond = f"twice the file's {held} tokens" if vocab_size is None else "the model's 416 ids"
    data["model"]["vocab"][token] = 10**9
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    with address_space_capped(1 << 30), pytest.raises(PretrainedError) as error:
        read_tokenizer_json(tmp_path, vocab_size)
    assert str(error.value).startswith(f"{tmp_path / 'tokenizer.json'}: vocabulary id "
                                       f"1000000000 of {token!r} is past {beyond}")
    assert "\n" not in str(error.value)


@contextlib.contextmanager
def address_space_capped(extra):
    """Allocations past `extra` bytes more than this process holds now fail (MemoryError)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        held = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (held + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("tokenizer_class", ["GPT2Tokenizer", "Qwen2Tokenizer"])
def test_a_tokenizer_config_with_add_prefix_space_is_refused(tokenizer_dir, tmp_path,
                                                             tokenizer_class):
    # SmolLM's and Qwen's tokenizer_config.json name these classes, which heed the switch: read
    # without it, every text would have other ids than transformers gives it.
    (tmp_path / "tokenizer.json").write_bytes((tokenizer_dir / "tokenizer.json").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": tokenizer_class, "add_prefix_space": True}))
    theirs = AutoTokenizer.from_pretrained(tmp_path)
    assert theirs.encode("Hi") != read_tokenizer_json(tokenizer_dir).encode("Hi")
    with pytest.raises(PretrainedError, match="tokenizer_config.json: add_prefix_space is true: "
                                              "transformers' tokenizer adds a space in front"):
        read_tokenizer_json(tmp_path)


def test_merges_written_as_a_b_strings_read_as_pairs_do(tokenizer_dir, tmp_path):
    # The tokenizers library writes each merge as a pair [a, b]; older files as one string.
    data = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    assert all(isinstance(pair, list) for pair in data["model"]["merges"])
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    pairs, strings = read_tokenizer_json(tokenizer_dir), read_tokenizer_json(tmp_path)
    for text in SAMPLES + [TEXT]:
        assert strings.encode(text) == pairs.encode(text)
    assert len(strings.encode(TEXT)) < len(TEXT) / 2                # the merges were applied


def test_the_earliest_merge_wins_as_in_the_library(tmp_path):
    # In "xqz" both (x, q) and (q, z) are merges: the one listed first is applied first, so
    # the text is x + qz. (The trained merges alone cannot tell: on their repeated text,
    # every order gives the same ids.)
    data = train_tokenizer("smollm")
    vocab = data["model"]["vocab"]
    for token in ("qz", "xq"):
        vocab[token] = len(vocab)
    data["model"]["merges"] += [["q", "z"], ["x", "q"]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    assert ours.encode("xqz") == theirs.encode("xqz").ids == [vocab["x"], vocab["qz"]]



def test_a_merge_listed_twice_takes_its_last_rank_as_in_the_library(tmp_path):
    # (x, q) is listed before (q, z) and again after it: the library ranks it where it is
    # listed last, after (q, z), so "xqz" is x + qz.
    data = train_tokenizer("smollm")
    vocab = data["model"]["vocab"]
    for token in ("qz", "xq"):
        vocab[token] = len(vocab)
    data["model"]["merges"] += [["x", "q"], ["q", "z"], ["x", "q"]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    assert ours.encode("xqz") == theirs.encode("xqz").ids == [vocab["x"], vocab["qz"]]

def test_a_merge_ranked_before_the_merge_that_makes_its_token_is_applied_as_in_the_library(
        tmp_path):
    # (xq, x) is listed before (x, q), which makes xq. The library merges a pair as soon as a
    # merge makes it, if it is the lowest ranked: in "xqxq" the first x q becomes xq, then
    # xq x becomes xqx before the second x q is reached. Merging each rank everywhere in
    # turn gave xq xq.
    data = train_tokenizer("smollm")
    vocab = data["model"]["vocab"]
    for token in ("xq", "xqx"):
        vocab[token] = len(vocab)
    data["model"]["merges"] += [["xq", "x"], ["x", "q"]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    for text in ("xqxq", "xqxqxq", "xxqxq"):
        assert ours.encode(text) == theirs.encode(text).ids, text
    assert ours.encode("xqxq") == [vocab["xqx"], vocab["q"]]


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    """(the library's tokenizer, ours, the tokenizer.json as a dict) of a BPE trained on long
    words of few letters (DNA, runs of a, Chinese), where pairs tie all the time."""
    rng = random.Random(0)
    text = " ".join("".join(rng.choices(letters, k=500)) for letters in ("ACGT", "aab", "東京的"))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.train_from_iterator([text], trainers.BpeTrainer(
        vocab_size=256 + 60, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    directory = tmp_path_factory.mktemp("tied")
    (directory / "tokenizer.json").write_text(tokenizer.to_str())
    return tokenizer, read_tokenizer_json(directory), json.loads(tokenizer.to_str())


def encode_by_rounds(data, word):
    """The ids of a word (one chunk) by the tokenizer.json `data`'s merges, the slow plain way:
    while some pair is a merge, the one listed first merged everywhere, left to right."""
    vocab, spelled = data["model"]["vocab"], bytes_to_unicode()
    ranks = {(vocab[a], vocab[b]): (rank, vocab[a + b])
             for rank, (a, b) in enumerate(data["model"]["merges"])}
    ids = [vocab[spelled[b]] for b in word.encode("utf-8")]
    while any(pair in ranks for pair in zip(ids, ids[1:])):
        _, pair = min((ranks[pair], pair) for pair in zip(ids, ids[1:]) if pair in ranks)
        ids = merge(ids, pair, ranks[pair][1])
    return ids


@settings(max_examples=60, deadline=None)
@given(word=st.text(alphabet="AACGTaaab東京的", min_size=1, max_size=300))
@example(word="a" * 1000)
def test_long_words_full_of_ties_encode_as_the_rounds_and_the_library_do(tied, word):
    # Letters alone: one chunk, however long, which encode takes its merges for from a heap.
    theirs, ours, data = tied
    assert ours.encode(word) == encode_by_rounds(data, word) == theirs.encode(word).ids


def test_ignore_merges_takes_a_whole_word_from_the_vocabulary_as_the_library_does(tmp_path):
    # Llama 3's tokenizer.json: a chunk that is a token of the vocabulary is that token,
    # however the merges would have built it ("xqz" has no merges at all).
    data = train_tokenizer("smollm")
    vocab = data["model"]["vocab"]
    vocab["xqz"] = len(vocab)
    data["model"]["ignore_merges"] = True
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    for text in ("xqz", "the xqz of xqzs"):
        assert ours.encode(text) == theirs.encode(text).ids
    assert ours.encode("xqz") == [vocab["xqz"]]


def edited(data, change):
    data = json.loads(json.dumps(data))
    change(data)
    return data


def set_at(*path_and_value):
    *path, value = path_and_value

    def change(data):
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value
    return change


LONG_TOKEN = "<|" + "x" * MAX_SPECIAL_TOKEN_CHARACTERS + "|>"

def sentencepiece_style(data):
    """Llama 2's layout: a Metaspace pre-tokenizer, and byte_fallback's <0x..> tokens for the
    characters the vocabulary lacks."""
    data["model"]["byte_fallback"] = True
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581"}


TOKENIZER_REFUSALS = [   # (change to tokenizer.json, what the one line names)
    (sentencepiece_style, "model byte_fallback is true"),
    (set_at("model", "dropout", 0.1), "model dropout is 0.1"),
    (set_at("model", "type", "WordPiece"), "model type 'WordPiece'"),
    (set_at("normalizer", {"type": "Lowercase"}), "normalizer 'Lowercase'"),
    (set_at("pre_tokenizer", {"type": "Metaspace", "replacement": "_"}),
     "pre_tokenizer 'Metaspace'"),
    (set_at("pre_tokenizer", "pretokenizers", 1, "add_prefix_space", True),
     "ByteLevel has add_prefix_space"),
    (set_at("pre_tokenizer", "pretokenizers", 0, {"type": "Split", "pattern": {"String": " "},
                                                  "behavior": "Removed", "invert": False}),
     "Split with behavior 'Removed'"),
    (set_at("pre_tokenizer", "pretokenizers", 0, {"type": "Split", "pattern": {"Regex": "["},
                                                  "behavior": "Isolated", "invert": False}),
     "pre_tokenizer Split's pattern: it does not compile (unterminated character set"),
    (set_at("pre_tokenizer", "pretokenizers", 0, {                 # past Python's recursion
        "type": "Split", "pattern": {"Regex": "(" * 5000 + ")" * 5000}, "behavior": "Isolated",
        "invert": False}), "pre_tokenizer Split's pattern: it does not compile (maximum recursion"),
    (set_at("decoder", {"type": "Metaspace"}), "decoder 'Metaspace'"),
    (set_at("post_processor", {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": EOT, "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [], "special_tokens": {}}),
     "post_processor 'TemplateProcessing': it adds tokens"),
    (set_at("added_tokens", 0, "single_word", True),
     "added token '<|endoftext|>' has single_word"),
    (set_at("added_tokens", 0, "id", -1), "added token '<|endoftext|>' has id -1"),
    (set_at("added_tokens", 0, "id", "0"), "added token '<|endoftext|>' has id '0'"),
    (lambda data: data["pre_tokenizer"]["pretokenizers"].reverse(),
     "pre_tokenizer 'Digits' after ByteLevel"),
    (lambda data: data["model"]["vocab"].pop("Ġ"), "the vocabulary lacks the byte 0x20"),
    (lambda data: data["model"].pop("merges"), "not a tokenizers-library tokenizer.json"),
    (set_at("added_tokens", 0, "content", 5), "an added token's content is 5; it must be text"),
    # A stranger's megabytes-long token is named cut short, in a line that can be read.
    (lambda data: data["model"]["merges"].insert(0, ["x" * 100_000, "y"]),
     "merge 0 ['xxxxxxxx"),
    (lambda data: data["model"]["vocab"].update({"\u4e00" * 100_000: 400}),
     "vocabulary token '\u4e00\u4e00"),
    # Finding added tokens compiles a pattern of them, over 100 times their size: one of
    # megabytes would fill the memory. Special or not, one over the cap is refused.
    *[(lambda data, special=special: data["added_tokens"].append(
        {"id": 400, "content": LONG_TOKEN, "special": special}),
       f"{kind} token '<|xxxxx") for special, kind in [(True, "special"), (False, "added")]],
]


@pytest.mark.parametrize("layout", ["smollm", "qwen"])
def test_byte_fallback_after_a_byte_level_pre_tokenizer_changes_nothing_as_in_the_library(
        tmp_path, layout):
    # Every character the BPE sees is one of the 256 bytes' own, all in the vocabulary, so no
    # <0x..> token is ever needed: the library encodes as without it. It was refused.
    data = edited(train_tokenizer(layout), set_at("model", "byte_fallback", True))
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    for text in SAMPLES:
        assert ours.encode(text) == theirs.encode(text).ids, ascii(text)


@pytest.mark.parametrize("change, phrase", TOKENIZER_REFUSALS,
                         ids=[phrase[:30] for _, phrase in TOKENIZER_REFUSALS])
def test_a_tokenizer_we_cannot_reproduce_is_refused_in_one_line(tmp_path, change, phrase):
    (tmp_path / "tokenizer.json").write_text(json.dumps(edited(train_tokenizer("smollm"),
                                                               change)))
    with pytest.raises(PretrainedError) as error:
        read_tokenizer_json(tmp_path)
    assert phrase in str(error.value) and "\n" not in str(error.value), str(error.value)[:300]
    assert len(str(error.value)) < 500


def last_of_the_vocabulary(data):
    vocab = data["model"]["vocab"]
    return max(vocab, key=vocab.get)


ADDED_IDS = {   # a change to Qwen's layout (added tokens after the vocabulary) -> what it does
    "past the next free id": lambda data: [token.update(id=token["id"] + 3)
                                           for token in data["added_tokens"]],
    "out of the file's order": lambda data: data["added_tokens"].reverse(),
    "another token's id": set_at("added_tokens", 1, "id", 5),
    "a vocabulary token listed with an id of its own": lambda data: data["added_tokens"].insert(
        0, {**data["added_tokens"][2], "content": last_of_the_vocabulary(data), "id": 999}),
    "a gap in the vocabulary that the added tokens fill": lambda data: [
        data["model"]["vocab"].update({last_of_the_vocabulary(data): 360}),
        [token.update(id=token["id"] + 10) for token in data["added_tokens"]]],
}


@pytest.mark.parametrize("change", list(ADDED_IDS))
def test_added_tokens_take_the_ids_the_library_gives_them_not_the_files(tmp_path, change):
    data = edited(train_tokenizer("qwen"), ADDED_IDS[change])
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    written = {token["content"]: token["id"] for token in data["added_tokens"]}
    assert any(theirs.token_to_id(token) != i for token, i in written.items())
    text = f"a{EOT}b<think>c<|im_start|>d{last_of_the_vocabulary(data)}"
    ids = theirs.encode(text).ids
    assert ours.encode(text, allow_special=True) == ids
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False)


@pytest.mark.parametrize("special", [False, True])
def test_an_added_token_of_no_text_is_skipped_as_the_library_skips_it(tmp_path, special):
    # Found as written, it would come between every two characters; the library gives it no
    # id, so the token after it takes the id it would have had.
    data = train_tokenizer("qwen")
    entry = {**data["added_tokens"][0], "special": special}
    data["added_tokens"] += [{**entry, "content": ""}, {**entry, "content": "<after>"}]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    text = "caf\u00e9 <after> ok"
    assert ours.encode(text, allow_special=True) == theirs.encode(text).ids
    assert ours.vocab_size == theirs.get_vocab_size()
    assert theirs.token_to_id("") is None


def test_an_added_token_the_library_numbers_as_a_vocabulary_token_is_refused(tmp_path):
    # The vocabulary's ids skip 350 and 351, and its last token is 352: the library counts
    # 351 tokens, so numbers the added tokens 351, 352, 353, two tokens sharing 352.
    data = train_tokenizer("qwen")
    last = last_of_the_vocabulary(data)
    data["model"]["vocab"][last] = 352
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert theirs.token_to_id("<|im_start|>") == theirs.token_to_id(last) == 352
    with pytest.raises(PretrainedError) as error:
        read_tokenizer_json(tmp_path)
    assert str(error.value) == (f"{tmp_path / 'tokenizer.json'}: the tokenizers library gives "
                                f"added token '<|im_start|>' the id 352, which the vocabulary "
                                f"gives another token; number the vocabulary 0, 1, 2, ... with "
                                f"no gaps")


BYTE_LEVEL_SETTINGS = [("add_prefix_space", "yes"), ("add_prefix_space", 0),
                       ("add_prefix_space", None), ("add_prefix_space", "left out"),
                       ("use_regex", "no"), ("use_regex", 1), ("use_regex", None)]


@pytest.mark.parametrize("setting, value", BYTE_LEVEL_SETTINGS)
def test_a_byte_level_setting_the_library_refuses_is_refused(tmp_path, setting, value):
    # Read as truthy or falsy, "yes" or null would give a tokenizer where the library gives
    # none.
    data = train_tokenizer("smollm")
    stage = data["pre_tokenizer"]["pretokenizers"][1]
    if value == "left out":
        del stage[setting]
    else:
        stage[setting] = value
    with pytest.raises(Exception, match="expected a boolean|missing field"):
        Tokenizer.from_str(json.dumps(data))
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(PretrainedError) as error:
        read_tokenizer_json(tmp_path)
    assert str(error.value) == (f"{tmp_path / 'tokenizer.json'}: pre_tokenizer ByteLevel's "
                                f"{setting} must be true or false, got "
                                f"{'nothing' if value == 'left out' else json.dumps(value)}")


def test_use_regex_left_out_is_true_as_in_the_library(tmp_path):
    data = train_tokenizer("smollm")
    del data["pre_tokenizer"]["pretokenizers"][1]["use_regex"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    theirs = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert read_tokenizer_json(tmp_path).encode(TEXT) == theirs.encode(TEXT).ids


# --------------------------------------------------------------------------------------------
# What we do not compute, refused in one line


def without(name):
    return lambda weights: weights.pop(name)


REFUSALS = [    # (changes to config.json, a change to the weights, what the error says)
    ({"model_type": "mistral"}, None, "model_type is 'mistral'; tinyformer reads 'gpt2', "
                                      "'llama' and 'qwen3'"),
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}, None,
     "rope_parameters has rope_type 'llama3': a scaled RoPE"),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4,
                          "partial_rotary_factor": 0.5}}, None,
     "rope_parameters has partial_rotary_factor 0.5: RoPE on part of each head's features, "
     "which tinyformer does not compute (it rotates them all)"),
    # At the top level, transformers moves it into rope_parameters: the same model. It loaded,
    # rotating every feature.
    ({"partial_rotary_factor": 0.25}, None, "partial_rotary_factor is 0.25: RoPE on part of "
                                            "each head's features"),
    ({"rope_parameters": None, "rope_theta": 1e4, "partial_rotary_factor": 0.5}, None,
     "partial_rotary_factor is 0.5: RoPE on part"),
    # transformers reads the older "type" where "rope_type" is missing
    ({"rope_parameters": {"type": "linear", "rope_theta": 1e4, "factor": 2.0}}, None,
     "rope_parameters has rope_type 'linear': a scaled RoPE"),
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, None,
     "rope_scaling has rope_type 'linear': a scaled RoPE"),
    ({"hidden_act": "gelu"}, None, "hidden_act is 'gelu'"),
    # A Llama's window is read by transformers' generate but not by its forward pass.
    ({"sliding_window": 4}, None, "sliding_window is 4: sliding-window attention, which "
                                  "tinyformer does not compute; if the model attends to every "
                                  "position, set it to null"),
    ({"sliding_window": "4"}, None, "sliding_window is \"4\": sliding-window attention"),
    ({"layer_types": ["full_attention", "sliding_attention"]}, None,
     "layer_types holds 'sliding_attention'"),
    ({"layer_types": 2}, None, "layer_types must be a list of each layer's kind of attention, "
                               "got 2"),
    ({"layer_types": ["full_attention"]}, None, "layer_types names 1 layers' kinds of "
                                                "attention, and num_hidden_layers is 2; give "
                                                "one a layer"),
    ({"num_experts": 8}, None, "num_experts is 8: a mixture of experts"),
    ({"quantization_config": {"quant_method": "bitsandbytes"}}, None, "quantised weights"),
    ({"attention_bias": True}, None, "attention_bias is true and mlp_bias false"),
    ({"num_key_value_heads": 3}, None, "n_kv_head 3 does not divide n_head 4"),
    ({"rms_norm_eps": "1e-5"}, None, "rms_norm_eps must be a number above 0"),
    ({"hidden_size": None}, None, "hidden_size must be a whole number >= 1, got None"),
    ({"max_position_embeddings": 10**9}, None, "max_position_embeddings is 1,000,000,000; "
                                               "tinyformer builds models of a context up to"),
    ({"num_hidden_layers": 64}, None, "config.json describes a model of at least"),
    ({"tie_word_embeddings": "false"}, None, "tie_word_embeddings must be true or false"),
    ({"tie_word_embeddings": True}, None, "ties the output layer to the embedding "
                                          "(tie_word_embeddings true), but lm_head.weight is "
                                          "another matrix"),
    # Each tensor named as the file names it, with what to do.
    ({}, without("model.layers.1.mlp.up_proj.weight"),
     "tensor 'model.layers.1.mlp.up_proj.weight' is missing, given config.json; put the "
     "config.json and the weights of one model together"),
    ({}, lambda w: w.update({"model.layers.0.mlp.extra": np.zeros(2, np.float32)}),
     "tensor 'model.layers.0.mlp.extra' is not part of llama, given config.json; put the"),
    ({}, lambda w: w.update({"model.norm.weight": np.ones(31, np.float32)}),
     "tensor 'model.norm.weight' has the wrong shape: (31,), but config.json makes it (32,); "
     "put the config.json and the weights of one model together"),
    ({}, lambda w: w.update({"model.norm.weight": w["model.norm.weight"].astype(np.int8)}),
     "tensor 'model.norm.weight' holds int8, not floats; tinyformer reads weights of floats"),
    # transformers adds "model." to a name without it: two tensors for one weight, either of
    # which would be silently the model's.
    ({}, lambda w: w.update({"norm.weight": 2 * w["model.norm.weight"]}),
     "tensor 'model.norm.weight' is there twice, also as 'norm.weight'; keep one of them"),
]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("llama-base")
    hf_model("llama", 120, num_key_value_heads=2).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("config_changes, change_weights, problem", REFUSALS,
                         ids=[problem[:40] for *_, problem in REFUSALS])
def test_what_we_do_not_compute_is_refused_in_one_line(llama_dir, tmp_path, config_changes,
                                                       change_weights, problem):
    config = {**json.loads((llama_dir / "config.json").read_text()), **config_changes}
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = load_file(llama_dir / "model.safetensors")
    if change_weights is not None:
        change_weights(weights)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(PretrainedError) as error:
        GPT.from_pretrained(tmp_path)
    assert problem in str(error.value) and "\n" not in str(error.value), str(error.value)


@pytest.mark.parametrize("rope", [
    {"rope_theta": 500.0, "rope_parameters": {"rope_type": "default"}},
    {"rope_theta": 500.0, "rope_parameters": {"rope_theta": 250.0}},
    # An older config.json's rope_scaling of the default type scales nothing; where it is
    # set, transformers 5 reads it in place of rope_parameters.
    {"rope_theta": 500.0, "rope_scaling": {"rope_type": "default"}},
    {"rope_scaling": {"type": "default"}, "rope_parameters": {"rope_theta": 250.0}},
    # RoPE on every feature, said outright: no partial rotary to refuse.
    {"rope_theta": 500.0, "partial_rotary_factor": 1.0},
    {"rope_parameters": {"rope_theta": 250.0, "partial_rotary_factor": 1.0}},
    {}])                                                  # neither: LlamaConfig's default
def test_rope_theta_is_the_one_transformers_reads(llama_dir, tmp_path, rope):
    # rope_parameters without a rope_theta takes the top-level one, not the default
    config = json.loads((llama_dir / "config.json").read_text())
    config = {**{k: v for k, v in config.items() if k not in ("rope_theta", "rope_parameters")},
              **rope}
    (tmp_path / "config.json").write_text(json.dumps(config))
    shutil.copy(llama_dir / "model.safetensors", tmp_path)
    theirs = LlamaConfig.from_pretrained(tmp_path).rope_parameters["rope_theta"]
    assert GPT.from_pretrained(tmp_path).config["rope_theta"] == theirs


@pytest.mark.parametrize("window", [None, CONTEXT, 10 * CONTEXT])
def test_a_llamas_sliding_window_of_the_whole_context_or_none_loads(llama_dir, tmp_path, window):
    # transformers' generate then keeps every position's keys: full attention, ours
    config = json.loads((llama_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "sliding_window": window}))
    shutil.copy(llama_dir / "model.safetensors", tmp_path)
    idx = tokens((1, 6))
    np.testing.assert_array_equal(GPT.from_pretrained(tmp_path)(idx).data,
                                  GPT.from_pretrained(llama_dir)(idx).data)


def test_use_sliding_window_is_qwen3s_switch_which_a_llama_does_not_read(llama_dir, tmp_path):
    config = json.loads((llama_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "use_sliding_window": True}))
    shutil.copy(llama_dir / "model.safetensors", tmp_path)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    idx = tokens((1, 12))
    np.testing.assert_allclose(GPT.from_pretrained(tmp_path)(idx).data,
                               their_logits(theirs, idx), atol=ROUNDING)


# A window of 4 positions, well inside the 12 tokens given: where a layer slid, the logits
# would part from ours.
QWEN3_WINDOWS = {
    # Qwen3's own configs: the window switched on from max_window_layers, past the last layer.
    "below max_window_layers": (dict(use_sliding_window=True, sliding_window=4,
                                     max_window_layers=2), None),
    "layer_types all full": (dict(use_sliding_window=True, sliding_window=4,
                                  max_window_layers=0), ["full_attention"] * 2),
    "no window": (dict(use_sliding_window=True, sliding_window=None, max_window_layers=0),
                  None),
    "a window of the context": (dict(use_sliding_window=True, sliding_window=CONTEXT,
                                     max_window_layers=0), None),
    # switched off: the layers are full, whatever max_window_layers says
    "switched off": (dict(use_sliding_window=False, sliding_window=4, max_window_layers=0),
                     None),
}


def qwen3_dir(directory, settings, layer_types):
    """A random transformers Qwen3 of `settings` saved in `directory`, its config.json giving
    `settings` as they are and `layer_types` (None: leaving them out, as the configs before
    transformers 5 do); the model as transformers reads that folder."""
    hf_model("qwen3", 120, num_key_value_heads=2, head_dim=16, **settings).save_pretrained(
        directory)
    # The settings as given, in config.json too: transformers writes a switched-off window as
    # null, where Qwen's own configs keep its size beside use_sliding_window false.
    config = {**json.loads((directory / "config.json").read_text()), **settings}
    config.pop("layer_types", None)
    if layer_types is not None:
        config["layer_types"] = layer_types
    (directory / "config.json").write_text(json.dumps(config))
    return AutoModelForCausalLM.from_pretrained(directory).eval()


@pytest.mark.parametrize("settings, layer_types", QWEN3_WINDOWS.values(), ids=list(QWEN3_WINDOWS))
def test_a_qwen3_whose_layers_transformers_does_not_slide_loads(tmp_path, settings,
                                                                layer_types):
    theirs = qwen3_dir(tmp_path, settings, layer_types)
    idx = tokens((1, 12))
    np.testing.assert_allclose(GPT.from_pretrained(tmp_path)(idx).data,
                               their_logits(theirs, idx), atol=ROUNDING)


@pytest.mark.parametrize("settings, layer_types, problem", [
    (dict(use_sliding_window=True, sliding_window=4, max_window_layers=1), None,
     "layer 1 attends through a sliding window of 4 positions"),
    (dict(use_sliding_window=True, sliding_window=4, max_window_layers=2),
     ["sliding_attention", "full_attention"],
     "layer 0 attends through a sliding window of 4 positions"),
    # without a window, transformers fails on a sliding layer
    (dict(use_sliding_window=False), ["full_attention", "sliding_attention"],
     "layer_types holds 'sliding_attention': only full attention is computed here"),
    (dict(use_sliding_window=False), ["full_attention", "linear_attention"],
     "layer_types holds 'linear_attention'"),
])
def test_a_qwen3_with_a_layer_that_slides_is_refused_in_one_line(tmp_path, settings,
                                                                 layer_types, problem):
    qwen3_dir(tmp_path, {}, None)
    config = {**json.loads((tmp_path / "config.json").read_text()), **settings}
    if layer_types is not None:
        config["layer_types"] = layer_types
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError) as error:
        GPT.from_pretrained(tmp_path)
    assert problem in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_qwen3s_sliding_layers_are_those_transformers_slides(tmp_path):
    # The refusal above is no false alarm: transformers' logits part from full attention's.
    settings = dict(use_sliding_window=True, sliding_window=4, max_window_layers=1)
    theirs = qwen3_dir(tmp_path / "sliding", settings, None)
    full = qwen3_dir(tmp_path / "full", {}, None)
    idx = tokens((1, 12))
    assert not np.allclose(their_logits(theirs, idx), their_logits(full, idx), atol=1e-3)
    np.testing.assert_allclose(GPT.from_pretrained(tmp_path / "full")(idx).data,
                               their_logits(full, idx), atol=ROUNDING)


@pytest.mark.parametrize("field, value, problem", [
    ("use_sliding_window", "true", "use_sliding_window must be true or false, got 'true'"),
    ("max_window_layers", "2", "max_window_layers must be a whole number, the first layer of "
                               "a sliding window, got '2'"),
    # refused by Qwen3Config whether the window is switched on or not
    ("sliding_window", "4", "sliding_window must be a whole number or null, got '4'")])
def test_qwen3s_window_settings_of_the_wrong_kind_are_refused(tmp_path, field, value, problem):
    qwen3_dir(tmp_path, dict(use_sliding_window=True, sliding_window=4, max_window_layers=2),
              None)
    config = json.loads((tmp_path / "config.json").read_text())
    switched = {"use_sliding_window": False} if field == "sliding_window" else {}
    (tmp_path / "config.json").write_text(json.dumps({**config, **switched, field: value}))
    with pytest.raises(PretrainedError, match=re.escape(problem)):
        GPT.from_pretrained(tmp_path)


def test_swish_is_silu_as_transformers_reads_it(llama_dir, tmp_path):
    # transformers' "swish" is torch's SiLU: the same model, which was refused
    from transformers.activations import ACT2CLS
    assert ACT2CLS["swish"] is torch.nn.SiLU
    config = json.loads((llama_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_act": "swish"}))
    shutil.copy(llama_dir / "model.safetensors", tmp_path)
    idx = tokens((1, 6))
    np.testing.assert_array_equal(GPT.from_pretrained(tmp_path)(idx).data,
                                  GPT.from_pretrained(llama_dir)(idx).data)


def test_qwen3s_biases_are_its_attentions_alone(tmp_path):
    """Qwen3's feed-forward has no biases, whatever a config.json says of mlp_bias (not one of
    Qwen3Config's fields): attention_bias alone is what differs from our one switch."""
    model = hf_model("qwen3", 120, num_key_value_heads=2, attention_bias=True)
    model.save_pretrained(tmp_path / "biased")
    with pytest.raises(PretrainedError, match="attention_bias is true, and Qwen3's feed-forward "
                                              "has no biases") as error:
        GPT.from_pretrained(tmp_path / "biased")
    assert "mlp_bias" not in str(error.value)
    model = hf_model("qwen3", 120, num_key_value_heads=2)
    model.save_pretrained(tmp_path / "plain")
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    (tmp_path / "plain" / "config.json").write_text(json.dumps({**config, "mlp_bias": True}))
    idx = tokens((1, 6))
    ours = GPT.from_pretrained(tmp_path / "plain")(idx).data
    np.testing.assert_allclose(ours, their_logits(model, idx), atol=ROUNDING)


def test_a_qwen3_config_without_num_key_value_heads_has_qwen3configs_default(tmp_path):
    """Left out, the field is Qwen3Config's default (32), as transformers reads it, not the
    number of query heads (Llama's): 64 query heads share 32 key-value heads here."""
    torch.manual_seed(0)
    model = perturbed(Qwen3ForCausalLM(Qwen3Config(
        vocab_size=120, hidden_size=32, intermediate_size=40, num_hidden_layers=1,
        num_attention_heads=64, head_dim=2, max_position_embeddings=CONTEXT)))
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["num_key_value_heads"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert theirs.config.num_key_value_heads == model.config.num_key_value_heads < 64
    idx = tokens((1, 6))
    ours = GPT.from_pretrained(tmp_path)(idx).data
    np.testing.assert_allclose(ours, their_logits(theirs, idx), atol=ROUNDING)


@pytest.mark.parametrize("kind, heads", [("llama", 4), ("qwen3", 32)])
def test_the_fields_a_config_json_leaves_out_are_the_config_classes_defaults(tmp_path, kind,
                                                                            heads):
    """A config.json of the sizes alone: the norms' eps, the context, RoPE's base, the tied
    head and the heads' shapes are LlamaConfig's or Qwen3Config's defaults, as transformers
    reads them (Qwen3's 32 key-value heads of 128 features need 32 query heads)."""
    sizes = dict(vocab_size=60, hidden_size=32, intermediate_size=40, num_hidden_layers=1,
                 num_attention_heads=heads)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": kind, **sizes}))
    torch.manual_seed(0)
    their_config = AutoConfig.from_pretrained(tmp_path)
    theirs = perturbed(AutoModelForCausalLM.from_config(their_config))
    theirs.save_pretrained(tmp_path / "saved")
    shutil.copy(tmp_path / "saved" / "model.safetensors", tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    attn = ours.decoder.layers[0].attn
    assert {m.eps for m in ours.modules() if isinstance(m, ta.nn.RMSNorm)} == {
        their_config.rms_norm_eps}
    assert ours.config["context"] == their_config.max_position_embeddings
    assert ours.config["rope_theta"] == their_config.rope_parameters["rope_theta"]
    assert ours.config["tie_weights"] == their_config.tie_word_embeddings
    assert (attn.d_head, ours.config["n_kv_head"] or heads) == (
        their_config.head_dim, their_config.num_key_value_heads)
    idx = tokens((1, 7), vocab=60)
    np.testing.assert_allclose(ours(idx).data, their_logits(theirs, idx), rtol=0, atol=ROUNDING)


def test_a_missing_size_is_named(llama_dir, tmp_path):
    config = json.loads((llama_dir / "config.json").read_text())
    del config["intermediate_size"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    shutil.copy(llama_dir / "model.safetensors", tmp_path)
    with pytest.raises(PretrainedError, match="intermediate_size is missing; a llama "
                                              "config.json gives vocab_size, hidden_size"):
        GPT.from_pretrained(tmp_path)


# --------------------------------------------------------------------------------------------
# Our GPT with the modern block, saved as a Llama or a Qwen3


SAVED = {   # our GPT's switches (besides RoPE, RMS norms and SwiGLU), and the format they make
    "llama, tied, gqa": (dict(n_kv_head=2, bias=False), "llama"),
    "llama, untied, biases, heads of 12, theta 500": (
        dict(n_kv_head=1, tie_weights=False, d_head=12, rope_theta=500.0), "llama"),
    "qwen3, tied, gqa, heads of 12": (dict(qk_norm=True, bias=False, n_kv_head=2, d_head=12),
                                      "qwen3"),
    "qwen3, untied, every head its own keys": (
        dict(qk_norm=True, bias=False, n_kv_head=4, tie_weights=False), "qwen3"),
}


def modern_gpt(**switches):
    """Our GPT with Llama's block and `switches`, its weights away from the initialisation
    (norms at 1, biases at 0) so that every one matters, its RMS norms' eps not the default
    (so it must be written to be read back)."""
    ta.manual_seed(0)
    model = GPT(120, CONTEXT, n_layer=2, n_head=4, d_model=32, d_ff=40, positions="rope",
                normalization="rmsnorm", activation="swiglu", **switches)
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data += 0.2 * rng.standard_normal(p.shape).astype(np.float32)
    for module in model.modules():
        if isinstance(module, ta.nn.RMSNorm):
            module.eps = 1e-5
    return model.eval()


@pytest.fixture(scope="module", params=list(SAVED))
def saved(request, tmp_path_factory):
    """(our GPT, the format it should be saved in, the directory its save_pretrained wrote)."""
    switches, model_type = SAVED[request.param]
    model = modern_gpt(**switches)
    directory = tmp_path_factory.mktemp("saved") / "new"          # made by save_pretrained
    model.save_pretrained(directory, bos_token_id=0, eos_token_id=1)
    return model, model_type, directory


def test_transformers_loads_our_modern_gpt_and_gives_our_logits(saved):
    model, model_type, directory = saved
    theirs, info = AutoModelForCausalLM.from_pretrained(directory, output_loading_info=True)
    assert all(not keys for keys in info.values()), info          # nothing missing or unused
    assert theirs.config.model_type == model_type
    assert (theirs.config.bos_token_id, theirs.config.eos_token_id) == (0, 1)
    for length in (1, CONTEXT):
        idx = tokens((2, length), seed=length)
        with ta.no_grad():
            np.testing.assert_allclose(their_logits(theirs.eval(), idx), model(idx).data,
                                       rtol=0, atol=ROUNDING)


def test_our_modern_gpt_saved_and_loaded_is_itself_exactly(saved):
    model, _, directory = saved
    again = GPT.from_pretrained(directory)
    assert {**again.config, "dropout": 0.0} == {**model.config, "dropout": 0.0}
    assert {m.eps for m in again.modules() if isinstance(m, ta.nn.RMSNorm)} == {1e-5}
    for (name, p), (name_again, q) in zip(model.named_parameters(), again.named_parameters()):
        assert name == name_again
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


MODERN = dict(positions="rope", normalization="rmsnorm", activation="swiglu")
UNSAVED = [   # a GPT no format expresses, and what the one line names
    (dict(normalization="rmsnorm"), "the nearest, GPT-2, cannot express "
                                    "normalization='rmsnorm' (it has 'layernorm')"),
    ({**MODERN, "activation": "relu2"}, "Llama, cannot express activation='relu2'"),
    ({**MODERN, "logit_softcap": 30.0}, "Llama, cannot express logit_softcap=30.0"),
    ({**MODERN, "rmsnorm_affine": False}, "Llama, cannot express rmsnorm_affine=False"),
    ({**MODERN, "norm": "post"}, "Llama, cannot express norm='post' (it has 'pre')"),
    ({**MODERN, "qk_norm": True}, "the nearest, Qwen3, cannot express bias=True (it has False)"),
]


@pytest.mark.parametrize("switches, problem", UNSAVED, ids=[p[-40:] for _, p in UNSAVED])
def test_a_gpt_that_no_format_expresses_is_refused_in_one_line(tmp_path, switches, problem):
    model = GPT(120, CONTEXT, n_layer=1, n_head=4, d_model=32, **switches)
    with pytest.raises(PretrainedError) as error:
        model.save_pretrained(tmp_path / "out")
    message = str(error.value)
    assert message.startswith("no Hugging Face format expresses this GPT: ") and problem in message
    assert "\n" not in message and not (tmp_path / "out").exists()


def test_a_llama_has_one_rms_norm_eps(tmp_path):
    model = modern_gpt()
    model.decoder.final_norm.eps = 1e-6
    with pytest.raises(PretrainedError, match=r"^Llama has one rms_norm_eps; this model's norms "
                                              r"use \[1e-06, 1e-05\]$"):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# On the command line


@pytest.fixture(scope="module")
def smollm_dir(tmp_path_factory):
    """A tiny SmolLM: its architecture and its tokenizer's layout, <|endoftext|> its id 0."""
    directory = tmp_path_factory.mktemp("smollm")
    tokenizer = train_tokenizer("smollm")
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer))
    vocab_size = len(tokenizer["model"]["vocab"])
    model = hf_model("llama", vocab_size, num_key_value_heads=2, tie_word_embeddings=True,
                     bos_token_id=0, eos_token_id=0)
    model.save_pretrained(directory)
    return directory, model, Tokenizer.from_file(str(directory / "tokenizer.json"))


def test_generate_reads_a_llama_directory_and_writes_what_transformers_writes(smollm_dir):
    directory, model, tokenizer = smollm_dir
    prompt = "the quick brown"
    result = tinyformer("generate", "--checkpoint", directory, "--prompt", prompt,
                        "--temperature", 0, "--max-new-tokens", 10)
    assert result.exit_code == 0, result.output
    ids = tokenizer.encode(prompt).ids
    with torch.no_grad():
        theirs = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)),
                                do_sample=False, max_new_tokens=10)[0, len(ids):].tolist()
    theirs = theirs[:theirs.index(0)] if 0 in theirs else theirs       # stops at eos, unshown
    assert result.output == prompt + tokenizer.decode(theirs) + "\n"
    _, ours, saved = load_model(directory)
    assert saved["model_config"]["activation"] == "swiglu" and ours.special_id(EOT) == 0


def test_generate_reads_a_chat_prompts_special_tokens_with_allow_special(smollm_dir):
    """With --allow-special, <|im_start|> and <|im_end|> in the prompt are the chat model's
    tokens, as transformers' tokenizer reads them; without it, plain text (the library's
    split_special_tokens)."""
    directory, model, _ = smollm_dir
    theirs = PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))
    prompt = "<|im_start|>user\nthe fox<|im_end|>\n<|im_start|>"
    for allow, split in ((["--allow-special"], False), ([], True)):
        ids = theirs(prompt, add_special_tokens=False, split_special_tokens=split).input_ids
        with torch.no_grad():
            written = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)),
                                     do_sample=False, max_new_tokens=8)[0, len(ids):].tolist()
        written = written[:written.index(0)] if 0 in written else written    # the end, unshown
        result = tinyformer("generate", "--checkpoint", directory, "--prompt", prompt, *allow,
                            "--temperature", 0, "--max-new-tokens", 8)
        assert result.exit_code == 0, result.output
        # (the prompt read as plain text is near the context: the standard error has a note)
        assert result.stdout == prompt + theirs.decode(written) + "\n", allow


def test_generate_ends_the_text_at_any_eos_token_id_of_the_generation_config(smollm_dir,
                                                                              tmp_path):
    # A chat model's generation_config.json names two ends (Qwen3's <|im_end|> and
    # <|endoftext|>); transformers' generate stops at either, and so must ours.
    directory, model, tokenizer = smollm_dir
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(directory / name, tmp_path)
    prompt = "the quick brown"
    ids = tokenizer.encode(prompt).ids

    def theirs(**eos):
        with torch.no_grad():
            return model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)),
                                  do_sample=False, max_new_tokens=10, **eos)[0, len(ids):].tolist()
    unstopped = theirs(eos_token_id=None)
    # An end after the first token, whose unstopped run writes something else next.
    end = next(t for i, t in enumerate(unstopped[:-1])
               if i >= 1 and t not in unstopped[:i] + [0] and unstopped[i + 1] != t)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [end, 0]}))
    stopped = theirs(eos_token_id=[end, 0])
    assert stopped[-1] == end and len(stopped) < len(unstopped)        # it ends early there
    for beam in ([], ["--beam", "1"]):       # one beam is greedy: the same text, the same end
        result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", prompt,
                            "--max-new-tokens", 10, *(beam or ["--temperature", 0]))
        assert result.exit_code == 0, result.output
        assert result.output == prompt + tokenizer.decode(stopped[:-1]) + "\n"
    for bad in ([-1], ["0"], True, 1.5):
        (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": bad}))
        assert_input_error(tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x"),
                           "generation_config.json: eos_token_id", "one token id or a list")
    # An id beyond the vocabulary (GPT2Config's 50256 beside a small one) can never be
    # written: it ends nothing, and the text still ends at the others.
    beyond = len(tokenizer.get_vocab()) + 5
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [beyond, end]}))
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", prompt,
                        "--max-new-tokens", 10, "--temperature", 0)
    assert result.output == prompt + tokenizer.decode(stopped[:-1]) + "\n"
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [100, 99]}))
    assert read_eos_ids(tmp_path, vocab_size=100) == [99]          # the first id beyond, too
    (tmp_path / "generation_config.json").write_text("{not json")
    assert_input_error(tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x"),
                       "generation_config.json: not a generation config",
                       "restore it from the model's page, or delete it")


def test_a_generation_config_without_an_end_ends_nothing_as_in_transformers(smollm_dir,
                                                                             tmp_path):
    # transformers takes generation_config.json as it is: an eos_token_id in config.json
    # alone ends nothing then. It ended the text here. An empty list of ends is no end to
    # transformers too: it was refused here.
    directory, model, tokenizer = smollm_dir
    for name in ("model.safetensors", "tokenizer.json"):
        shutil.copy(directory / name, tmp_path)
    prompt = "the quick brown"
    ids = tokenizer.encode(prompt).ids
    with torch.no_grad():
        unstopped = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)),
                                   do_sample=False, max_new_tokens=10,
                                   eos_token_id=None)[0, len(ids):].tolist()
    written = unstopped[:unstopped.index(0)] if 0 in unstopped else unstopped   # <|endoftext|>
    end = written[1]                                  # config.json's end, written early on
    config = json.loads((directory / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "eos_token_id": end}))
    for generation_config in ({"do_sample": False}, {"eos_token_id": []}):
        (tmp_path / "generation_config.json").write_text(json.dumps(generation_config))
        theirs = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
        with torch.no_grad():
            out = theirs.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)),
                                  do_sample=False, max_new_tokens=10,   # (its pad: eos[0])
                                  pad_token_id=0)[0, len(ids):].tolist()
        assert out == unstopped                       # past the end config.json names
        result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", prompt,
                            "--temperature", 0, "--max-new-tokens", 10)
        assert result.exit_code == 0, result.output
        assert result.output == prompt + tokenizer.decode(written) + "\n"


def test_generate_refuses_an_unsupported_llama_in_one_line(smollm_dir, tmp_path):
    directory, _, _ = smollm_dir
    config = json.loads((directory / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    shutil.copy(directory / "model.safetensors", tmp_path)
    shutil.copy(directory / "tokenizer.json", tmp_path)
    assert_input_error(tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x"),
                       "rope_type 'yarn': a scaled RoPE")
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    (tmp_path / "tokenizer.json").unlink()
    result = tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x")
    assert_input_error(result, "has a model but no tokenizer", "holds it in tokenizer.json")
    assert "vocab.json" not in result.output              # GPT-2's files, not on its page
    data = edited(train_tokenizer("smollm"), sentencepiece_style)
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    assert_input_error(tinyformer("generate", "--checkpoint", tmp_path, "--prompt", "x"),
                       "model byte_fallback is true")


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_export_of_a_hugging_face_directory_is_refused_before_reading_it(smollm_dir, tmp_path,
                                                                         model_type):
    # It is in that format already: an export, from the model, would lose its other files.
    # Refused from its config.json alone: the weights (here damaged) are never read.
    directory, _, _ = smollm_dir
    config = json.loads((directory / "config.json").read_text())
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config,
                                                             "model_type": model_type}))
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"not weights")
    result = tinyformer("export", "--checkpoint", tmp_path / "hf", "--out", tmp_path / "out")
    assert_input_error(result, f"{str(tmp_path / 'hf')!r} is in Hugging Face's format already "
                               f"(a {model_type} model): use it as it is, or copy it; export "
                               f"writes the runs of tinyformer train")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("layout", ["smollm", "qwen"])
def test_tokenize_shows_a_llama_tokenizers_pieces_as_it_shows_its_own(tmp_path, layout):
    # It doubled the backslash of each \xNN: a byte cut from a character read as text.
    from test_cli_tokenize import read_frame
    from tinyformer.tokenizers import split_shown
    (tmp_path / "tokenizer.json").write_text(json.dumps(train_tokenizer(layout)))
    tok = read_tokenizer_json(tmp_path)
    for text in ["\u65e5\u672c\u8a9e \U0001F600 C:\\new", "a|b\\|c", "\u0085 \x85"]:
        ids = tok.encode(text)
        assert read_frame(split_shown(tok, ids)) == [tok.id_to_bytes(i) for i in ids]


@pytest.mark.parametrize("vocab_size, said", [
    (1e12, "must be a whole number >= 1, got 1000000000000.0"),
    (10**12, "must be at most"), ("300", "got '300', a text")], ids=["float", "huge", "text"])
def test_a_model_config_vocab_size_that_no_model_has_is_refused_for_its_tokenizer(
        tmp_path, vocab_size, said):
    # The tokenizer alone is read (tokenize --tokenizer DIR), padded to the model's vocabulary:
    # the size is checked as the model's reader checks it, before anything that size is made.
    (tmp_path / "tokenizer.json").write_text(json.dumps(train_tokenizer("qwen")))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama",
                                                      "vocab_size": vocab_size}))
    with address_space_capped(1 << 30), pytest.raises(ValueError) as error:
        load_tokenizer_at(tmp_path)
    assert str(error.value).startswith(f"vocab_size in {tmp_path / 'config.json'} ")
    assert said in str(error.value) and "\n" not in str(error.value)


def test_train_refuses_a_models_folder_whose_tokenizer_it_cannot_save(tmp_path):
    # A model's folder gives its tokenizer.json's tokenizer as the library reads it: the run
    # tokenised its corpus with it, then failed to save it, an internal error (exit 1).
    model = tmp_path / "model"
    hf_model("llama", 400).save_pretrained(model)
    (model / "tokenizer.json").write_text(json.dumps(train_tokenizer("smollm")))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    trained = tinyformer("train", "--tokenizer", model, "--corpus", corpus, "--iters", 1,
                         "--out", tmp_path / "run")
    assert_input_error(trained, "tokenizer.json", "a run saves its tokenizer")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("normalized", [False, True])
def test_added_tokens_that_take_the_whitespace_beside_them_split_as_the_library_splits(
        tmp_path, normalized):
    """An added token with lstrip (RoBERTa's <mask>) or rstrip takes the whitespace before,
    or after, it into its id: Unicode's White_Space, as Rust's (not \\x1c, which Python's
    isspace takes), only back to the token before and on to the token after (" <y>" begins
    with the space that <sep> would take). Special or not, found in the text as
    written or (normalized) in the normalised text."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["the kite is red. the boat is green. " * 20], trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=normalized),
                            AddedToken("<sep>", rstrip=True, normalized=normalized),
                            AddedToken(" <y>", normalized=normalized)])   # begins with a space
    tok.add_tokens([AddedToken("[x]", lstrip=True, rstrip=True, normalized=normalized)])
    tok.save(str(tmp_path / "tokenizer.json"))
    ours = read_tokenizer_json(tmp_path)
    assert (ours.lstrip_tokens, ours.rstrip_tokens) == (["<mask>"], ["<sep>"])
    texts = ["the kite is <mask>.", "is  \t<mask><mask> <mask>", "<mask> x", " <sep>  red",
             "a [x] b  [x]", "a\u3000<mask>\x1c<mask>", "<sep> <mask>", "<sep>\n\n[x] <mask>",
             "<sep> <y>", "a <y><sep>  <y> b"]
    for text in texts:
        ids = tok.encode(text).ids
        assert ours.encode(text, allow_special=True) == ids, text
        assert ours.decode(ids) == tok.decode(ids, skip_special_tokens=False)
    tok.encode_special_tokens = True             # the special ones as plain text, [x] still not
    for text in texts:
        assert ours.encode(text) == tok.encode(text).ids, text
