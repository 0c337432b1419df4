"""GPT-2's tokenizer files: pretrained.py writes and reads a BPETokenizer as them
(save_gpt2_tokenizer, load_gpt2_tokenizer), and it then encodes and decodes as transformers'
GPT-2 tokenizer does, on any text. Everything is built here; nothing is downloaded.

Unicode versions: GPT-2's pattern classes characters as letters, numbers, spaces or others,
by the Unicode tables of each regex engine. tokenizers 0.23 (Rust, which transformers uses)
knows Unicode 16, `regex` 2026.5 knows Unicode 17. Over all code points they class 4,657
differently: characters unknown to Python 3.11's tables, and as far as we checked the letters
new in Unicode 17 (U+10940 is a letter to `regex`, an unassigned "other" to tokenizers). So
the strings here leave out the characters that Python's own tables (unicodedata) do not know
yet but `regex` calls a letter, number or space: characters newer than Python's Unicode,
whose class depends on each library's version.
"""

import json
import re
import unicodedata

import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tinyformer.pretrained import load_gpt2_tokenizer, read_tokenizer_json, save_gpt2_tokenizer
from tinyformer.tokenizers import (MAX_SPECIAL_TOKEN_CHARACTERS, BPETokenizer, CharTokenizer,
                                   bytes_to_unicode, load_tokenizer, pre_split)

import transformers  # noqa: E402  (a test extra)
from tokenizers.pre_tokenizers import ByteLevel  # noqa: E402  (transformers brings tokenizers)

EOT = "<|endoftext|>"
TEXT = (
    "The quick brown fox jumps over the lazy dog. Don't you think they're right? We've "
    "been there, I'm sure, and you'll see what he'd say. It's 12:30 and 4,500 people came.\n"
    "  Indented line\twith a tab.\r\nNaïve café owners in Zürich eat crème brûlée; "
    "東京 and 北京 are cities 😀👍. Ελληνικά, русский, עברית, العربية. x² + ½ = Ⅻ?\n\n"
    + EOT + "\n"
) * 12 + "the end of the text " * 30
SPELLING = bytes_to_unicode()


def new_characters(c):
    """Characters Python's tables do not know but `regex` classes (see the top of the file)."""
    return unicodedata.category(c) == "Cn" and regex.match(r"[\p{L}\p{N}\s]", c) is not None


CHARACTERS = st.characters(exclude_categories=["Cs"]).filter(lambda c: not new_characters(c))
PIECES = [EOT, EOT + EOT, " ", "  ", "   ", "\n", "\n\n", "\r\n", "\t", " \n ", "\u00a0",
          "\u3000", "\u2028", "\x85", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S",
          "don't", "They'll", "12", " 345", "2024", "²", "½", "Ⅻ", "x²", "³⁄₄", "the", " cat",
          "_", "東京", "😀", "e\u0301", "<|", "|>", "<|endoftext", "Ġ", "Ā"]
TEXTS = st.one_of(
    st.text(CHARACTERS),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(CHARACTERS, max_size=3)),
             max_size=12).map("".join))
EXAMPLES = ["Hello world's 42!  ok\r\n\tx_y", "a<|endoftext|>b <|endoftext|> c<|endoftext|>",
            "x²½Ⅻ ²½ 12³ Ⅻ.", "  \n\n  x   y\t\t", "I'M 'RE 're'll"]


@pytest.fixture(scope="module")
def ours():
    tok = BPETokenizer.train(TEXT, 256 + 200 + 1, special_tokens=[EOT])
    assert tok.special_tokens == [EOT] and tok.vocab_size == 457
    return tok


@pytest.fixture(scope="module")
def saved(ours, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ours")
    save_gpt2_tokenizer(ours, directory)
    return directory


@pytest.fixture(scope="module")
def theirs(saved):
    """transformers' tokenizers of our files, each way it loads them. In transformers 5,
    GPT2Tokenizer is the fast one (Rust tokenizers), and it takes the files' paths as `vocab`
    and `merges` (`vocab_file=` and `merges_file=` are accepted but give an empty vocabulary)."""
    return {
        "AutoTokenizer": transformers.AutoTokenizer.from_pretrained(saved),
        "GPT2Tokenizer.from_pretrained": transformers.GPT2Tokenizer.from_pretrained(saved),
        "GPT2Tokenizer(vocab, merges)": transformers.GPT2Tokenizer(
            vocab=str(saved / "vocab.json"), merges=str(saved / "merges.txt")),
    }


def gpt2_shaped_files(tok, directory):
    """Write `tok` as OpenAI's GPT-2 files are laid out: ids 0-255 in bytes_to_unicode's order
    ("!" is id 0), then merge k as id 256 + k, then <|endoftext|> last. Returns its ids:
    our id -> GPT-2's."""
    gpt2_order = list(SPELLING)                          # id -> byte
    new_id = {b: i for i, b in enumerate(gpt2_order)}    # our id (= byte) -> its id here
    new_id.update({i: i for i in range(256, tok.vocab_size)})
    spell = [SPELLING[b] for b in range(256)]
    for a, b in tok.merges:
        spell.append(spell[a] + spell[b])
    vocab = {spell[i]: new_id[i] for i in range(len(spell))}
    vocab[EOT] = len(spell)
    directory.mkdir(exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{spell[a]} {spell[b]}\n" for a, b in tok.merges), "utf-8")
    return new_id


# -- pre-splitting ----------------------------------------------------------------------------

@settings(max_examples=300)
@given(TEXTS)
@example("x²½Ⅻ 12³ ¼Ⅳ")
def test_pre_split_gives_the_chunks_of_transformers_gpt2(s):
    # transformers' ByteLevel pre-tokenizer spells each chunk with bytes_to_unicode.
    chunks = ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str(s)
    assert ["".join(SPELLING[b] for b in chunk.encode()) for chunk in pre_split(s)] == \
        [chunk for chunk, _ in chunks]


def test_pre_split_counts_non_decimal_numbers_as_numbers():
    assert pre_split("x²½Ⅻ 12³") == ["x", "²½Ⅻ", " 12³"]


# -- our files, read by transformers ----------------------------------------------------------

@settings(max_examples=200)
@given(TEXTS)
@example(TEXT)
def test_transformers_encodes_and_decodes_our_files_as_we_do(ours, theirs, s):
    ids = ours.encode(s, allow_special=True)
    for name, tok in theirs.items():
        assert tok.encode(s) == ids, name          # and so adds no BOS or EOS
        assert tok.decode(ids) == ours.decode(ids) == s, name


@settings(max_examples=200)
@given(st.lists(st.integers(0, 456), max_size=12))
def test_any_ids_decode_as_in_transformers(ours, theirs, ids):
    # Ids cut from a model's samples may split a character's bytes: both replace them with
    # U+FFFD the same way.
    assert theirs["AutoTokenizer"].decode(ids) == ours.decode(ids)


@settings(max_examples=100)
@given(st.lists(st.one_of(st.integers(0, 456), st.just(456)), max_size=12))
@example([195, 456, 169, 456, 72])       # a character's bytes with <|endoftext|> between them
def test_any_ids_decode_without_special_tokens_as_in_transformers(ours, theirs,
                                                                 transformers_json, ids):
    expected = theirs["AutoTokenizer"].decode(ids, skip_special_tokens=True)
    assert EOT not in expected
    # Our BPE, and the tokenizer.json that transformers saved of it, read as any other's is.
    for tok in (ours, transformers_json):
        assert tok.decode(ids, skip_special_tokens=True) == expected


def test_transformers_sees_the_special_token_and_its_settings(theirs):
    tok = theirs["AutoTokenizer"]
    assert type(tok).__name__ == "GPT2Tokenizer" and len(tok) == 457
    assert tok.eos_token == tok.bos_token == EOT and tok.convert_tokens_to_ids(EOT) == 456
    assert tok.clean_up_tokenization_spaces is False


def test_saving_keeps_other_files_and_makes_the_directory(ours, tmp_path):
    directory = tmp_path / "model" / "tokenizer"
    save_gpt2_tokenizer(ours, directory)
    (directory / "weights.bin").write_bytes(b"w")
    save_gpt2_tokenizer(ours, directory)
    assert sorted(p.name for p in directory.iterdir()) == \
        ["merges.txt", "tokenizer_config.json", "vocab.json", "weights.bin"]
    assert (directory / "merges.txt").read_text("utf-8").startswith("#version: 0.2\n")


def test_saving_beside_another_tokenizers_tokenizer_json_is_refused(
        ours, saved_by_transformers, tmp_path):
    """transformers reads a tokenizer.json in place of vocab.json and merges.txt: saved beside
    another tokenizer's, ours would be written and never read. One of this tokenizer is fine."""
    directory = tmp_path / "tokenizer"
    directory.mkdir()
    (directory / "tokenizer.json").write_bytes(
        (saved_by_transformers / "tokenizer.json").read_bytes())
    save_gpt2_tokenizer(ours, directory)                            # the same tokenizer
    assert transformers.AutoTokenizer.from_pretrained(directory).encode(EXAMPLES[0]) == \
        ours.encode(EXAMPLES[0])
    other = BPETokenizer.train("a dog ran in the park. " * 20, 270, special_tokens=[EOT])
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    with pytest.raises(ValueError) as error:
        save_gpt2_tokenizer(other, directory)
    assert str(error.value) == (f"{directory / 'tokenizer.json'} holds another tokenizer, "
                                f"which transformers reads in place of the vocab.json and "
                                f"merges.txt that this would write beside it; remove it, or "
                                f"save into another directory")
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before
    (directory / "tokenizer.json").unlink()
    save_gpt2_tokenizer(other, directory)
    assert transformers.AutoTokenizer.from_pretrained(directory).encode("a dog ran") == \
        other.encode("a dog ran")


def test_specials_other_than_endoftext_are_added_tokens_and_nothing_else(tmp_path):
    tok = BPETokenizer.train(TEXT, 300, special_tokens=["<pad>", "<eos>"])
    save_gpt2_tokenizer(tok, tmp_path)
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    s = "a<eos><pad><|endoftext|> b<eos>"
    assert len(auto) == 300 and auto.encode(s) == tok.encode(s, allow_special=True)


def test_saving_refuses_two_ids_for_one_token(tmp_path):
    a, b, c = b"abc"
    tok = BPETokenizer([(a, b), (256, c), (b, c), (a, 258)])      # "abc" twice: 257 and 259
    with pytest.raises(ValueError, match=r"^cannot save in GPT-2's format: 2 ids are the token "
                                         r"'abc'"):
        save_gpt2_tokenizer(tok, tmp_path)


@pytest.mark.parametrize("special, theirs", [("<|café|>", "<|caf\ufffd|>"),
                                              ("<Ã©>", "<é>"), ("«eos»", "\ufffdeos\ufffd")])
def test_saving_refuses_a_special_token_that_transformers_would_decode_otherwise(
        tmp_path, special, theirs):
    # Every character of these spells a byte in GPT-2's vocabulary, and transformers decodes
    # such a token as those bytes, special or not: saved, it came back otherwise from decode.
    tok = BPETokenizer.train("ab ab", 259, special_tokens=["<eos>", special])
    said = (f"cannot save in GPT-2's format: transformers would decode special token "
            f"'{special}' as '{theirs}', reading each character as the byte it spells in "
            f"GPT-2's vocabulary; name it with ASCII characters alone")
    with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
        save_gpt2_tokenizer(tok, tmp_path)
    assert not any(tmp_path.iterdir())
    # With a character that spells no byte (a space, "東"), transformers reads it as its text.
    for kept in (f"{special} ", f"東{special}"):
        tok = BPETokenizer.train("ab ab", 258, special_tokens=[kept])
        save_gpt2_tokenizer(tok, tmp_path / "saved")
        ids = tok.encode(f"a{kept}b", allow_special=True)
        assert transformers.AutoTokenizer.from_pretrained(tmp_path / "saved").decode(ids) == \
            tok.decode(ids) == f"a{kept}b"


@pytest.mark.parametrize("files", ["vocab.json", "tokenizer.json"])
@pytest.mark.parametrize("special, theirs", [("<|café|>", "<|caf\ufffd|>"), ("<Ã©>", "<é>"),
                                              ("<|café|> ", None)])
def test_loading_refuses_a_special_token_that_transformers_decodes_otherwise(
        tmp_path, files, special, theirs):
    # As saving refuses it: transformers decodes a token whose characters all spell bytes in
    # GPT-2's vocabulary as those bytes, a special token too, and ours decoded its text. With
    # a character that spells no byte (a space), both decode its text, and it loads.
    tok = BPETokenizer.train("ab ab", 259, special_tokens=["<eos>", "<|x|>"])
    save_gpt2_tokenizer(tok, tmp_path / "ascii")
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        text = (tmp_path / "ascii" / name).read_text("utf-8")
        (folder / name).write_text(text.replace("<|x|>", json.dumps(special)[1:-1]), "utf-8")
    if files == "tokenizer.json":                   # as transformers 5 saves a tokenizer
        transformers.AutoTokenizer.from_pretrained(folder).save_pretrained(tmp_path / "saved")
        folder = tmp_path / "saved"
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    ids = hf.encode(f"a{special}b")
    assert ids == tok.encode("a<|x|>b", allow_special=True)          # one token to both
    if theirs is None:
        assert load_gpt2_tokenizer(folder).decode(ids) == hf.decode(ids) == f"a{special}b"
        return
    assert hf.decode(ids) == f"a{theirs}b"
    instead = ("read_tokenizer_json reads its folder as transformers does, but cannot save it"
               if files == "tokenizer.json"
               else "rename the token in the files with ASCII characters alone")
    with pytest.raises(ValueError) as info:
        load_gpt2_tokenizer(folder)
    assert str(info.value) == (f"{folder / files}: transformers decodes special token "
                               f"'{special}' as '{theirs}', reading each character as the "
                               f"byte it spells in GPT-2's vocabulary, where tinyformer's BPE "
                               f"decodes a special token as its text; {instead}")
    if files == "tokenizer.json":
        assert read_tokenizer_json(folder).decode(ids) == hf.decode(ids)


# -- GPT-2-shaped files, read by us -----------------------------------------------------------

@pytest.fixture(scope="module")
def gpt2_shaped(ours, tmp_path_factory):
    directory = tmp_path_factory.mktemp("gpt2")
    new_id = gpt2_shaped_files(ours, directory)
    return (load_gpt2_tokenizer(directory),
            transformers.GPT2Tokenizer(vocab=str(directory / "vocab.json"),
                                       merges=str(directory / "merges.txt")),
            new_id)


def test_gpt2_shaped_files_keep_gpt2s_ids(ours, gpt2_shaped):
    tok, _, new_id = gpt2_shaped
    assert tok.encode("!") == [0] and tok.encode(" ") == [new_id[ord(" ")]] == [220]
    assert tok.encode(TEXT, allow_special=True) == \
        [new_id.get(i, i) for i in ours.encode(TEXT, allow_special=True)]
    assert tok.special_tokens == [EOT] and tok.token_to_id(EOT) == 456


@settings(max_examples=200)
@given(TEXTS)
def test_gpt2_shaped_files_encode_and_decode_as_in_transformers(gpt2_shaped, s):
    tok, theirs, _ = gpt2_shaped
    ids = tok.encode(s, allow_special=True)
    assert theirs.encode(s) == ids
    assert theirs.decode(ids) == tok.decode(ids) == s


def test_round_trips_through_both_formats(ours, gpt2_shaped, saved, tmp_path):
    loaded = load_gpt2_tokenizer(saved)
    assert (loaded.merges, loaded.special_tokens) == (ours.merges, ours.special_tokens)
    tok = gpt2_shaped[0]
    save_gpt2_tokenizer(tok, tmp_path / "again")
    tok.save(tmp_path / "tok.json")                 # our JSON keeps GPT-2's order of bytes
    for loaded in (load_gpt2_tokenizer(tmp_path / "again"),
                   load_tokenizer(tmp_path / "tok.json")):
        assert loaded.encode(TEXT, allow_special=True) == tok.encode(TEXT, allow_special=True)
        assert loaded.special_tokens == tok.special_tokens


def test_our_json_is_unchanged_and_old_files_load(ours, tmp_path):
    path = tmp_path / "tok.json"
    ours.save(path)
    assert sorted(json.loads(path.read_text())) == ["merges", "special_tokens", "type",
                                                    "version"]          # no byte_order
    path.write_text('{"type": "bpe", "merges": [[97, 98]], "special_tokens": ["<eos>"]}')
    assert load_tokenizer(path).encode("abab<eos>", allow_special=True) == [256, 256, 257]
    path.write_text('{"type": "bpe", "merges": [], "special_tokens": [], "byte_order": [0]}')
    with pytest.raises(ValueError, match=r"tok.json: not a valid bpe tokenizer file: byte_order "
                                         r"must list each of the bytes 0-255 once$"):
        load_tokenizer(path)


def test_added_tokens_of_tokenizer_config_come_after_vocab_json(ours, tmp_path):
    gpt2_shaped_files(ours, tmp_path)
    # Listed in any order: each takes the id it is given.
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {
        "458": {"content": "<mask>", "special": True}, "457": {"content": "<pad>", "special": True},
        "456": {"content": EOT}}}))
    tok = load_gpt2_tokenizer(tmp_path)
    assert tok.special_tokens == [EOT, "<pad>", "<mask>"]
    assert tok.encode("<pad><mask>", allow_special=True) == [457, 458]


def test_added_tokens_json_is_read_where_tokenizer_config_lists_none(ours, tmp_path):
    """transformers, as before 4.34 and still where tokenizer_config.json has no
    "added_tokens_decoder", takes added tokens from added_tokens.json, special where the files
    beside it name them so; they were ignored, and "<pad>" encoded as plain text."""
    gpt2_shaped_files(ours, tmp_path)
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<pad>": 457, "<sep>": 458}))
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({
        "pad_token": "<pad>", "additional_special_tokens": ["<sep>"]}))
    text = f"the<pad>end<sep> of{EOT}"
    tok = load_gpt2_tokenizer(tmp_path)
    assert tok.special_tokens == [EOT, "<pad>", "<sep>"]
    assert tok.encode(text, allow_special=True) == \
        transformers.GPT2Tokenizer.from_pretrained(tmp_path).encode(text)
    # One no file names special, which transformers finds in any text, is refused.
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<pad>"}))
    with pytest.raises(ValueError, match=r"added_tokens.json: added token '<sep>' is not "
                                         r"special; tinyformer reads only special added tokens$"):
        load_gpt2_tokenizer(tmp_path)


def test_a_special_token_too_long_to_find_is_refused(ours, tmp_path):
    # Finding special tokens compiles a pattern of them, over 100 times their size: one of
    # megabytes would fill the memory. The folder is named, and the token cut short.
    gpt2_shaped_files(ours, tmp_path)
    long = "<|" + "x" * MAX_SPECIAL_TOKEN_CHARACTERS + "|>"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {
        "456": {"content": EOT}, "457": {"content": long, "special": True}}}))
    with pytest.raises(ValueError, match=f"special token '<\\|xxxx.*\\.\\.\\.' \\({len(long):,} "
                                         f"characters\\) is too long") as info:
        load_gpt2_tokenizer(tmp_path)
    assert str(tmp_path) in str(info.value) and len(str(info.value)) < 500


# -- one-line errors that name the file -------------------------------------------------------

def garble(directory, name, text):
    (directory / name).write_text(text, "utf-8")


@pytest.mark.parametrize("name, text, message", [
    ("vocab.json", None, "vocab.json: cannot read it"),
    ("merges.txt", None, "merges.txt: cannot read it"),
    ("vocab.json", "{not json", "vocab.json: not a GPT-2 tokenizer file"),
    ("vocab.json", '{"a": 1' + "0" * 5000 + "}",                # more digits than Python reads
     r"vocab.json: not a GPT-2 tokenizer file \(Exceeds the limit \(4300 digits\)"),
    ("vocab.json", "[1, 2]", "vocab.json: expected a JSON object of token -> id"),
    ("vocab.json", '{"a": 0, "b": 2}', "vocab.json: the ids must be 0, 1, 2, ... each once"),
    ("vocab.json", json.dumps({str(i): i for i in range(300)}),
     "vocab.json: id 10 is '10', where ids 0-255 must be the 256 single bytes"),
    ("merges.txt", "Ġ\n", r"merges.txt, line 1: 'Ġ' is not two tokens"),
    ("merges.txt", "#version: 0.2\nt Ġ\n",
     r"merges.txt, line 2: 't Ġ' makes merge 0, so the vocabulary should give 'tĠ' the id 256, "
     r"not None"),
    ("tokenizer_config.json", "{", "tokenizer_config.json: not a GPT-2 tokenizer file"),
    ("tokenizer_config.json",
     '{"added_tokens_decoder": {"600": {"content": "x", "special": true}}}',
     "tokenizer_config.json: added token 'x' has id 600"),
    ("tokenizer_config.json", '{"added_tokens_decoder": [1]}', "tokenizer_config.json: expected"),
    # A stranger's megabytes-long line is named cut short, in a line that can be read.
    ("merges.txt", "x" * 100_000 + " y\n",
     r"merges.txt, line 1: 'x{40}\.\.\.' \(100,002 characters\) is not two"),
])
def test_bad_files_give_one_line_errors_naming_the_file(ours, tmp_path, name, text, message):
    save_gpt2_tokenizer(ours, tmp_path)
    if text is None:
        (tmp_path / name).unlink()
    else:
        garble(tmp_path, name, text)
    with pytest.raises(ValueError) as info:
        load_gpt2_tokenizer(tmp_path)
    assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)
    assert regex.search(message, str(info.value)), str(info.value)[:300]
    assert len(str(info.value)) < 500


@pytest.mark.parametrize("kept", [0, 1, 100])
@pytest.mark.parametrize("with_config", [True, False])
def test_a_merges_txt_cut_short_at_a_line_end_is_named(ours, tmp_path, kept, with_config):
    """An empty or truncated merges.txt once loaded: the vocabulary's later merged tokens
    were read as special tokens, and the text was never merged into them."""
    save_gpt2_tokenizer(ours, tmp_path)
    if not with_config:                             # as `hf download` of the two files leaves
        (tmp_path / "tokenizer_config.json").unlink()
    lines = (tmp_path / "merges.txt").read_text("utf-8").splitlines(keepends=True)
    garble(tmp_path, "merges.txt", "".join(lines[:1 + kept]))         # "#version" and `kept`
    with pytest.raises(ValueError) as info:
        load_gpt2_tokenizer(tmp_path)
    assert str(info.value).startswith(
        f"{tmp_path / 'merges.txt'} ends after {kept} merges, but {tmp_path / 'vocab.json'} "
        f"goes on with id {256 + kept} "), str(info.value)
    assert str(info.value).endswith("the merges are cut short; fetch the files again, both "
                                    "from the same model page")


# How a folder may name <eos> special to transformers, beside vocab.json (or tokenizer.json)
# that has it after the merges: {file: its settings}.
NAMED_SPECIAL = {
    "eos_token": {"tokenizer_config.json": {"eos_token": "<eos>"}},
    "AddedToken": {"tokenizer_config.json": {"eos_token": {"content": "<eos>",
                                                          "__type": "AddedToken"}}},
    "additional_special_tokens": {"tokenizer_config.json": {
        "additional_special_tokens": ["<eos>"]}},
    "special_tokens_map.json": {"special_tokens_map.json": {"eos_token": "<eos>"}},
    "extra_special_tokens": {"tokenizer_config.json": {"extra_special_tokens": {"end": "<eos>"}}},
}


@pytest.mark.parametrize("files", ["vocab.json", "tokenizer.json"])
@pytest.mark.parametrize("named", [None, *NAMED_SPECIAL])
def test_a_token_after_the_merges_is_special_only_where_transformers_takes_it_so(
        tmp_path, files, named):
    """A token after the merges was read as special whatever the files said; transformers'
    GPT2Tokenizer takes it so only where a file names it (or it is <|endoftext|>), and
    otherwise reads it as plain text, which no merge makes: then it is refused, saying so."""
    tok = BPETokenizer.train(TEXT, 256 + 40 + 1, special_tokens=["<eos>"])
    save_gpt2_tokenizer(tok, tmp_path / "ours")
    folder = tmp_path / "folder"
    if files == "vocab.json":
        save_gpt2_tokenizer(tok, folder)
        (folder / "tokenizer_config.json").unlink()    # which names it in added_tokens_decoder
    else:
        transformers.AutoTokenizer.from_pretrained(tmp_path / "ours").save_pretrained(folder)
        data = json.loads((folder / "tokenizer.json").read_text("utf-8"))
        (folder / "tokenizer.json").write_text(json.dumps({**data, "added_tokens": []}), "utf-8")
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            (folder / name).unlink(missing_ok=True)
    for name, naming in NAMED_SPECIAL.get(named, {}).items():
        (folder / name).write_text(json.dumps(naming), "utf-8")
    text = "the end<eos> of the text<eos>"
    theirs = transformers.GPT2Tokenizer.from_pretrained(folder).encode(text)
    if named is not None:
        assert load_gpt2_tokenizer(folder).encode(text, allow_special=True) == theirs
        assert theirs.count(tok.special_id("<eos>")) == 2
        return
    assert tok.special_id("<eos>") not in theirs                          # plain text to them
    with pytest.raises(ValueError) as info:
        load_gpt2_tokenizer(folder)
    assert str(info.value) == (f"{folder / files}: id {tok.special_id('<eos>')} '<eos>' comes "
                               f"after the merges, but no file names it a special token, so "
                               f"transformers reads it as plain text; name it in "
                               f"tokenizer_config.json's \"additional_special_tokens\" (or "
                               f"fetch the model's tokenizer_config.json)")


@pytest.mark.parametrize("files", ["vocab.json", "tokenizer.json"])
def test_a_special_token_trained_first_is_named_with_what_to_do(tmp_path, files):
    from tokenizers import ByteLevelBPETokenizer
    trained = ByteLevelBPETokenizer()
    trained.train_from_iterator([TEXT], vocab_size=300, special_tokens=[EOT],
                                show_progress=False)
    if files == "vocab.json":
        trained.save_model(str(tmp_path))
    else:
        trained.save(str(tmp_path / files))
    with pytest.raises(ValueError, match=f"{files}: id 0 is '<\\|endoftext\\|>', where ids 0-255 "
                                         f"must be the 256 single bytes.* train without them, "
                                         f"then add them with add_special_tokens"):
        load_gpt2_tokenizer(tmp_path)


@pytest.mark.parametrize("setting", ["single_word"])
def test_an_added_token_matched_otherwise_in_tokenizer_config_is_refused(ours, tmp_path, setting):
    # transformers would match <|endoftext|> only as a word: other ids than ours.
    save_gpt2_tokenizer(ours, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text("utf-8"))
    config["added_tokens_decoder"]["456"][setting] = True
    garble(tmp_path, "tokenizer_config.json", json.dumps(config))
    with pytest.raises(ValueError, match=f"tokenizer_config.json: added token "
                                         f"'<\\|endoftext\\|>' has {setting}: "):
        load_gpt2_tokenizer(tmp_path)


STRIPPED = ["a <|endoftext|> b", "a  \t<|endoftext|>\n\nb", "<|endoftext|> <|endoftext|>x",
            " \u3000<|endoftext|>\x1c", "a<|endoftext|>  "]


@pytest.mark.parametrize("sides", [["lstrip"], ["rstrip"], ["lstrip", "rstrip"]])
def test_an_added_token_that_takes_the_whitespace_beside_it_is_read_as_transformers_reads_it(
        ours, saved_by_transformers, tmp_path, sides):
    """lstrip and rstrip (RoBERTa's <mask> has lstrip) take the whitespace before, or after,
    the token into it: in tokenizer_config.json and in a tokenizer.json, read by
    load_gpt2_tokenizer and read_tokenizer_json, the ids are transformers' ids."""
    save_gpt2_tokenizer(ours, tmp_path / "config")
    config = json.loads((tmp_path / "config" / "tokenizer_config.json").read_text("utf-8"))
    data = their_tokenizer_json(saved_by_transformers)
    for side in sides:
        config["added_tokens_decoder"]["456"][side] = True
        data["added_tokens"][0][side] = True
    garble(tmp_path / "config", "tokenizer_config.json", json.dumps(config))
    (tmp_path / "json").mkdir()
    garble(tmp_path / "json", "tokenizer.json", json.dumps(data))
    for folder, read in [("config", load_gpt2_tokenizer), ("json", load_gpt2_tokenizer),
                         ("json", read_tokenizer_json)]:
        mine = read(tmp_path / folder)
        theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / folder)
        for text in STRIPPED:
            ids = mine.encode(text, allow_special=True)
            assert ids == theirs.encode(text, add_special_tokens=False), (folder, text)
            assert mine.decode(ids) == theirs.decode(ids)
        # saved again in GPT-2's files, the token still takes its whitespace
        if read is load_gpt2_tokenizer:
            save_gpt2_tokenizer(mine, tmp_path / f"again-{folder}")
            again = load_gpt2_tokenizer(tmp_path / f"again-{folder}")
            assert [again.encode(text, allow_special=True) for text in STRIPPED] == \
                [mine.encode(text, allow_special=True) for text in STRIPPED]


def test_merged_ids_out_of_order_are_refused(ours, tmp_path):
    save_gpt2_tokenizer(ours, tmp_path)
    lines = (tmp_path / "merges.txt").read_text("utf-8").splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    garble(tmp_path, "merges.txt", "\n".join(lines))
    with pytest.raises(ValueError, match=r"merges.txt, line 2: .* should give .* the id 256, "
                                         r"not 257$"):
        load_gpt2_tokenizer(tmp_path)
    # A first merge of a token that only a later merge makes (id 300)
    later = {i: token for token, i in json.loads((tmp_path / "vocab.json").read_text()).items()}
    lines[1] = f"{later[300]} {later[0]}"
    garble(tmp_path, "merges.txt", "\n".join(lines))
    with pytest.raises(ValueError, match=r"merges.txt, line 2: .* is not two tokens of the "
                                         r"vocabulary with ids below 256$"):
        load_gpt2_tokenizer(tmp_path)


# -- transformers 5's own files: tokenizer.json -----------------------------------------------

@pytest.fixture(scope="module")
def saved_by_transformers(theirs, tmp_path_factory):
    # transformers 5 saves a tokenizer as tokenizer.json only (no vocab.json, no merges.txt).
    directory = tmp_path_factory.mktemp("transformers-saved")
    theirs["AutoTokenizer"].save_pretrained(directory)
    assert not (directory / "vocab.json").exists()
    return directory


@pytest.fixture(scope="module")
def transformers_saved(saved_by_transformers):
    return load_gpt2_tokenizer(saved_by_transformers)


@pytest.fixture(scope="module")
def transformers_json(saved_by_transformers):
    """The tokenizer.json that transformers saved, read as any byte-level BPE's is."""
    return read_tokenizer_json(saved_by_transformers)


def their_tokenizer_json(saved_by_transformers):
    """The tokenizer.json transformers wrote, as a dict to change."""
    return json.loads((saved_by_transformers / "tokenizer.json").read_text("utf-8"))


def test_a_token_spelled_as_the_files_spell_it_is_refused_naming_the_token_to_give(
        ours, theirs, saved_by_transformers):
    # transformers' convert_tokens_to_ids takes vocab.json's spelling ("Ġthe"); token_to_id
    # takes the text the token stands for (" the"), as id_to_token gives it. Given the former,
    # it said only that there was no such token.
    tokenizer = theirs["AutoTokenizer"]
    spelled = next(token for token in tokenizer.get_vocab() if token.startswith("\u0120")
                   and len(token) > 2)
    i = tokenizer.convert_tokens_to_ids(spelled)
    for reader in (ours, read_tokenizer_json(saved_by_transformers)):
        assert reader.token_to_id(ours.id_to_token(i)) == i
        with pytest.raises(ValueError, match=re.escape(
                f"{spelled!r} is not a token of this vocabulary; tinyformer names a token by the "
                f"text it stands for: {ours.id_to_token(i)!r} (id {i}), which Hugging Face's")):
            reader.token_to_id(spelled)
        # spelled so, but no token's text either: nothing to name instead
        with pytest.raises(ValueError, match="^'\u0120zqxjv' is not a token of this "
                                             "vocabulary$"):
            reader.token_to_id("\u0120zqxjv")
    with pytest.raises(ValueError, match="^'\u0120' is not a token of this vocabulary$"):
        CharTokenizer.train("a b").token_to_id("\u0120")    # its characters are its tokens


@pytest.mark.parametrize("normalizer", [None, "NFC"])
def test_a_tokenizer_json_is_read_before_vocab_json_beside_it_as_transformers_does(
        ours, saved_by_transformers, tmp_path, normalizer):
    """A folder holding another tokenizer's vocab.json and merges.txt beside a tokenizer.json:
    transformers (and load_model) read the tokenizer.json, and so do load_gpt2_tokenizer and
    `tinyformer tokenize` (with read_tokenizer_json, for one that is not GPT-2's)."""
    from click.testing import CliRunner
    from tinyformer_cli import main
    other = BPETokenizer.train("a dog ran in the park. " * 20, 270, special_tokens=[EOT])
    save_gpt2_tokenizer(other, tmp_path)
    data = their_tokenizer_json(saved_by_transformers)
    data["normalizer"] = normalizer and {"type": normalizer}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    if normalizer:      # transformers 5's GPT2Tokenizer class keeps no normalizer: name none
        config = json.loads((tmp_path / "tokenizer_config.json").read_text("utf-8"))
        del config["tokenizer_class"]
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), "utf-8")
    text = "a dog ran to the cafe\u0301" + EOT
    expected = transformers.AutoTokenizer.from_pretrained(tmp_path).encode(text)
    assert expected != other.encode(text, allow_special=True)
    if normalizer is None:
        assert load_gpt2_tokenizer(tmp_path).encode(text, allow_special=True) == expected
    result = CliRunner().invoke(main, ["tokenize", "encode", text, "--allow-special",
                                       "--tokenizer", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(i) for i in expected]


def test_tokenize_takes_the_directory_of_a_tokenizer_json_not_the_file(
        saved_by_transformers, transformers_saved, monkeypatch):
    from click.testing import CliRunner
    from tinyformer_cli import main

    def encode(path):
        return CliRunner().invoke(main, ["tokenize", "encode", TEXT, "--allow-special",
                                         "--tokenizer", str(path)])
    by_directory = encode(saved_by_transformers)
    assert by_directory.exit_code == 0, by_directory.output
    assert by_directory.stdout.split() == [str(i) for i in transformers_saved.encode(
        TEXT, allow_special=True)]
    # The folder is named, as the file was given: it once said "give its folder" alone.
    by_file = encode(saved_by_transformers / "tokenizer.json")
    assert by_file.exit_code == 2
    assert by_file.stderr == (f"Error: {saved_by_transformers / 'tokenizer.json'}: a Hugging "
                              f"Face tokenizer.json: give its folder, "
                              f"{str(saved_by_transformers)!r}\n")
    monkeypatch.chdir(saved_by_transformers)
    by_name = encode("tokenizer.json")
    assert by_name.exit_code == 2
    assert by_name.stderr.endswith("tokenizer.json: a Hugging Face tokenizer.json: give its "
                                   "folder, '.'\n")


def test_what_transformers_saves_loads(ours, transformers_saved):
    assert transformers_saved.merges == ours.merges
    assert transformers_saved.special_tokens == [EOT]


@settings(max_examples=100)
@given(TEXTS)
def test_what_transformers_saves_encodes_as_it_does(transformers_saved, theirs, s):
    assert (transformers_saved.encode(s, allow_special=True)
            == theirs["AutoTokenizer"].encode(s))


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
              "use_regex": True}


# Each refusal names the stage that is not GPT-2's, and why.
@pytest.mark.parametrize("change, message", [
    ({"pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}},       # sentencepiece-style
     "pre_tokenizer 'Metaspace': not a step reproduced here"),
    ({"normalizer": {"type": "Lowercase"}},                             # "Hello" -> "hello"
     "normalizer 'Lowercase': it changes the text"),
    ({"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "NFD"}]}},
     "normalizer 'Sequence' of 'NFC', 'NFD': a sequence of several normalizers is not "
     "reproduced here"),
    ({"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]}},   # as NFC alone
     "normalizer 'NFC': GPT-2's BPE changes no text"),
    ({"normalizer": {"type": "NFC"}},           # read_tokenizer_json's, not a BPETokenizer's
     "normalizer 'NFC': GPT-2's BPE changes no text; tinyformer's own BPE"),
    ({"post_processor": {"type": "TemplateProcessing", "special_tokens": {},    # a BOS first
                         "single": [{"SpecialToken": {"id": EOT, "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}}]}},
     "post_processor 'TemplateProcessing': it adds tokens around the text"),
    ({"pre_tokenizer": {**BYTE_LEVEL, "add_prefix_space": True}},
     "pre_tokenizer ByteLevel has add_prefix_space: it adds a space in front of the text"),
    ({"pre_tokenizer": {**BYTE_LEVEL, "use_regex": False}},          # no cutting into words
     "pre_tokenizer ByteLevel has use_regex false: GPT-2's BPE cuts the text into words"),
    ({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, BYTE_LEVEL]}},
     "pre_tokenizer 'Digits' then 'ByteLevel': GPT-2's BPE cuts the text by its own pattern"),
    ({"decoder": None}, "decoder None: not byte-level decoding"),
], ids=["metaspace", "lowercase", "sequence", "sequence of one", "nfc", "bos-template",
        "prefix-space", "no-regex", "digits", "no-decoder"])
def test_a_tokenizer_json_of_another_kind_is_refused(ours, tmp_path, change, message):
    save_gpt2_tokenizer(ours, tmp_path)
    transformers.AutoTokenizer.from_pretrained(tmp_path).save_pretrained(tmp_path / "other")
    data = json.loads((tmp_path / "other" / "tokenizer.json").read_text("utf-8"))
    (tmp_path / "other" / "tokenizer.json").write_text(json.dumps({**data, **change}), "utf-8")
    with pytest.raises(ValueError, match=f"tokenizer.json: {regex.escape(message)}"):
        load_gpt2_tokenizer(tmp_path / "other")


@pytest.mark.parametrize("entry, message", [
    ({"id": "457", "content": "<x>", "special": True}, "has id '457'; expected"),
    ({"id": 457, "content": "<x>", "special": False}, "'<x>' is not special"),
])
def test_bad_added_tokens_in_a_tokenizer_json_are_refused(ours, tmp_path, entry, message):
    save_gpt2_tokenizer(ours, tmp_path)
    transformers.AutoTokenizer.from_pretrained(tmp_path).save_pretrained(tmp_path / "other")
    data = json.loads((tmp_path / "other" / "tokenizer.json").read_text("utf-8"))
    data["added_tokens"].append(entry)
    (tmp_path / "other" / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    with pytest.raises(ValueError, match=message):
        load_gpt2_tokenizer(tmp_path / "other")


@pytest.mark.parametrize("setting", ["single_word", "normalized"])
def test_an_added_token_matched_otherwise_in_a_tokenizer_json_is_refused(
        ours, saved_by_transformers, tmp_path, setting):
    data = their_tokenizer_json(saved_by_transformers)
    (entry,) = data["added_tokens"]
    entry[setting] = not entry[setting]
    garble(tmp_path, "tokenizer.json", json.dumps(data))
    if setting == "normalized":          # changes nothing without a normaliser: read as it is
        assert load_gpt2_tokenizer(tmp_path).merges == ours.merges
        return
    with pytest.raises(ValueError, match=f"tokenizer.json: added token '<\\|endoftext\\|>' has "
                                         f"{setting}: "):
        load_gpt2_tokenizer(tmp_path)


@pytest.mark.parametrize("setting, value", [
    ("add_prefix_space", "yes"), ("add_prefix_space", 0), ("add_prefix_space", None),
    ("add_prefix_space", "left out"), ("use_regex", "no"), ("use_regex", 1)])
def test_a_byte_level_setting_the_library_refuses_is_refused(saved_by_transformers, tmp_path,
                                                              setting, value):
    # Read as truthy or falsy, "yes" or null would give a tokenizer where transformers gives
    # none.
    data = their_tokenizer_json(saved_by_transformers)
    if value == "left out":
        del data["pre_tokenizer"][setting]
    else:
        data["pre_tokenizer"][setting] = value
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    with pytest.raises(Exception, match="expected a boolean|missing field"):
        transformers.AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError) as info:
        load_gpt2_tokenizer(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'tokenizer.json'}: pre_tokenizer ByteLevel's "
                               f"{setting} must be true or false, got "
                               f"{'nothing' if value == 'left out' else json.dumps(value)}")


def test_added_tokens_take_the_ids_transformers_gives_them_not_the_files(
        saved_by_transformers, tmp_path):
    # The tokenizers library numbers the added tokens that are not in the vocabulary itself,
    # in the file's order from the vocabulary's size on, whatever ids the file writes.
    data = their_tokenizer_json(saved_by_transformers)
    size = len(data["model"]["vocab"]) - 1
    del data["model"]["vocab"][EOT]
    data["added_tokens"][0]["id"] = size + 3
    data["added_tokens"] += [{**data["added_tokens"][0], "content": "<a>", "id": size + 2},
                             {**data["added_tokens"][0], "content": "<b>", "id": size + 1}]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = f"x<b>y{EOT}z<a>"
    assert theirs.encode(text) == load_gpt2_tokenizer(tmp_path).encode(text, allow_special=True)
    assert theirs.convert_tokens_to_ids([EOT, "<a>", "<b>"]) == [size, size + 1, size + 2]


@pytest.mark.parametrize("token, normalizer", [
    ("\u2039|café|> ", None),      # "‹" and the space spell no byte in GPT-2's vocabulary
    ("\u2039|café|> ", "NFD"),
    ("<|café|>", "NFD"),          # every character spells a byte, but not once normalised
])
def test_an_added_token_in_the_vocabulary_encodes_and_decodes_as_in_transformers(
        saved_by_transformers, tmp_path, token, normalizer):
    # A vocab.json with a special token in it (as GPT-2's has <|endoftext|>) comes to a
    # tokenizer.json with the token both in the vocabulary and added. Its characters need not
    # spell bytes, and the library decodes it as it finds it: its text, normalised if marked so.
    data = their_tokenizer_json(saved_by_transformers)
    new_id = len(data["model"]["vocab"])
    data["model"]["vocab"][token] = new_id
    data["added_tokens"].append({**data["added_tokens"][0], "content": token, "id": new_id,
                                 "normalized": normalizer is not None})
    data["normalizer"] = None if normalizer is None else {"type": normalizer}
    garble(tmp_path, "tokenizer.json", json.dumps(data))
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ours = read_tokenizer_json(tmp_path)
    text = f"a{token}b café {token}{token}\u2039|café|> {EOT}"
    ids = theirs.encode(text)
    assert new_id in ids
    assert ours.encode(text, allow_special=True) == ids
    assert ours.decode(ids) == theirs.decode(ids)
    assert ours.decode([new_id]) == theirs.decode([new_id])


def test_a_blank_last_line_in_merges_txt_is_fine(ours, tmp_path):
    save_gpt2_tokenizer(ours, tmp_path)
    with open(tmp_path / "merges.txt", "a", encoding="utf-8") as f:
        f.write("\n")
    assert load_gpt2_tokenizer(tmp_path).merges == ours.merges


def test_merges_written_as_a_b_strings_read_as_pairs_do(ours, saved_by_transformers, tmp_path):
    # transformers 5 writes each merge as a pair [a, b]; older files as one string "a b".
    data = their_tokenizer_json(saved_by_transformers)
    assert all(isinstance(pair, list) for pair in data["model"]["merges"])
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    tok = load_gpt2_tokenizer(tmp_path)
    assert (tok.merges, tok.special_tokens) == (ours.merges, ours.special_tokens)


def test_a_merge_out_of_order_in_a_tokenizer_json_is_named(saved_by_transformers, tmp_path):
    data = their_tokenizer_json(saved_by_transformers)
    merges = data["model"]["merges"]
    merges[0], merges[1] = merges[1], merges[0]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    named = regex.escape(f"tokenizer.json, merge 0 {merges[0]!r} makes merge 0")
    with pytest.raises(ValueError, match=rf"{named}, so the vocabulary should give .* the id "
                                         r"256, not 257$"):
        load_gpt2_tokenizer(tmp_path)


@pytest.mark.parametrize("text, message", [
    ("{not json", " is not valid JSON (JSONDecodeError)"),
    # what a clone without git-lfs leaves of a large tokenizer.json (Qwen's)
    ("version https://git-lfs.github.com/spec/v1\noid sha256:4c2d\nsize 11422654\n",
     " is a Git LFS pointer, not the file itself (a clone without git-lfs leaves one); fetch "
     "the file: `git lfs pull`"),
    ("[1, 2]", " is not a tokenizers-library tokenizer.json (TypeError"),
    ('{"model": {"vocab": {}}}',
     " is not a tokenizers-library tokenizer.json (KeyError: 'merges')"),
    ('{"model": {"vocab": {}, "merges": []}, "added_tokens": [{"id": 1}]}',
     " is not a tokenizers-library tokenizer.json (KeyError: 'content')"),
    # (the tokenizers library reads a file without one, as doing nothing there)
    ('{"model": {"type": "BPE", "vocab": {}, "merges": []}}',
     ": no pre_tokenizer: a byte-level BPE has a ByteLevel one"),
], ids=["not-json", "lfs-pointer", "a-list", "no-merges", "added-token-without-content",
        "no-pre-tokenizer"])
def test_a_broken_tokenizer_json_is_one_line_naming_it(tmp_path, text, message):
    (tmp_path / "tokenizer.json").write_text(text, "utf-8")
    with pytest.raises(ValueError) as info:
        load_gpt2_tokenizer(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'tokenizer.json'}{message}"), str(info.value)
    assert "\n" not in str(info.value)


def test_only_a_bpe_is_saved_as_gpt2s_files(tmp_path):
    with pytest.raises(ValueError, match=r"^GPT-2's tokenizer files hold a byte-level BPE, not a "
                                         r"CharTokenizer; save it with its own save\(path\)$"):
        save_gpt2_tokenizer(CharTokenizer.train("abc"), tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- tokenizer_config.json's switches that add to every text ------------------------------------

def with_config_setting(source, names, directory, setting):
    """`source`'s files `names` copied into `directory`, with `setting` true in its
    tokenizer_config.json."""
    for name in names:
        (directory / name).write_bytes((source / name).read_bytes())
    config = json.loads((source / "tokenizer_config.json").read_text("utf-8"))
    (directory / "tokenizer_config.json").write_text(json.dumps({**config, setting: True}))


@pytest.mark.parametrize("setting, files", [
    ("add_prefix_space", ["vocab.json", "merges.txt"]),
    ("add_bos_token", ["vocab.json", "merges.txt"]),
    ("add_eos_token", ["vocab.json", "merges.txt"]),
    ("add_prefix_space", ["tokenizer.json"]),           # transformers 5's files
])
def test_a_config_that_makes_transformers_add_to_every_text_is_refused(
        ours, saved, saved_by_transformers, tmp_path, setting, files):
    # Read without the switch, every text would have other ids than transformers gives it.
    source = saved if files[0] == "vocab.json" else saved_by_transformers
    with_config_setting(source, files, tmp_path, setting)
    assert transformers.AutoTokenizer.from_pretrained(tmp_path)("Hello")["input_ids"] != \
        ours.encode("Hello")
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'tokenizer_config.json'}: {setting} is "
                                         rf"true: transformers' tokenizer adds .* each text, "
                                         rf"which tinyformer's does not; set it to false there, "
                                         rf"and (begin|end) each text with ") as info:
        load_gpt2_tokenizer(tmp_path)
    assert "\n" not in str(info.value)
    # What the error says to do gives transformers' ids: the switch off, the text written
    # as transformers' tokenizer would have made it.
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)("Hello")["input_ids"]
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, setting: False}))
    written = {"add_prefix_space": " Hello", "add_bos_token": EOT + "Hello",
               "add_eos_token": "Hello" + EOT}[setting]
    assert load_gpt2_tokenizer(tmp_path).encode(written, allow_special=True) == theirs


@pytest.mark.parametrize("with_vocab_json", [False, True])
def test_a_bos_switch_that_transformers_ignores_beside_a_tokenizer_json_is_ignored(
        ours, saved, saved_by_transformers, tmp_path, with_vocab_json):
    with_config_setting(saved_by_transformers, ["tokenizer.json"], tmp_path, "add_bos_token")
    if with_vocab_json:                         # as on GPT-2's own model page
        for name in ("vocab.json", "merges.txt"):
            (tmp_path / name).write_bytes((saved / name).read_bytes())
    assert transformers.AutoTokenizer.from_pretrained(tmp_path)("Hello")["input_ids"] == \
        ours.encode("Hello") == load_gpt2_tokenizer(tmp_path).encode("Hello")


def test_a_folder_of_one_of_our_tokenizer_files_or_of_a_wordpiece_is_read_or_refused_so(
        tmp_path, ours):
    """A folder holding only tokenizer.json is read by what the file is: one of tinyformer's
    (as `tokenize train --out DIR/tokenizer.json` writes it) is loaded; a WordPiece's, which
    has no merges, is refused as no BPE (it once failed on its missing merges: KeyError)."""
    from click.testing import CliRunner
    from tinyformer_cli import main
    mine = tmp_path / "mine"
    mine.mkdir()
    ours.save(mine / "tokenizer.json")
    result = CliRunner().invoke(main, ["tokenize", "encode", "the cat", "--tokenizer", str(mine)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(i) for i in ours.encode("the cat")]
    from tokenizers import Tokenizer as LibraryTokenizer, models
    wordpiece = tmp_path / "wordpiece"
    wordpiece.mkdir()
    LibraryTokenizer(models.WordPiece({"[UNK]": 0, "the": 1}, unk_token="[UNK]")).save(
        str(wordpiece / "tokenizer.json"))
    result = CliRunner().invoke(main, ["tokenize", "encode", "the", "--tokenizer", str(wordpiece)])
    assert result.exit_code == 2
    assert result.stderr.endswith("model type 'WordPiece': not byte-pair encoding; tinyformer "
                                  "reads byte-level BPE tokenizers (as GPT-2's, SmolLM's and "
                                  "Qwen's) only\n")


# -- the other reader's files, in Python ---------------------------------------------------------

@pytest.mark.parametrize("folder", ["saved", "saved_by_transformers"])
def test_load_tokenizer_of_a_hugging_face_folder_names_the_readers_that_read_it(
        request, ours, folder):
    """load_tokenizer reads tinyformer's own files; it once said of such a folder "give its
    JSON file", and of that file "give its folder"."""
    directory = request.getfixturevalue(folder)
    with pytest.raises(ValueError, match=f"^tokenizer {regex.escape(repr(str(directory)))} is a "
                                         f"Hugging Face tokenizer's folder: read it with "
                                         f"tinyformer.pretrained's load_gpt2_tokenizer") as info:
        load_tokenizer(directory)
    assert "\n" not in str(info.value)
    assert load_gpt2_tokenizer(directory).merges == ours.merges


@pytest.mark.parametrize("read", [load_gpt2_tokenizer, read_tokenizer_json])
def test_a_folder_of_one_of_our_tokenizer_files_is_sent_to_load_tokenizer(ours, tmp_path, read):
    ours.save(tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match=f"^{regex.escape(str(tmp_path / 'tokenizer.json'))} is "
                                         f"a tokenizer file of tinyformer's, not the tokenizers "
                                         f"library's: read it with load_tokenizer, or beside a "
                                         f"model name it tinyformer-tokenizer.json"):
        read(tmp_path)
    assert load_tokenizer(tmp_path / "tokenizer.json").merges == ours.merges


def test_read_tokenizer_json_of_a_folder_without_one_says_what_it_holds(ours, tmp_path):
    """It once said "has a model but no tokenizer" of any such folder: of GPT-2's tokenizer
    files, which load_gpt2_tokenizer reads, and of an empty one."""
    def said(directory):
        with pytest.raises(ValueError) as info:
            read_tokenizer_json(directory)
        return str(info.value)
    save_gpt2_tokenizer(ours, tmp_path / "gpt2")
    assert said(tmp_path / "gpt2") == (f"{str(tmp_path / 'gpt2')!r} holds GPT-2's tokenizer "
                                       f"files (vocab.json and merges.txt), not a "
                                       f"tokenizer.json: read them with load_gpt2_tokenizer")
    (tmp_path / "empty").mkdir()
    assert said(tmp_path / "empty") == (f"{str(tmp_path / 'empty')!r} holds no tokenizer.json: "
                                        f"put the model's tokenizer.json there, from its model "
                                        f"page")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "llama"}')
    assert said(tmp_path / "model").startswith(f"{str(tmp_path / 'model')!r} has a model but no "
                                               f"tokenizer: put the model's tokenizer.json there")
    # The file itself, given for its folder, names the folder.
    assert said(tmp_path / "gpt2" / "vocab.json") == (
        f"{str(tmp_path / 'gpt2' / 'vocab.json')!r} is a file; give its folder, "
        f"{str(tmp_path / 'gpt2')!r}")


@pytest.mark.parametrize("read", [load_gpt2_tokenizer, read_tokenizer_json])
def test_a_folder_with_a_tokenizer_model_alone_says_what_to_fetch(tmp_path, read):
    (tmp_path / "tokenizer.model").write_bytes(b"\n\x05<unk>\x15\x00\x00\x00\x00")
    with pytest.raises(ValueError, match=f"^{regex.escape(repr(str(tmp_path)))} has its "
                                         f"tokenizer in SentencePiece's or tiktoken's format .*: "
                                         f"fetch the model's tokenizer.json into it"):
        read(tmp_path)


def test_an_added_token_without_special_is_special_only_where_transformers_takes_it_so(
        ours, tmp_path):
    # transformers' AddedToken has special=False by default: an entry with no "special" is an
    # ordinary added token, found in any text, unless the files name it special (pad_token)
    # or it is <|endoftext|>, GPT-2's eos_token. It was read as special, found only on request.
    gpt2_shaped_files(ours, tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "pad_token": "<pad>", "added_tokens_decoder": {
            "456": {"content": EOT}, "457": {"content": "<pad>"}}}))
    theirs = transformers.GPT2Tokenizer.from_pretrained(tmp_path)
    assert [t.special for t in theirs.added_tokens_decoder.values()] == [True, True]
    text = f"the<pad>end{EOT}"
    assert load_gpt2_tokenizer(tmp_path).encode(text, allow_special=True) == theirs.encode(text)
    # Named by no file: transformers' ordinary token, which tinyformer cannot read.
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {
        "456": {"content": EOT}, "457": {"content": "<pad>"}}}))
    theirs = transformers.GPT2Tokenizer.from_pretrained(tmp_path)
    assert [t.special for t in theirs.added_tokens_decoder.values()] == [True, False]
    with pytest.raises(ValueError, match=r"tokenizer_config.json: added token '<pad>' is not "
                                         r"special; tinyformer reads only special added tokens$"):
        load_gpt2_tokenizer(tmp_path)


def test_an_added_token_of_a_tokenizer_json_without_special_is_read_as_transformers_reads_it(
        saved_by_transformers, tmp_path):
    data = their_tokenizer_json(saved_by_transformers)
    for entry in data["added_tokens"]:          # <|endoftext|>, the eos_token: special still
        del entry["special"]
    data["added_tokens"].append({"id": 457, "content": "<pad>", "single_word": False,
                                 "lstrip": False, "rstrip": False, "normalized": False})
    (saved := tmp_path / "saved").mkdir()
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (saved_by_transformers / name).exists():
            (saved / name).write_bytes((saved_by_transformers / name).read_bytes())
    (saved / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    theirs = transformers.AutoTokenizer.from_pretrained(saved)
    assert [(t.content, t.special) for t in theirs.added_tokens_decoder.values()] == [
        (EOT, True), ("<pad>", False)]
    with pytest.raises(ValueError, match=r"tokenizer.json: added token '<pad>' is not special"):
        load_gpt2_tokenizer(saved)
    data["added_tokens"].pop()                  # without <pad>: read, <|endoftext|> special
    (saved / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    assert load_gpt2_tokenizer(saved).special_tokens == [EOT]
