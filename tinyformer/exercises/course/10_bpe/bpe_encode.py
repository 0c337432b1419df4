"""Encoding and decoding with learned merges

Training gave a list of merges: merges[k] = (a, b) says that id 256 + k stands for token a
followed by token b. That list is the whole tokenizer.

Decoding is easy: every id stands for a byte string. Ids 0-255 are the single bytes; id 256 + k
is the bytes of a followed by the bytes of b. Build that table once, in merge order (a merge
only uses earlier ids), join the bytes of the ids, and read the result as UTF-8:

    vocab[i] = bytes([i]) for i < 256;   vocab[256 + k] = vocab[a] + vocab[b]
    text = b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")

Join the BYTES before decoding: one character may be several bytes ("é" is 195 169) split
over two tokens. errors="replace" turns bytes that are not valid UTF-8 (ids chosen freely, as
a model's samples are, can cut a character in two) into "\ufffd", as BPETokenizer.decode does.

Encoding replays the merges on new text, in the order they were learned. Start from the text's
bytes; while some neighbouring pair is one of the merges, take the pair of LOWEST rank (learned
earliest) among those present and merge all its occurrences (left to right, as before); stop
when no neighbouring pair is a merge. With merges [(97, 97), (97, 98), (256, 257)] (learned
from "aaabdaaabac"):

    "aaab":  97 97 97 98  ->  256 97 98  ->  256 257  ->  258
    "abaa":  97 98 97 97  ->  97 98 256  (aa, rank 0, before ab)  ->  257 256  (no merge left)

Text the merges never saw falls back to bytes, so every string encodes, and decoding gives it
back exactly: bpe_decode(bpe_encode(s, merges), merges) == s for every string s.
(Applying each merge once, in learned order, gives the same result as the loop above: a merge
can only create pairs that contain its new id, which no earlier merge uses.)

tinyformer/tokenizers.py's `BPETokenizer._encode_chunk` and `decode` do these two things
(`_encode_chunk` calls `apply_merges`, which takes the merges in this order from a heap,
faster for a long text).

Your task
    Write `bpe_encode` (returns a list of ints) and `bpe_decode` (returns a str). `merge` is
    given.

Check it with:  tinyformer exercises check bpe_encode
"""


def merge(ids, pair, new_id):
    """ids with every occurrence of `pair`, read left to right, replaced by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_encode(text, merges):
    """The ids of `text`: its UTF-8 bytes, with the merges applied earliest-learned first."""
    # TODO: start from ids = list(text.encode("utf-8")), the bytes as ints 0-255.
    # TODO: rank = {pair: 256 + k for k, pair in enumerate(merges)} (the id it merges into).
    # TODO: loop: among the pairs zip(ids, ids[1:]) that are in rank, take the one with the
    #       smallest rank; if there is none, stop; otherwise merge it into its id.
    raise NotImplementedError


def bpe_decode(ids, merges):
    """The text the ids stand for."""
    # TODO: build vocab, the bytes of every id (256 single bytes, then one entry per merge).
    # TODO: join the bytes of the ids and decode them as UTF-8 with errors="replace".
    raise NotImplementedError
