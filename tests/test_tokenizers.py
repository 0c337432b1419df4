"""Tokenizers: characters and byte-level BPE, their special tokens, and their JSON files."""

import io
import json
import os
import random
import re
import sys
import tracemalloc
import unicodedata
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tinyformer import tokenizers
from tinyformer.progress import CountProgress
from tinyformer.schema import option_name
from tinyformer.tokenizers import (BPETokenizer, CharTokenizer, Tokenizer, compression,
                                   describe_vocabulary, encode_prompt, load_tokenizer, merge,
                                   pre_split, split_shown)

SPECIALS = ["<pad>", "<bos>", "<eos>", "<mask>"]
TEXT = ("The cat sat on the mat. The dog sat on the log; the cats and dogs sat there, "
        "and then they sat again! Don't they've 12 345 naïve café 東京 😀 ok\r\n") * 3
BPE = BPETokenizer.train(TEXT, 300, special_tokens=SPECIALS)
CHAR = CharTokenizer.train(TEXT + "".join(SPECIALS), special_tokens=SPECIALS)


# -- pre-split --------------------------------------------------------------------------------

def test_pre_split_cuts_text_as_gpt2_does():
    assert pre_split("Hello world's 42!  ok\r\n\tx_y") == \
        ["Hello", " world", "'s", " 42", "!", " ", " ok", "\r\n", "\t", "x", "_", "y"]


@given(st.text())
def test_pre_split_chunks_join_back_to_the_text(s):
    assert "".join(pre_split(s)) == s


# -- characters -------------------------------------------------------------------------------

def test_char_ids_are_specials_then_sorted_characters():
    tok = CharTokenizer.train("hello", special_tokens=["<eos>"])
    assert tok.vocab_size == 5
    assert tok.encode("hole") == [2, 4, 3, 1]
    assert [tok.id_to_token(i) for i in range(5)] == ["<eos>", "e", "h", "l", "o"]
    assert tok.decode(np.array([2, 1, 3, 3, 4, 0])) == "hello<eos>"


def test_a_tokenizer_shows_its_kind_size_and_special_tokens():
    # What a notebook cell ending with `tokenizer` shows, as transformers shows one.
    assert repr(CharTokenizer.train("hello", special_tokens=["<eos>"])) == \
        "CharTokenizer(vocab_size=5, special_tokens=['<eos>'])"
    many = CharTokenizer.train("ab", special_tokens=[f"<s{i}>" for i in range(9)])
    assert repr(many) == ("CharTokenizer(vocab_size=11, special_tokens=['<s0>', '<s1>', '<s2>', "
                          "'<s3>', '<s4>', '<s5>', ... 9 in all])")
    assert repr(BPETokenizer.train("aaabdaaabac", vocab_size=259)) == \
        "BPETokenizer(vocab_size=259, special_tokens=[])"


def test_char_names_the_first_character_it_cannot_encode():
    tok = CharTokenizer.train("abcdefghijklmnopqrstuvwxyz")
    with pytest.raises(ValueError, match=r"^cannot encode 'é' \(U\+00E9 LATIN SMALL LETTER E "
                                         r"WITH ACUTE\) at position 3: not in the tokenizer's "
                                         r"26-character vocabulary$"):
        tok.encode("abcéü")
    # The position counts from the start of the whole text, special tokens included.
    with pytest.raises(ValueError, match=r"^cannot encode 'é' \(U\+00E9 [A-Z ]+\) at position 7"):
        CharTokenizer.train("ab", special_tokens=["<eos>"]).encode("ab<eos>é", allow_special=True)


def test_char_says_that_a_special_token_written_in_the_text_is_plain_text_unless_allowed():
    # "<" of "<eos>" is no character of the vocabulary: the error named it alone, and gave no
    # hint that the text meant the special token.
    tok = CharTokenizer.train("hello", special_tokens=["<eos>"])
    with pytest.raises(ValueError, match=r"^cannot encode '<' at position 3: not in the "
                                         r"tokenizer's 4-character vocabulary; it is part of "
                                         r"the special token '<eos>', which is plain text "
                                         r"unless special tokens are allowed \(--allow-special,"
                                         r" where a command takes it; allow_special=True in "
                                         r"Python\)$"):
        tok.encode("hel<eos>")
    assert tok.encode("he<eos>", allow_special=True) == [2, 1, 0]
    with pytest.raises(ValueError, match=r"at position 6: not in the tokenizer's "
                                         r"4-character vocabulary$"):      # "<" of no token
        tok.encode("<eos>h<", allow_special=True)


@pytest.mark.parametrize("char, shown", [
    ("x", "'x'"), ("\t", "'\\t' (U+0009)"),                      # control characters: no name
    ("\u0301", "'\\u0301' (U+0301 COMBINING ACUTE ACCENT)"),     # a mark sits on the quote
    ("\u00a0", "'\\xa0' (U+00A0 NO-BREAK SPACE)"),               # prints as a space
    ("\u200b", "'\\u200b' (U+200B ZERO WIDTH SPACE)"),           # prints as nothing
    ("\U0001f600", "'\U0001f600' (U+1F600 GRINNING FACE)"),
])
def test_char_names_a_character_that_prints_alike_or_not_at_all_by_its_code_point(char, shown):
    with pytest.raises(ValueError) as error:
        CharTokenizer.train("abc").encode(f"ab{char}")
    assert str(error.value).startswith(f"cannot encode {shown} at position 2: "), error.value


@pytest.mark.parametrize("form, other", [("NFC", "NFD"), ("NFD", "NFC")])
def test_char_says_when_the_text_is_in_another_normal_form(form, other):
    # "é" is one character in NFC, "e" and a combining accent in NFD.
    tok = CharTokenizer.train(unicodedata.normalize(form, "café"))
    text = unicodedata.normalize(other, "café")
    with pytest.raises(ValueError, match=f"; the text is in another Unicode normal form than "
                                         f"the tokenizer's \\({form}\\): encode "
                                         f"unicodedata.normalize\\('{form}', text\\) in "
                                         f"Python, or in a shell pipe the text through `"):
        tok.encode(text)
    assert tok.decode(tok.encode(unicodedata.normalize(form, text))) == \
        unicodedata.normalize(form, text)
    with pytest.raises(ValueError, match="vocabulary$"):       # no form would do
        tok.encode("cab")


@given(st.text(alphabet=sorted(set(TEXT))))
def test_char_round_trips_strings_of_its_alphabet(s):
    assert CHAR.decode(CHAR.encode(s)) == s


def test_a_tokenizer_of_no_tokens_says_so_when_asked_to_decode(tmp_path):
    # A hand-made char tokenizer file of no characters said "the vocabulary has ids 0 to -1".
    (tmp_path / "none.json").write_text('{"type": "char", "chars": [], "special_tokens": []}')
    with pytest.raises(ValueError, match="^cannot decode id 0: the vocabulary has no ids: the "
                                         "tokenizer has no tokens$"):
        load_tokenizer(tmp_path / "none.json").decode([0])


def test_char_rejects_a_bad_vocabulary():
    for chars, specials in ((["a", "a"], ()), (["ab"], ()), (["a"], [""]), (["<"], ["<"])):
        with pytest.raises(ValueError):
            CharTokenizer(chars, specials)
    with pytest.raises(ValueError, match=r"^'\|' is both a character of the vocabulary and a "
                       r"special token.*more than one character, as <eos> is$"):
        CharTokenizer.train("a|b", special_tokens=["<eos>", "|"])


def test_a_lone_string_of_special_tokens_is_refused_not_split_into_characters():
    # list("<eos>") would make five one-character special tokens, and no "<eos>".
    for train in (lambda: CharTokenizer.train("xyz", special_tokens="<eos>"),
                  lambda: BPETokenizer.train(TEXT, 300, special_tokens="<eos>")):
        with pytest.raises(TypeError, match=r"^special_tokens must be a list of strings, "
                           r"e\.g\. \['<eos>'\], got a str$"):
            train()


@pytest.mark.parametrize("train", [lambda text: CharTokenizer.train(text),
                                   lambda text: BPETokenizer.train(text, 260)],
                         ids=["char", "bpe"])
@pytest.mark.parametrize("text, words", [
    (b"the cat", "got bytes; decode the bytes first: text.decode('utf-8')"),
    (["the cat", "sat"], "got list; join a list of texts first: ''.join(texts)"),
    (None, "got NoneType")])
def test_training_on_what_is_no_str_says_what_train_takes(train, text, words):
    # As encode says it: bytes gave the BPE "'bytes' object has no attribute 'encode'", and
    # the char tokenizer took a list of texts for its characters ("the vocabulary must be
    # single characters").
    with pytest.raises(TypeError, match=f"^train takes the text as a str, {re.escape(words)}$"):
        train(text)


# -- byte-pair encoding -----------------------------------------------------------------------

def test_merge_replaces_pairs_left_to_right():
    assert merge([97, 97, 97, 98, 97, 97], (97, 97), 256) == [256, 97, 98, 256]


def test_bpe_learns_the_wikipedia_example():
    # aaabdaaabac: (a,a) is most frequent (4); then (Z,a) and (a,b) tie at 2 and the smaller
    # ids (a,b) win; then (Z,Y) makes "aaab".
    tok = BPETokenizer.train("aaabdaaabac", 259)
    a, b = ord("a"), ord("b")
    assert tok.merges == [(a, a), (a, b), (256, 257)]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, a, ord("c")]
    assert tok.tokens_of("aaabdaaabac") == ["aaab", "d", "aaab", "a", "c"]


def test_bpe_training_shows_its_merges_only_when_asked(monkeypatch, capsys):
    # A BPE of a few MB trained for seconds to a minute with no sign of life; the Python
    # API stays quiet unless asked. No second's wait here before the first line.
    monkeypatch.setattr(CountProgress, "AFTER", 0.0)
    text = "the cat sat on the mat; the dog sat on the log. " * 20
    quiet = BPETokenizer.train(text, 270, ["<eos>"])
    assert capsys.readouterr() == ("", "")
    shown = BPETokenizer.train(text, 270, ["<eos>"], progress=True)
    assert shown.merges == quiet.merges
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 10                  # into a file: a line a tenth
    assert lines[-1].startswith("merge 13/13 | ")          # 270 - 256 bytes - 1 special


def test_bpe_training_ends_its_merges_line_on_a_terminal_even_when_it_fails(monkeypatch):
    # Drawn in place, the line has no new line of its own: ended (close), what is written
    # next, the error that too few merges make included, starts on a line of its own.
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(CountProgress, "AFTER", 0.0)
    monkeypatch.setenv("TERM", "xterm")
    text = "the cat sat on the mat; the dog sat on the log. " * 20
    for vocab_size, fails in ((270, False), (100_000, True)):
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        if fails:
            with pytest.raises(ValueError, match="merge"):
                BPETokenizer.train(text, vocab_size, progress=True)
        else:
            BPETokenizer.train(text, vocab_size, progress=True)
        drawn = terminal.getvalue()
        assert drawn.startswith("\rmerge ") and drawn.endswith("\n"), drawn[-80:]


def test_bpe_counts_pairs_within_chunks_weighted_by_frequency():
    # "ab" occurs 3 times as a word; " x" and "xy" once each as " xy"; no pair crosses a space
    # into the next word, so (b, space) is never counted.
    tok = BPETokenizer.train("ab ab ab xy", 257)
    assert tok.merges == [(ord("a"), ord("b"))]


def merges_by_recounting(text, n_merges):
    """BPE's merges as the docstring says them, the slow plain way: count every pair of every
    chunk again before each merge, take the most frequent, of a tie the smallest ids."""
    words = [list(chunk.encode("utf-8")) for chunk in pre_split(text)]
    merges = []
    for new_id in range(256, 256 + n_merges):
        counts = {}
        for ids in words:
            for pair in zip(ids, ids[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        words = [merge(ids, best, new_id) for ids in words]
    return merges


@given(st.text(alphabet="ab c\né", max_size=40))
@example("aaabdaaabac")
def test_bpe_learns_the_merges_of_a_recount_before_each_merge(text):
    n_merges = len(merges_by_recounting(text, 40))
    assert BPETokenizer.train(text, 256 + n_merges).merges == merges_by_recounting(text, 40)


def encode_by_rounds(merges, text):
    """BPE's encoding as the docstring says it, the slow plain way: in each chunk, while some
    pair is a merge, merge the earliest-learned one everywhere."""
    rank = {pair: new_id for new_id, pair in enumerate(merges, start=256)}
    ids = []
    for chunk in pre_split(text):
        chunk_ids = list(chunk.encode("utf-8"))
        while any(pair in rank for pair in zip(chunk_ids, chunk_ids[1:])):
            new_id = min(rank[pair] for pair in zip(chunk_ids, chunk_ids[1:]) if pair in rank)
            chunk_ids = merge(chunk_ids, merges[new_id - 256], new_id)
        ids += chunk_ids
    return ids


@given(st.text(alphabet="aab c\né", max_size=60), st.text(alphabet="aab c\né", max_size=60))
@example("aaabdaaabac", "aaab abaa aaaaa")
def test_bpe_encodes_by_rounds_of_the_earliest_learned_merge(learned_from, text):
    merges = merges_by_recounting(learned_from, 30)
    assert BPETokenizer(merges).encode(text) == encode_by_rounds(merges, text)


@pytest.mark.parametrize("alphabet", ["ACGT", "aab", "東京的了"])
def test_bpe_learns_and_encodes_a_long_chunk_as_the_plain_way_does(alphabet):
    # Text without spaces (DNA, Chinese) is one long chunk, in which a merge changes many
    # places, some next to each other ("aaaa"), and counts tie often.
    rng = random.Random(0)
    text, other = ("".join(rng.choices(alphabet, k=1500)) for _ in range(2))
    merges = merges_by_recounting(text, 40)
    assert BPETokenizer.train(text, 256 + 40).merges == merges
    assert BPETokenizer(merges).encode(other) == encode_by_rounds(merges, other)


@pytest.mark.parametrize("vocab_size", [256, 260, 300, 320])
def test_bpe_vocab_size_is_exactly_the_one_asked_for(vocab_size):
    tok = BPETokenizer.train(TEXT, vocab_size)
    assert tok.vocab_size == vocab_size == 256 + len(tok.merges)
    with_specials = BPETokenizer.train(TEXT, vocab_size + 4, special_tokens=SPECIALS)
    assert with_specials.vocab_size == vocab_size + 4
    assert with_specials.merges == tok.merges


def test_bpe_refuses_a_vocab_size_that_is_not_a_whole_number_before_counting_with_it():
    for vocab_size in (260.0, "300", None, True):
        with pytest.raises(ValueError, match=r"^vocab_size must be a whole number >= 1, got "):
            BPETokenizer.train(TEXT, vocab_size)


def test_bpe_refuses_an_impossible_vocab_size():
    # It said what was wrong, not what to give.
    with pytest.raises(ValueError, match=r"^vocab_size 258 is below the 256 bytes plus 4 "
                                         r"special tokens; give at least 260$"):
        BPETokenizer.train(TEXT, 258, special_tokens=SPECIALS)
    with pytest.raises(ValueError, match=r"^vocab_size 200 is below the 256 bytes plus 0 "
                                         r"special tokens; give at least 256$"):
        BPETokenizer.train(TEXT, 200)
    # "aaaa" -> Z Z -> one token: two merges, and then no pair is left.
    with pytest.raises(ValueError, match="only 2 merges to learn; .* at most 258"):
        BPETokenizer.train("aaaa", 259)
    with pytest.raises(ValueError, match="only 1 merge to learn; .* at most 257"):
        BPETokenizer.train("ab", 258)


def test_bpe_names_the_largest_vocab_size_the_text_gives_and_that_size_trains():
    # One merge shortens many words ("at" three of them): counting the words' pairs (12
    # here) promised more merges than the text has.
    text = " the cat the mat the hat"
    with pytest.raises(ValueError, match=r"at most (\d+)$") as refused:
        BPETokenizer.train(text, 1000, special_tokens=SPECIALS)
    largest = int(re.search(r"at most (\d+)$", str(refused.value))[1])
    assert BPETokenizer.train(text, largest, special_tokens=SPECIALS).vocab_size == largest
    with pytest.raises(ValueError, match=f"at most {largest}$"):
        BPETokenizer.train(text, largest + 1, special_tokens=SPECIALS)


def peak_bytes(work):
    """The most memory (bytes) that Python objects took at once while `work()` ran."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


WORDS = " ".join(["the cat sat on the mat and the dog ate the hat"] * 4000)    # 190 KB


def test_bpe_training_holds_the_texts_distinct_chunks_not_every_one():
    # pre_split's list of every chunk of the text took 14 times the text (1.4 GB for 100 MB
    # of Shakespeare), where counting them as they are found takes the distinct ones.
    assert peak_bytes(lambda: BPETokenizer.train(WORDS, 270)) < len(WORDS) * 3


# Whitespace of several kinds, on which the cuts must agree with GPT-2's pattern, and more.
SPACES_AND_SOME = " \n\t\r\u3000\x1c\xa0ab'sé1!<eos>"


@given(st.text(alphabet=SPACES_AND_SOME, max_size=60), st.integers(1, 8))
@example("a  b\n\n a 's\u3000 b\x1c\xa0é", 1)
def test_count_tokens_is_the_length_of_the_whole_texts_ids(text, piece_chars):
    # Pieces are cut where GPT-2's chunks part, so that they encode as the whole text does.
    with mock.patch.object(tokenizers, "PIECE_CHARS", piece_chars):
        for tok in (BPE, CharTokenizer.train(SPACES_AND_SOME)):
            assert tokenizers.count_tokens(tok, text) == len(tok.encode(text))


@given(st.text(alphabet=SPACES_AND_SOME, max_size=60), st.integers(1, 8), st.integers(1, 9),
       st.booleans())
@example("a <eos> b", 2, 3, True)
@example("a<eos>  b <eos>\n b", 1, 4, True)
def test_encode_pieces_give_the_whole_texts_ids_and_split(text, piece_chars, chunk_chars,
                                                          allow_special):
    # `tokenize encode` and `show --file` encode a file a piece at a time, as it is read in
    # chunks (here of chunk_chars characters), and write each piece's part as it goes; a
    # special token that takes the whitespace after it (rstrip) takes it across a cut too.
    chunks = [text[i:i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    with mock.patch.object(tokenizers, "PIECE_CHARS", piece_chars):
        for tok in (BPE, CharTokenizer.train(SPACES_AND_SOME, special_tokens=SPECIALS),
                    BPETokenizer(BPE.merges, SPECIALS, lstrip=["<eos>"], rstrip=["<eos>"])):
            pieces = list(tokenizers.encode_pieces(tok, chunks, allow_special))
            whole = tok.encode(text, allow_special)
            assert "".join(piece for piece, _ in pieces) == text
            assert [i for _, ids in pieces for i in ids] == whole
            for colour in (False, True):
                assert "".join(tokenizers.split_shown_parts(
                    tok, [ids for _, ids in pieces], colour)) == split_shown(tok, whole, colour)


def test_encode_pieces_do_not_cut_inside_a_run_of_whitespace():
    # GPT-2's pattern keeps "a   b" as 'a', '  ', ' b' and "\n  c" as '\n ', ' c': a cut
    # before every space would split the '  ' and '\n ' that this BPE has merges for.
    tok = BPETokenizer.train("a   b\n  c " * 20, 261)
    text = "a   b\n  c   d"
    with mock.patch.object(tokenizers, "PIECE_CHARS", 1):
        pieces = list(tokenizers.encode_pieces(tok, [text]))
    assert [i for _, ids in pieces for i in ids] == tok.encode(text)


def test_encode_pieces_name_an_unknown_characters_place_in_the_whole_text():
    # Each piece is encoded alone; the error counts from the text's start, not the piece's.
    tok = CharTokenizer.train("ab ")
    with mock.patch.object(tokenizers, "PIECE_CHARS", 2), \
            pytest.raises(ValueError, match="^cannot encode 'c' at position 8: "):
        list(tokenizers.encode_pieces(tok, ["ab ab", " abc"]))


@pytest.mark.parametrize("chunks, where", [
    (["ab ab\nab", " ab c"], "line 2, column 7"),       # its line began in a piece before
    (["ab ab\n", "ab\n a\nc"], "line 4, column 1"),
    (["c"], "line 1, column 1")])
def test_encode_pieces_of_a_file_name_an_unknown_characters_line_and_column(chunks, where):
    tok = CharTokenizer.train("ab \n")
    with mock.patch.object(tokenizers, "PIECE_CHARS", 2), \
            pytest.raises(ValueError, match=f"^file 'f.txt': cannot encode 'c' at {where}: "):
        list(tokenizers.encode_pieces(tok, chunks, lines_of="file 'f.txt'"))


def test_tokenize_trains_report_counts_tokens_without_holding_every_id(tmp_path, monkeypatch):
    # Its compression line counted the tokens as len(tok.encode(text)): a list of an int for
    # each token, 8 to 15 times the text (a BPE's, of 100 MB of Shakespeare: 1.5 GB).
    words = WORDS * 4                                                   # 750 KB
    path = tmp_path / "words.txt"
    path.write_text(words)
    monkeypatch.setattr(tokenizers, "PIECE_CHARS", 1000)
    report = []
    peak = peak_bytes(lambda: report.extend(tokenizers.train_tokenizer(
        path, "char", 512, log=lambda line: None)[1]))
    # The text, twice as it is read and joined, its UTF-8 and a block being read: 3.4 times
    # it here, where the ids made it 18.
    assert peak < len(words) * 6
    assert report[-1].endswith(f"({len(words):,} tokens)")


@given(st.text())
@example("naïve café 東京 😀 e\u0301 \r\n \x00 <eos> 👩‍👩‍👧")
def test_bpe_round_trips_any_string(s):
    assert BPE.decode(BPE.encode(s)) == s
    assert BPE.decode(BPE.encode(s, allow_special=True)) == s


@pytest.mark.parametrize("text, allow_special, position", [
    ("ab\ud800c", False, 2), ("\udcff", False, 0), ("<eos>x y\udfff", True, 8),
    ("<eos>x y\udfff", False, 8), ("ok \ud83d\ude00", False, 3),    # a pair split in two
])
def test_bpe_names_a_lone_surrogate_it_cannot_encode(text, allow_special, position):
    # Half of a UTF-16 pair is no character and has no UTF-8 bytes: it once raised a raw
    # UnicodeEncodeError. GPT-2's tokenizer refuses it too; CharTokenizer's message names it.
    surrogate = text[position]
    for tok in (BPE, BPETokenizer(BPE.merges, SPECIALS)):        # the chunk cache, or not
        with pytest.raises(ValueError, match=f"^cannot encode {re.escape(repr(surrogate))} at "
                                             f"position {position}: a lone surrogate"):
            tok.encode(text, allow_special=allow_special)


def test_bpe_training_names_a_lone_surrogate_in_its_text():
    with pytest.raises(ValueError, match=r"^the text to train on is not valid UTF-8 \(at "
                                         r"character 6\)$"):
        BPETokenizer.train("ab ab \ud800 ab", 258)


@pytest.mark.parametrize("tok", [CharTokenizer.train("ab", special_tokens=["<eos>"]),
                                 BPETokenizer.train("ab ab", 257, special_tokens=["<eos>"])])
def test_padding_to_a_models_rows_adds_ids_that_decode_to_nothing(tok, tmp_path):
    own = tok.vocab_size
    ids = tok.encode("ab<eos>", allow_special=True)
    tok.pad_to(own + 3)
    tok.pad_to(own + 3)                                      # as often as it is asked
    assert tok.vocab_size == own + 3 and tok.encode("ab<eos>", allow_special=True) == ids
    assert tok.decode(ids + [own, own + 2]) == "ab<eos>"
    assert tok.id_to_token(own + 2) == "" and tok.id_to_bytes(own) == b""
    assert "+ 3 padding, decoded as nothing" in describe_vocabulary(tok)[0]
    with pytest.raises(ValueError, match="vocabulary has ids 0 to"):
        tok.decode([own + 3])
    tok.save(tmp_path / "tok.json")                          # its own tokens alone
    assert load_tokenizer(tmp_path / "tok.json").vocab_size == own
    with pytest.raises(ValueError, match=f"^the tokenizer has {own} tokens, more than the "
                                         f"model's {own - 1}$"):
        tok.pad_to(own - 1)


def test_padding_to_a_size_that_is_no_whole_number_is_refused():
    # pad_to(300.5) gave a vocab_size of 300.5, and "300" a TypeError comparing int and str.
    tok = CharTokenizer.train("ab")
    for size in (300.5, 300.0, "300", None, True):
        with pytest.raises(ValueError, match=r"^vocab_size must be a whole number >= 0, got "):
            tok.pad_to(size)
    assert tok.vocab_size == 2
    tok.pad_to(np.int64(5))
    assert type(tok.vocab_size) is int and tok.vocab_size == 5


def test_the_first_merges_show_the_two_tokens_each_joined():
    # "aaab" alone did not say that it was "aa" + "ab", nor "aa" that it was two a's.
    _, first, _ = describe_vocabulary(BPETokenizer.train("aaabdaaabac", 259))
    assert first == 'first merges "a"+"a" "a"+"b" "aa"+"ab"'


def test_the_longest_merges_are_the_longest_in_bytes_and_shown_as_show_shows_them():
    e_acute, newline = list("é".encode("utf-8")), ord("\n")
    tok = BPETokenizer([(newline, newline), e_acute, (256, 256), (257, 257), (97, e_acute[0])])
    *_, longest = describe_vocabulary(tok)
    # Bytes: 2, 2, 4, 4, 2 (a and half of é); characters: 2, 1, 4, 2, 5 (a\xc3 reads so).
    assert longest.split() == ["longest", r'"\n\n\n\n"', '"éé"', r'"\n\n"', '"é"', r'"a\xc3"']


@pytest.mark.parametrize("tok", [BPETokenizer([], ["a\nb", "\x1b[31m", "<e>"]),
                                 CharTokenizer("xy", ["a\nb", "\x1b[31m", "<e>"])],
                         ids=["bpe", "char"])
def test_the_vocabulary_report_names_special_tokens_on_one_line_as_show_does(tok):
    # A special token's new line broke the report's lines; its escape sequence reached the
    # terminal (or, off one, click dropped it: "(a\nb  <e>)").
    first, *_ = describe_vocabulary(tok)
    assert first.endswith(r" + 3 special (a\nb \x1b[31m <e>)")
    assert "\n" not in first and "\x1b" not in first


def test_the_vocabulary_report_cuts_a_long_token():
    # Merge k doubles a run of "a": the last is 2**11 = 2048 bytes long.
    tok = BPETokenizer([(97, 97)] + [(256 + k, 256 + k) for k in range(10)])
    *_, longest = describe_vocabulary(tok)
    assert longest.startswith(f'longest      "{"a" * 30}…" (2,048 bytes) "{"a" * 30}…" '
                              f'(1,024 bytes)')
    assert len(longest) < 300


@pytest.mark.parametrize("tok", [BPE, CHAR], ids=["bpe", "char"])
def test_a_prompt_that_is_not_utf8_is_said_to_be_so(tok):
    """The bytes b"ab\\xffc" of a command line reach Python as "ab\\udcffc": the prompt is not
    UTF-8, which is not a character the model was not trained on (a BPE knows every one)."""
    with pytest.raises(ValueError, match=r"^prompt is not valid UTF-8 \(at character 2\)$"):
        encode_prompt(tok, "ab\udcffc")
    assert encode_prompt(tok, "the cat") == tok.encode("the cat")


def test_a_prompt_as_long_as_the_context_is_read_and_a_longer_one_refused():
    assert encode_prompt(CHAR, "cat", context=3) == CHAR.encode("cat")
    with pytest.raises(ValueError, match="^prompt has 4 tokens; this model reads at most "
                                         "3: shorten it$"):
        encode_prompt(CHAR, "cats", context=3)
    # named as the caller's user knows it: the command line's option
    with pytest.raises(ValueError, match="^--prompt has 4 tokens"):
        encode_prompt(CHAR, "cats", context=3, name=option_name)


def test_a_prompt_masked_as_transformers_bert_is_told_how_a_mask_is_written_here():
    tok = CharTokenizer.train("the cat sat.", special_tokens=["<mask>"])
    for mistyped in ("[MASK]", "<MASK>", "<Mask>", "< mask >", "[mask]"):
        with pytest.raises(ValueError, match="; a mask is written <mask> here$"):
            encode_prompt(tok, f"the {mistyped} sat.")
    with pytest.raises(ValueError, match="trained on$"):
        encode_prompt(tok, "the [cat] sat.")
    with pytest.raises(ValueError, match="trained on$"):              # a model without masks
        encode_prompt(CharTokenizer.train("the cat sat."), "the [MASK] sat.")


def test_coloured_tokens_take_the_four_backgrounds_in_turn():
    tok = CharTokenizer.train("abcde")
    shown = split_shown(tok, tok.encode("abcde"), colour=True)
    assert re.findall(r"\x1b\[30;(\d+)m", shown) == ["46", "43", "42", "45", "46"]


@pytest.mark.parametrize("colour", [False, True])
def test_a_text_is_shown_working_out_each_tokens_look_once(colour):
    # 5 MB of text is 2.5 million tokens of a few thousand ids: showing each one anew took
    # `tokenize show` 6 times as long as encoding the text.
    ids = BPE.encode(TEXT * 20)
    with mock.patch.object(tokenizers, "_shown_piece", wraps=tokenizers._shown_piece) as shown:
        once = "".join(tokenizers.split_shown_parts(BPE, [ids[:7], ids[7:]], colour=colour))
    assert shown.call_count == len(set(ids))
    assert once == "".join(tokens_shown_one_at_a_time(BPE, ids, colour))


def tokens_shown_one_at_a_time(tok, ids, colour):
    """split_shown's parts, as it gave them before it kept each token's look."""
    for n, i in enumerate(ids):
        piece = tokenizers._shown_piece(tok, i, frame=not colour)
        yield (f"\x1b[30;{tokenizers.BACKGROUNDS[n % 4]}m{piece}\x1b[0m" if colour else
               "|" * (n == 0) + piece + "|")


def test_compression_counts_characters_and_bytes_apart():
    assert compression("héllo", [1, 2]) == ("2 tokens, 5 characters (6 bytes): 2.50 characters "
                                            "per token, 3.00 bytes per token")


def test_bpe_compresses_the_text_it_learned_from():
    ids = BPE.encode(TEXT)
    assert len(ids) < len(TEXT.encode()) / 2
    assert max(ids) < 256 + len(BPE.merges)          # no special token in plain text


def test_bpe_remembers_at_most_its_cache_limit_of_chunks_and_still_encodes_the_same():
    # A long text of distinct words (a corpus being tokenised) must not grow the memory of
    # encoded chunks without bound.
    tok = BPETokenizer(BPE.merges)
    tok.CACHE_LIMIT = 5
    text = " ".join(a + b for a in "abcdefgh" for b in "aeiou")      # 40 distinct words
    assert tok.encode(text) == BPE.encode(text)
    assert 0 < len(tok._cache) <= 5


def test_bpe_decodes_arbitrary_ids_with_replacement_characters():
    first_byte_of_e_acute = "é".encode()[0]
    assert BPE.decode([ord("a"), first_byte_of_e_acute, ord("b")]) == "a\ufffdb"
    assert BPE.id_to_token(first_byte_of_e_acute) == "\\xc3"
    for bad in (-1, BPE.vocab_size):
        with pytest.raises(ValueError, match="cannot decode id"):
            BPE.decode([bad])


@pytest.mark.parametrize("tok", [BPE, CHAR], ids=["bpe", "char"])
@pytest.mark.parametrize("ids, words", [
    ([1.7], "got 1.7"),                         # not id 1
    ([np.float32(2)], "got np.float32(2.0)"),
    ([True], "got True"),                       # not id 1
    ([[5, 6]], "a row of 2 ids"),
])
def test_decode_refuses_ids_that_are_not_integers(tok, ids, words):
    """As Hugging Face's tokenizers: a TypeError, rather than int() truncating the id."""
    with pytest.raises(TypeError, match=re.escape(words)):
        tok.decode(ids)
    assert tok.decode(np.array([5, 6], dtype=np.uint16)) == tok.decode([5, 6])


@pytest.mark.parametrize("tok", [BPE, CHAR], ids=["bpe", "char"])
@pytest.mark.parametrize("ids, words", [
    (None, "got NoneType"),
    (5, "got int; for a single id, decode([id])"),
    (np.array(5), "got an array of shape ()"),
    ("72", "not str; to get the ids of a text, use encode"),     # not ids 7 and 2
    ("", "not str"),
    (b"ab", "not bytes"),                                        # not ids 97 and 98
    (np.array([1.0, 2.0]), "got an array of float64"),
    (np.array([[5, 6, 7]]), "got an array of shape (1, 3); decode a batch (B, T) one row at "
                            "a time"),
])
def test_decode_says_what_it_takes(tok, ids, words):
    with pytest.raises(TypeError, match="^decode takes a sequence of token ids "
                                        r"\(a list of ints or a 1-D integer array\), "
                                        + re.escape(words)):
        tok.decode(ids)


def test_id_to_token_and_token_to_id_are_inverse():
    for tok in (BPE, CHAR):
        for i in range(tok.vocab_size):
            assert tok.token_to_id(tok.id_to_token(i)) == i
        with pytest.raises(ValueError, match="not a token"):
            tok.token_to_id("no such token")


def test_token_to_id_gives_the_lowest_of_two_ids_that_read_alike_and_a_special_over_text():
    # 257 and 258 both read "aaa"; 262 is "<eos>" merged from bytes, as the special 263 reads.
    lt, e, o, s, gt, a = b"<eos>a"
    tok = BPETokenizer([(a, a), (256, a), (a, 256), (lt, e), (o, s), (259, 260), (261, gt)],
                       special_tokens=["<eos>"])
    assert tok.id_to_token(257) == tok.id_to_token(258) == "aaa"
    assert tok.token_to_id("aaa") == 257
    assert tok.id_to_token(262) == tok.id_to_token(263) == "<eos>"
    assert tok.token_to_id("<eos>") == 263 == tok.special_id("<eos>")


def test_id_to_bytes_is_each_ids_bytes_as_they_are():
    first_byte_of_e_acute = "é".encode()[0]
    assert BPE.id_to_bytes(first_byte_of_e_acute) == bytes([first_byte_of_e_acute])
    for i, (a, b) in enumerate(BPE.merges, start=256):
        assert BPE.id_to_bytes(i) == BPE.id_to_bytes(a) + BPE.id_to_bytes(b)
    assert BPE.id_to_bytes(BPE.token_to_id("<eos>")) == b"<eos>"
    assert b"".join(BPE.id_to_bytes(i) for i in BPE.encode(TEXT)) == TEXT.encode()
    for bad in (-1, BPE.vocab_size):
        with pytest.raises(ValueError, match="cannot decode id"):
            BPE.id_to_bytes(bad)


# -- special tokens ---------------------------------------------------------------------------

@pytest.mark.parametrize("tok", [BPE, CHAR], ids=["bpe", "char"])
def test_special_tokens_are_recognised_only_when_allowed(tok):
    text = "<bos>the cat<eos><pad>"
    ids = tok.encode(text, allow_special=True)
    bos, eos, pad = (tok.token_to_id(s) for s in ("<bos>", "<eos>", "<pad>"))
    assert ids[0] == bos and ids[-2:] == [eos, pad]
    assert ids[1:-2] == tok.encode("the cat")
    assert tok.decode(ids) == text
    plain = tok.encode(text)
    assert not {bos, eos, pad} & set(plain)
    assert tok.decode(plain) == text


def test_bpe_special_tokens_take_the_last_ids_and_are_not_learned():
    assert [BPE.token_to_id(s) for s in SPECIALS] == list(range(296, 300))
    tok = BPETokenizer.train("<eos>" * 50 + "ab", 257, special_tokens=["<eos>"])
    assert tok.merges == [] and tok.vocab_size == 257
    tok = BPETokenizer.train("<eos>" * 50 + "ab", 258, special_tokens=["<eos>"])
    assert tok.merges == [(ord("a"), ord("b"))]


def test_the_longest_special_token_wins():
    tok = BPETokenizer((), special_tokens=["<e>", "<e>>"])
    assert tok.encode("<e>>", allow_special=True) == [257]


# -- determinism ------------------------------------------------------------------------------

def test_training_and_encoding_are_deterministic():
    again = BPETokenizer.train(TEXT, 300, special_tokens=SPECIALS)
    assert again.merges == BPE.merges
    fresh = BPETokenizer(BPE.merges, SPECIALS)      # an empty cache must not change anything
    assert fresh.encode(TEXT) == BPE.encode(TEXT) == BPE.encode(TEXT)


# -- save and load ----------------------------------------------------------------------------

@pytest.mark.parametrize("tok", [BPE, CHAR], ids=["bpe", "char"])
def test_save_load_round_trip(tmp_path, tok):
    path = tmp_path / "tok.json"
    tok.save(path)
    for loaded in (type(tok).load(path), Tokenizer.load(path), load_tokenizer(path)):
        assert type(loaded) is type(tok)
        assert loaded.vocab_size == tok.vocab_size
        assert loaded.special_tokens == tok.special_tokens
        assert loaded.encode(TEXT, allow_special=True) == tok.encode(TEXT, allow_special=True)
    assert json.loads(path.read_text())["type"] == tok.kind


def test_a_tokenizer_file_records_its_format_version_and_one_without_is_version_1(tmp_path):
    """A file written before the version was recorded still loads; one a later tinyformer
    wrote, which may mean other things by the same names, is refused saying what to do."""
    path = tmp_path / "tok.json"
    CHAR.save(path)
    data = json.loads(path.read_text())
    assert data["version"] == 1
    del data["version"]                                   # as an older tinyformer wrote it
    path.write_text(json.dumps(data))
    assert load_tokenizer(path).encode(TEXT) == CHAR.encode(TEXT)
    put_back = "put back the tokenizer file tinyformer wrote"
    for version, advice in [(2, "a newer tinyformer wrote it, update this one to read it"),
                            ("1", put_back), (True, put_back), (2.0, put_back), (0, put_back)]:
        path.write_text(json.dumps({**data, "version": version}))
        for load in (load_tokenizer, CharTokenizer.load):
            with pytest.raises(ValueError) as refused:
                load(path)
            assert str(refused.value) == (f"{path} is tokenizer format version {version!r}; "
                                          f"this tinyformer reads version 1: {advice}")


def test_a_saved_tokenizer_has_the_permissions_of_any_new_file(tmp_path):
    umask = os.umask(0o022)                # as most systems have it: others may read
    try:
        BPE.save(tmp_path / "tok.json")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(umask)
    modes = {(tmp_path / name).stat().st_mode & 0o777 for name in ("tok.json", "plain.json")}
    assert modes == {0o644}


def test_loading_the_wrong_kind_says_so(tmp_path):
    path = tmp_path / "tok.json"
    BPE.save(path)
    with pytest.raises(ValueError, match="holds a 'bpe' tokenizer, not 'char'"):
        CharTokenizer.load(path)


class MyChar(CharTokenizer):
    pass


class MyBPE(BPETokenizer):
    pass


@pytest.mark.parametrize("mine, other", [(MyChar.train(TEXT), BPE), (MyBPE.train(TEXT, 260), CHAR)],
                         ids=["char", "bpe"])
def test_a_subclass_of_a_tokenizer_loads_its_own_file_as_itself(tmp_path, mine, other):
    mine.save(tmp_path / "mine.json")
    loaded = type(mine).load(tmp_path / "mine.json")
    assert type(loaded) is type(mine)
    assert loaded.encode(TEXT) == mine.encode(TEXT)
    other.save(tmp_path / "other.json")
    with pytest.raises(ValueError, match=f"holds a {other.kind!r} tokenizer, not {mine.kind!r}"):
        type(mine).load(tmp_path / "other.json")


@pytest.mark.parametrize("load", [load_tokenizer, Tokenizer.load, CharTokenizer.load],
                         ids=["load_tokenizer", "Tokenizer.load", "CharTokenizer.load"])
def test_every_way_to_load_says_in_one_line_that_the_file_is_missing_or_a_directory(tmp_path,
                                                                                     load):
    for path, says in ((tmp_path / "nothing.json", "does not exist; make one with"),
                       (tmp_path, "is a directory with no tokenizer in it; give a tokenizer "
                                  "file (`tinyformer tokenize train` makes one)")):
        with pytest.raises(ValueError, match=re.escape(says)) as info:
            load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("load", [load_tokenizer, Tokenizer.load, CharTokenizer.load],
                         ids=["load_tokenizer", "Tokenizer.load", "CharTokenizer.load"])
@pytest.mark.parametrize("name", ["tokenizer.json", "tinyformer-tokenizer.json"])
def test_a_directory_holding_a_tokenizer_file_of_ours_names_that_file(tmp_path, load, name):
    """A run's directory (its tokenizer.json), or a model's that `tinyformer export` wrote
    (tinyformer-tokenizer.json): load_tokenizer reads files, and names the one to give. It once
    said "give its JSON file", and left the user to guess which of a run's files that was."""
    CHAR.save(tmp_path / name)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError) as info:
        load(tmp_path)
    assert str(info.value) == (f"tokenizer {str(tmp_path)!r} is a directory; give its tokenizer "
                               f"file, {str(tmp_path / name)!r}")
    assert load(tmp_path / name).encode(TEXT) == CHAR.encode(TEXT)


def test_a_directory_holding_a_tokenizer_model_says_what_to_fetch(tmp_path):
    """As the readers of a model's directory say it (tinyformer.pretrained's)."""
    from tinyformer.pretrained import read_tokenizer_json
    (tmp_path / "tokenizer.model").write_bytes(b"\n\x05<unk>\x15\x00\x00\x00\x00")
    with pytest.raises(ValueError) as ours:
        load_tokenizer(tmp_path)
    with pytest.raises(ValueError) as theirs:
        read_tokenizer_json(tmp_path)
    assert str(ours.value) == str(theirs.value)
    assert str(ours.value).startswith(f"{str(tmp_path)!r} has its tokenizer in SentencePiece's "
                                      f"or tiktoken's format (a tokenizer.model), which "
                                      f"tinyformer does not read: fetch the model's "
                                      f"tokenizer.json into it")


@pytest.mark.parametrize("content", [
    "{not json",
    "\xff\xfe",
    "[1, 2]",
    '{"type": "words"}',
    '{"type": ["bpe"]}',
    '{"type": "bpe", "special_tokens": []}',
    '{"type": "bpe", "merges": [[1, 2], [300, 1]], "special_tokens": []}',
    '{"type": "bpe", "merges": [[1, 2, 3]], "special_tokens": []}',
    '{"type": "bpe", "merges": [[256, 97]], "special_tokens": []}',    # the merge's own id
    '{"type": "bpe", "merges": "ab", "special_tokens": []}',
    '{"type": "bpe", "merges": [1], "special_tokens": []}',
    '{"type": "bpe", "merges": [[true, false]], "special_tokens": []}',
    '{"type": "bpe", "merges": [[97, 98], [97, 98]], "special_tokens": []}',  # a duplicate
    '{"type": "char", "chars": ["a", "bc"], "special_tokens": []}',
    '{"type": "char", "chars": ["a"], "special_tokens": [""]}',
    '{"type": "char", "chars": ["a"], "special_tokens": "<eos>"}',
])
def test_a_corrupted_file_gives_a_one_line_value_error(tmp_path, content):
    path = tmp_path / "tok.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ValueError) as info:
        load_tokenizer(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_merges_that_double_a_token_are_refused_before_the_memory_runs_out(tmp_path):
    # Merge k joins token 255 + k with itself: token 256 + k has 2 ** (k + 1) bytes.
    doubling = [[97, 97]] + [[256 + k, 256 + k] for k in range(60)]
    path = tmp_path / "tok.json"
    path.write_text(json.dumps({"type": "bpe", "merges": doubling, "special_tokens": []}))
    with pytest.raises(ValueError, match="merge 20 makes a token of 2097152 bytes") as info:
        load_tokenizer(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_merges_that_make_many_long_tokens_are_refused_before_the_memory_runs_out():
    # A token of 512 KiB, then that token joined with each byte: each is short enough alone.
    doubling = [(97, 97)] + [(256 + k, 256 + k) for k in range(18)]
    many = [(274, b) for b in range(256)] * 3
    with pytest.raises(ValueError, match=r"brings its tokens to \d+ bytes in all"):
        BPETokenizer(doubling + [(pair[0], pair[1]) for pair in many[:256]] +
                     [(275 + k, 98) for k in range(600)])


def test_training_never_merges_a_token_longer_than_a_tokenizer_may_hold(monkeypatch):
    # 2 MiB of one letter trained, told it had 22 merges, into a tokenizer that its
    # constructor then refused ("merge 20 makes a token of 2097152 bytes"). A limit of 8
    # bytes stands in for the mebibyte: "a" * 8 is the longest token, and the next merge is
    # the next pair ("b" after the space), as the tokenizers library's max_token_length skips;
    # the "a" left over is never joined to an "a" * 8 (9 bytes, one past the limit).
    monkeypatch.setattr(BPETokenizer, "MAX_TOKEN_BYTES", 8)
    text = "a" * 33 + " bc"
    tok = BPETokenizer.train(text, 260)
    assert tok.merges == [(97, 97), (256, 256), (257, 257), (32, 98)]
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError, match=r"only 5 merges to learn; .* at most 261$"):
        BPETokenizer.train(text, 262)


def test_training_that_would_pass_the_vocabularys_bytes_names_the_size_that_trains(
        monkeypatch):
    # As the constructor refuses a tokenizer of over MAX_VOCABULARY_BYTES in all, after the
    # training, where the advice to take fewer merges belongs. 256 bytes + 2 + 4 + 8 = 270.
    monkeypatch.setattr(BPETokenizer, "MAX_VOCABULARY_BYTES", 270)
    with pytest.raises(ValueError, match=r"^the text's merges make tokens of more than 270 "
                                         r"bytes in all, .* at most 259$"):
        BPETokenizer.train("a" * 32, 261)
    assert BPETokenizer.train("a" * 32, 259).merges == [(97, 97), (256, 256), (257, 257)]


def test_a_token_of_a_mebibyte_still_loads(tmp_path):
    # As a BPE trained on a megabyte of one letter doubles "a": long tokens, an honest file.
    tok = BPETokenizer([(97, 97)] + [(256 + k, 256 + k) for k in range(19)])
    assert tok.decode([tok.vocab_size - 1]) == "a" * 2 ** 20
    tok.save(tmp_path / "tok.json")
    assert load_tokenizer(tmp_path / "tok.json").merges == tok.merges


def test_special_tokens_too_long_to_find_are_refused_naming_the_file(tmp_path, monkeypatch):
    # Finding special tokens compiles a pattern of them, over 100 times their size: a file
    # with one of megabytes would fill the memory. One at the cap is fine; one over is refused
    # (cut short), as are many that are too long together.
    at_the_cap = "<" + "x" * (tokenizers.MAX_SPECIAL_TOKEN_CHARACTERS - 2) + ">"
    assert CharTokenizer(["a"], [at_the_cap]).encode(at_the_cap, allow_special=True) == [0]
    path = tmp_path / "tok.json"
    monkeypatch.setattr(tokenizers, "MAX_SPECIAL_CHARACTERS", 9)       # small, for the test
    for special_tokens, message in [
            ([at_the_cap + "x"], f"special token '<xxxx.*\\.\\.\\.' \\({len(at_the_cap) + 1:,} "
                                 f"characters\\) is too long"),
            (["<one>", "<two>"], "the 2 special tokens have 10 characters in all")]:
        path.write_text(json.dumps({"type": "bpe", "merges": [], "special_tokens":
                                    special_tokens}))
        with pytest.raises(ValueError, match=message) as info:
            load_tokenizer(path)
        assert str(path) in str(info.value) and len(str(info.value)) < 500
        with pytest.raises(ValueError, match=message):                 # nor trained with
            BPETokenizer.train("ab", 256 + len(special_tokens), special_tokens)


def test_a_byte_order_must_name_each_byte_once():
    for order in ([0] * 256, range(255), [*range(255), 256], [False, True, *range(2, 256)],
                  [0.0, *range(1, 256)], ["0", *range(1, 256)]):
        with pytest.raises(ValueError, match="^byte_order must list each of the bytes 0-255 once"):
            BPETokenizer(byte_order=order)


def test_special_id_is_the_special_tokens_id_or_none():
    tok = BPETokenizer.train("abab abab", 258, special_tokens=["<|endoftext|>"])
    assert tok.special_id("<|endoftext|>") == 257 == tok.encode("<|endoftext|>",
                                                                 allow_special=True)[0]
    assert tok.special_id("<eos>") is None and tok.special_id("a") is None


def test_a_merge_of_a_strangers_megabytes_long_value_is_named_cut_short(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text(json.dumps({"type": "bpe", "merges": [["x" * 100_000, 1]],
                                "special_tokens": []}))
    with pytest.raises(ValueError, match=r"merge 0 is \['xxx.*\.\.\..*: not a pair") as info:
        load_tokenizer(path)
    assert len(str(info.value)) < 500


def test_an_empty_special_token_is_refused_saying_to_leave_it_out():
    for make in (lambda: CharTokenizer.train("xyz", special_tokens=["<eos>", ""]),
                 lambda: BPETokenizer.train(TEXT, 300, special_tokens=[""])):
        with pytest.raises(ValueError, match=r"^special tokens must be non-empty strings, got "
                           r"\[.*''\]; leave out the empty ones \(an empty list for no special "
                           r"tokens at all\)$"):
            make()


def test_check_special_tokens_raises_what_its_help_says_for_a_lone_string():
    assert "TypeError" in tokenizers.check_special_tokens.__doc__
    with pytest.raises(TypeError):
        tokenizers.check_special_tokens("<eos>")


# -- a BPE's <mask> takes the whitespace before it ----------------------------------------------

def test_a_bpe_mask_takes_the_space_before_it_as_robertas_does():
    """A BERT hides whole tokens, and a word's token holds its space (" sat"): "on <mask>."
    read as a lone space and the mask, a space the model never saw before a hidden token,
    and it filled the mask with another space. The mask takes the space, as RoBERTa's <mask>
    (lstrip) does, and the model's " sat" in its place reads back with one space."""
    mask, sat = BPE.token_to_id("<mask>"), BPE.encode(" sat")
    assert len(sat) == 1
    for text, before in [("they <mask> again", "they"), ("they  \t\n<mask> again", "they"),
                         ("<mask> again", "")]:
        ids = BPE.encode(text, allow_special=True)
        assert ids == BPE.encode(before) + [mask] + BPE.encode(" again"), text
        filled = [sat[0] if i == mask else i for i in ids]
        assert BPE.decode(filled) == f"{before} sat again"
    # No other token takes its whitespace, and plain text is as it was
    assert BPE.encode("a <eos>", allow_special=True) == BPE.encode("a ") + [BPE.special_id("<eos>")]
    assert BPE.encode("they <mask> again") == BPE.encode("they ") + BPE.encode("<mask> again")
    for text in [TEXT, "they <mask> again", " \t x  "]:
        assert BPE.decode(BPE.encode(text)) == text
    # A char tokenizer's mask hides one character, a space as any other: it takes none.
    assert CHAR.encode("on <mask>", allow_special=True) == CHAR.encode("on ") + [
        CHAR.special_id("<mask>")]


def test_which_special_tokens_take_the_space_survives_saving_and_old_files_load(tmp_path):
    path = tmp_path / "tok.json"
    BPE.save(path)
    assert "lstrip" not in json.loads(path.read_text())      # as files were written before
    assert load_tokenizer(path).lstrip_tokens == ["<mask>"]
    # One saved before which tokens take spaces was written: its mask takes the space too
    path.write_text(json.dumps({"type": "bpe", "merges": [], "special_tokens": ["<mask>"]}))
    assert load_tokenizer(path).encode("a <mask>", allow_special=True) == [97, 256]
    for lstrip, rstrip in [([], []), (["<eos>"], ["<mask>"])]:
        tok = BPETokenizer(BPE.merges, SPECIALS, lstrip=lstrip, rstrip=rstrip)
        tok.save(path)
        loaded = load_tokenizer(path)
        assert (loaded.lstrip_tokens, loaded.rstrip_tokens) == (lstrip, rstrip)
        assert loaded.encode(" <eos> <mask> x", True) == tok.encode(" <eos> <mask> x", True)
    assert load_tokenizer(path).encode(" <eos> <mask> x", allow_special=True) == [
        BPE.special_id("<eos>"), ord(" "), BPE.special_id("<mask>"), ord("x")]
    with pytest.raises(ValueError, match=r"^lstrip token '<sep>' is not one of the special "
                                         r"tokens \['<pad>', "):
        BPETokenizer(BPE.merges, SPECIALS, lstrip=["<sep>"])


def test_special_spans_take_whitespace_only_up_to_the_next_token():
    # A token that takes the whitespace after it (rstrip) takes it all before a token that
    # takes the whitespace before it (lstrip): the spans meet and never overlap, and an rstrip
    # stops at a next token that begins with a space.
    pattern = tokenizers.special_pattern(["<s>", "<mask>", " <x>"])
    spans = tokenizers.special_spans(pattern, "a<s>  <mask> b<s>  <x>",
                                     lstrip={"<mask>"}, rstrip={"<s>"})
    assert spans == [(1, 6, "<s>"), (6, 12, "<mask>"), (14, 18, "<s>"), (18, 22, " <x>")]


def test_len_of_a_tokenizer_is_its_vocab_size_its_padding_included():
    # As len() of a Hugging Face tokenizer; a model's embedding takes vocab_size rows.
    tok = CharTokenizer.train("hello", special_tokens=["<eos>"])
    assert len(tok) == tok.vocab_size == 5
    tok.pad_to(8)
    assert len(tok) == 8


def test_a_text_given_as_a_char_vocabulary_names_the_character_twice_and_train():
    with pytest.raises(ValueError, match=r"holds the character 'l' twice: .*CharTokenizer\.train"):
        CharTokenizer("hello")
