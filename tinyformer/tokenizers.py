"""Tokenizers: text -> list of integer ids -> text.

A language model sees integers, never text. A tokenizer fixes a vocabulary of pieces and
cuts a text into them; the model embeds each piece's id. Two are here:

    CharTokenizer   one id per character of a fixed alphabet. Tiny vocabulary, long sequences,
                    and it cannot encode a character it was not built with.
    BPETokenizer    byte-level byte-pair encoding, as GPT-2. It starts from the 256 bytes, so
                    every string encodes (as its UTF-8 bytes), and learns merges that give
                    frequent byte sequences ("the", " and") ids of their own: short sequences
                    for common text, graceful fallback to bytes for rare text.

Both may reserve special tokens (`<pad> <bos> <eos> <mask>`), strings with ids of their own
that mark structure rather than text. As in GPT-2, a special token written in the text is
recognised only when asked (`encode(text, allow_special=True)`); by default it is plain text,
so a user's input cannot smuggle in an `<eos>`.

Both save to and load from JSON (`{"type": "char" | "bpe", ...}`); `load_tokenizer(path)` reads
either.
"""

import json
import re
from collections import Counter, defaultdict
from functools import cached_property

from .files import atomic_write


def check_special_tokens(special_tokens):
    """The special tokens as a list; ValueError unless they are distinct non-empty strings."""
    special_tokens = list(special_tokens)
    if not all(isinstance(s, str) and s for s in special_tokens):
        raise ValueError(f"special tokens must be non-empty strings, got {special_tokens!r}")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special tokens must be distinct, got {special_tokens!r}")
    return special_tokens


def special_pattern(special_tokens):
    """A regex matching any of the special tokens (None if there are none). Longest first, so
    that of two where one starts the other ("<eos>", "<eos2>") the longer wins."""
    if not special_tokens:
        return None
    return re.compile("|".join(re.escape(s) for s in sorted(special_tokens, key=len,
                                                               reverse=True)))


class Tokenizer:
    """What both tokenizers share: special tokens, encode/decode, inspection, save/load.
    A subclass names its `kind` (the JSON "type"), encodes ordinary text (`_encode_text`,
    given the text's offset in the input for its error messages), spells out each id (`_piece`),
    joins pieces (`_join`), shows them (`_readable`), and converts itself to and from JSON."""

    kind = None

    def __init__(self, special_tokens, first_special_id):
        self.special_tokens = check_special_tokens(special_tokens)
        self._special_ids = {s: first_special_id + i for i, s in enumerate(self.special_tokens)}
        self._special_re = special_pattern(self.special_tokens)

    # -- encoding and decoding -------------------------------------------------------------

    def encode(self, text, allow_special=False):
        """The ids of `text` (list of int). Special tokens written in the text get their own
        ids only with allow_special=True; otherwise they are encoded as the text they are."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        ids = []
        start = 0
        if allow_special and self._special_re is not None:
            for match in self._special_re.finditer(text):
                ids.extend(self._encode_text(text[start:match.start()], start))
                ids.append(self._special_ids[match.group()])
                start = match.end()
        ids.extend(self._encode_text(text[start:], start))
        return ids

    def decode(self, ids):
        """The text of a sequence of ids (ints or a numpy array)."""
        return self._join([self._piece(self._check_id(i)) for i in ids])

    def _check_id(self, i):
        i = int(i)
        if not 0 <= i < self.vocab_size:          # a negative id would index from the end
            raise ValueError(f"cannot decode id {i}: the vocabulary has ids 0 to "
                             f"{self.vocab_size - 1}")
        return i

    # -- inspection --------------------------------------------------------------------------

    def tokens_of(self, text, allow_special=False):
        """How `text` splits: the readable piece of each of its tokens."""
        return [self.id_to_token(i) for i in self.encode(text, allow_special)]

    def id_to_token(self, i):
        """The readable piece that id i stands for."""
        return self._readable(self._piece(self._check_id(i)))

    def token_to_id(self, token):
        """The id whose readable piece is `token` (the inverse of id_to_token); ValueError if
        no entry of the vocabulary reads so."""
        try:
            return self._token_ids[token]
        except (KeyError, TypeError):
            raise ValueError(f"{token!r} is not a token of this vocabulary") from None

    @cached_property
    def _token_ids(self):
        # Should two ids read the same (BPE can build one byte string by two merge orders),
        # the lowest id wins, and a special token wins over text.
        token_ids = {}
        for i in range(self.vocab_size):
            token_ids.setdefault(self.id_to_token(i), i)
        return {**token_ids, **self._special_ids}

    # -- save and load -----------------------------------------------------------------------

    def save(self, path):
        """Write the tokenizer as JSON (no pickle: loading a file never runs code), all or
        nothing: a failure part way leaves any earlier file at `path` as it was."""
        with atomic_write(path, encoding="utf-8") as f:
            # ensure_ascii (the default) writes every non-ASCII character as \\uXXXX, so any
            # character, even a lone surrogate, survives the file.
            json.dump({"type": self.kind, **self._fields()}, f)

    @classmethod
    def load(cls, path):
        """Read a tokenizer that `save` wrote; ValueError if the file is not one of this kind."""
        data = _read_json(path)
        if data["type"] != cls.kind:
            raise ValueError(f"{path}: holds a {data['type']!r} tokenizer, not {cls.kind!r} "
                             f"(load_tokenizer reads either)")
        return _build(cls, data, path)


def load_tokenizer(path):
    """Read any tokenizer that `save` wrote, choosing the class by the file's "type"."""
    data = _read_json(path)
    return _build(TOKENIZERS[data["type"]], data, path)


def encode_prompt(tokenizer, prompt, allow_special=False, context=None):
    """A user's prompt as ids, or a one-line ValueError that says what to change: characters
    the tokenizer cannot encode, or (given the model's `context`) more tokens than it reads."""
    try:
        ids = tokenizer.encode(prompt, allow_special=allow_special)
    except ValueError as e:
        raise ValueError(f"the prompt cannot be encoded: {e}; use only characters the model "
                         f"was trained on") from None
    if context is not None and len(ids) > context:
        raise ValueError(f"the prompt has {len(ids)} tokens; this model reads at most "
                         f"{context}")
    return ids

def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a tokenizer file: invalid JSON ({e})") from None
    kind = data.get("type") if isinstance(data, dict) else None
    # "type" may be any JSON value; a list or an object is unhashable (TypeError from `in`).
    if not isinstance(kind, str) or kind not in TOKENIZERS:
        raise ValueError(f"{path}: not a tokenizer file: expected an object with \"type\" "
                         f"one of {sorted(TOKENIZERS)}")
    return data


def _build(cls, data, path):
    """The tokenizer of class cls from a file's fields; the constructor checks them, and any
    complaint is reported in one line naming the file."""
    try:
        return cls._from_fields(data)
    except KeyError as e:
        raise ValueError(f"{path}: not a valid {cls.kind} tokenizer file: missing {e}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a valid {cls.kind} tokenizer file: {e}") from None


# ---------------------------------------------------------------------------------------------
# Characters
# ---------------------------------------------------------------------------------------------

class CharTokenizer(Tokenizer):
    """One id per character: the special tokens take ids 0, 1, ..., then the characters.

        tok = CharTokenizer.train("hello", special_tokens=["<eos>"])
        tok.encode("hole")      # [2, 4, 3, 1]: <eos>=0 e=1 h=2 l=3 o=4
    """

    kind = "char"

    def __init__(self, chars, special_tokens=()):
        chars = list(chars)
        if not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("the vocabulary must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary holds a character twice")
        super().__init__(special_tokens, first_special_id=0)
        clash = set(chars) & set(self.special_tokens)
        if clash:
            raise ValueError(f"{sorted(clash)!r} both a character and a special token")
        self.chars = chars
        self._pieces = self.special_tokens + chars
        self._ids = {c: i for i, c in enumerate(chars, start=len(self.special_tokens))}

    @classmethod
    def train(cls, text, special_tokens=()):
        """The tokenizer of the characters of `text`, in sorted (code point) order."""
        return cls(sorted(set(text)), special_tokens)

    @property
    def vocab_size(self):
        return len(self._pieces)

    def _encode_text(self, text, offset):
        try:
            return [self._ids[c] for c in text]
        except KeyError as e:
            position = offset + text.index(e.args[0])
            raise ValueError(f"cannot encode {e.args[0]!r} at position {position}: not in the "
                             f"tokenizer's {len(self.chars)}-character vocabulary") from None

    def _piece(self, i):
        return self._pieces[i]

    @staticmethod
    def _join(pieces):
        return "".join(pieces)

    @staticmethod
    def _readable(piece):
        return piece

    def _fields(self):
        return {"chars": self.chars, "special_tokens": self.special_tokens}

    @classmethod
    def _from_fields(cls, data):
        return cls(_list_of(data["chars"], "chars"), _list_of(data["special_tokens"],
                                                               "special_tokens"))


def _list_of(value, name):
    if not isinstance(value, list):
        raise TypeError(f"{name!r} must be a list")
    return value


# ---------------------------------------------------------------------------------------------
# Byte-pair encoding
# ---------------------------------------------------------------------------------------------

# GPT-2 cuts text into chunks before BPE, and merges never cross a chunk's border, so that
# "dog", "dog." and "dog!" share the token " dog" instead of learning " dog." and " dog!".
# GPT-2's pattern (with the third-party `regex` module) is
#
#     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
#
# : English contractions, then an optional space followed by a run of letters, of numbers,
# or of other symbols, then whitespace (`\s+(?!\S)` leaves the last space of a run to start
# the next word, so " world" stays one chunk). Python's `re` has no \p{L} (letter) or \p{N}
# (number), so we build them from what it has: \w is letters, numbers and "_", and \d is
# the decimal digits (category Nd). Hence
#
#     letters   [^\W\d_]        = \w without digits and "_"
#     numbers   \d
#     others    [^\s\w]|_       = neither space nor \w, and "_" (which \p{L}\p{N} exclude)
#
# The one difference: numbers that are not decimal digits (category No and Nl: "²", "½",
# "Ⅻ") count as letters here, as numbers in GPT-2. That changes only where a rare chunk
# ends; the four classes still cover every character, so the chunks always join back to the
# text.
SPLIT_PATTERN = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


def pre_split(text):
    """GPT-2's chunks of `text`: "Hello world's 42!" -> ['Hello', ' world', "'s", ' 42', '!']."""
    return SPLIT_PATTERN.findall(text)


def merge(ids, pair, new_id):
    """ids with every occurrence of pair, read left to right, replaced by new_id:
    merge([97, 97, 97, 98], (97, 97), 256) -> [256, 97, 98]."""
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (Sennrich et al. 2016; GPT-2, Radford et al. 2019).

    Vocabulary: ids 0-255 are the bytes; merge k makes id 256 + k, the concatenation of two
    earlier tokens; the special tokens come last (GPT-2's <|endoftext|> is its last id, 50256).

    Training (`train`) starts from the text's UTF-8 bytes and repeats: count every adjacent
    pair of tokens, and merge the most frequent pair into a new token, everywhere. On
    "aaabdaaabac" (the example of Wikipedia's article on byte-pair encoding):

        a a a b d a a a b a c       most frequent pair (a, a), 4 times: new token Z = aa
        Z a b d Z a b a c           (Z, a) and (a, b) tie at 2; the smaller ids win: Y = ab
        Z Y d Z Y a c               (Z, Y), twice: X = ZY = aaab
        X d X a c                   merges = [(a, a), (a, b), (Z, Y)]

    Encoding (`encode`) replays the merges on new text in the order they were learned: while
    some adjacent pair is a learned merge, merge the earliest-learned one. "aaab" -> Z a b ->
    Z Y -> X. Text the merges never saw ("é" is two bytes) falls back to its bytes, so every
    string encodes, and decoding concatenates the bytes and reads them as UTF-8: exact for any
    text. Both work within GPT-2's chunks (`pre_split`): a token never spans two words.
    """

    kind = "bpe"
    CACHE_LIMIT = 100_000          # chunks whose encoding is remembered (bounds the memory)

    def __init__(self, merges=(), special_tokens=()):
        merges = [tuple(pair) for pair in merges]
        self._bytes = [bytes([b]) for b in range(256)]     # id -> the bytes it stands for
        for new_id, pair in enumerate(merges, start=256):
            if len(pair) != 2 or not all(isinstance(t, int) and 0 <= t < new_id for t in pair):
                raise ValueError(f"merge {new_id - 256} is {list(pair)!r}: not a pair of "
                                 f"existing ids (below {new_id})")
            self._bytes.append(self._bytes[pair[0]] + self._bytes[pair[1]])
        super().__init__(special_tokens, first_special_id=len(self._bytes))
        self.merges = merges
        self._rank = {pair: new_id for new_id, pair in enumerate(merges, start=256)}
        self._cache = {}                                     # chunk -> its ids

    @classmethod
    def train(cls, text, vocab_size, special_tokens=()):
        """Learn vocab_size - 256 - len(special_tokens) merges from `text`, so that the
        tokenizer's vocab_size is exactly the one asked for. Special tokens written in the text
        are borders, not text to learn from. Ties between equally frequent pairs go to the
        smallest pair of ids, so training is deterministic."""
        special_tokens = check_special_tokens(special_tokens)
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size {vocab_size} is below the 256 bytes plus "
                             f"{len(special_tokens)} special tokens")
        # The work is proportional to the number of distinct chunks, not to the text's length:
        # a word that occurs 1000 times is one entry with weight 1000.
        specials = special_pattern(special_tokens)
        between_specials = specials.split(text) if specials else [text]
        chunk_counts = Counter(chunk for part in between_specials for chunk in pre_split(part))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        counts = list(chunk_counts.values())

        # pair -> how often it occurs (weighted), and pair -> which words may hold it.
        pair_counts = Counter()
        holders = defaultdict(set)
        for w, (ids, count) in enumerate(zip(words, counts)):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += count
                holders[pair].add(w)

        merges = []
        for new_id in range(256, 256 + n_merges):
            if not pair_counts:
                raise ValueError(f"the text has only {len(merges)} merges to learn; ask for a "
                                 f"vocab_size of at most {new_id + len(special_tokens)}")
            best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
            merges.append(best)
            # Only the words holding the pair change: take their old pairs out of the counts
            # and put their new pairs in, rather than recounting the whole text.
            for w in holders.pop(best):
                ids, count = words[w], counts[w]
                merged = merge(ids, best, new_id)
                if len(merged) == len(ids):      # an earlier merge took the pair from the word
                    continue
                for pair in zip(ids, ids[1:]):
                    pair_counts[pair] -= count
                    if pair_counts[pair] == 0:
                        del pair_counts[pair]
                for pair in zip(merged, merged[1:]):
                    pair_counts[pair] += count
                    holders[pair].add(w)
                words[w] = merged
        return cls(merges, special_tokens)

    @property
    def vocab_size(self):
        return len(self._bytes) + len(self.special_tokens)

    def _encode_text(self, text, offset):
        ids = []
        for chunk in pre_split(text):
            if chunk not in self._cache:
                if len(self._cache) >= self.CACHE_LIMIT:
                    self._cache.clear()
                self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(self._cache[chunk])
        return ids

    def _encode_chunk(self, chunk):
        ids = list(chunk.encode("utf-8"))
        while len(ids) > 1:
            # The earliest-learned merge among the adjacent pairs; `none` if no pair is a merge.
            none = len(self._bytes)
            new_id = min(self._rank.get(pair, none) for pair in zip(ids, ids[1:]))
            if new_id == none:
                break
            ids = merge(ids, self.merges[new_id - 256], new_id)
        return ids

    def _piece(self, i):
        if i < len(self._bytes):
            return self._bytes[i]
        return self.special_tokens[i - len(self._bytes)].encode("utf-8")

    @staticmethod
    def _join(pieces):
        # errors="replace": ids chosen freely (a model's samples) may cut a character's bytes
        # apart; the ids of a valid text always decode exactly.
        return b"".join(pieces).decode("utf-8", errors="replace")

    @staticmethod
    def _readable(piece):
        # A token may hold part of a character's bytes; show those as \xNN.
        return piece.decode("utf-8", errors="backslashreplace")

    def _fields(self):
        return {"merges": [list(pair) for pair in self.merges],
                "special_tokens": self.special_tokens}

    @classmethod
    def _from_fields(cls, data):
        merges = _list_of(data["merges"], "merges")
        if not all(isinstance(pair, list) for pair in merges):
            raise TypeError("'merges' must be a list of [id, id] pairs")
        return cls(merges, _list_of(data["special_tokens"], "special_tokens"))


TOKENIZERS = {cls.kind: cls for cls in (CharTokenizer, BPETokenizer)}
