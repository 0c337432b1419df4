"""Attention maps: MultiHeadAttention's opt-in `record_weights` (the readable path's softmax,
rows summing to 1, the future blocked), viz.attention's maps and grid, and `tinyformer
attention` for GPT, BERT and the encoder-decoder; every bad input is one line `Error: ...`,
exit status 2, and no file written."""

import math

import numpy as np
import pytest
from click.testing import CliRunner

import tinyautograd as ta
from tinyformer.attention import KVCache, MultiHeadAttention, causal_mask, padding_mask

pytest.importorskip("matplotlib")
from figures import assert_every_text_inside  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from tinyformer_cli import main  # noqa: E402
from tinyformer.checkpoint import load_model  # noqa: E402
from viz.attention import (AttentionMap, TooBigForPage, attention_figure,  # noqa: E402
                            attention_maps, choose_map, plot_attention, shown_tokens,
                            token_labels)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "2", "--iters", "2"]
SEQ2SEQ = ["--task", "reverse", "--min-len", "3", "--max-len", "5", "--n-layer", "1",
           "--d-model", "16", "--n-head", "2", "--iters", "2", "--batch-size", "4"]
PROMPTS = {"gpt": "eve has a kite", "bert": "the kite <mask>", "transformer": "01234"}


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ------------------------------------------------------------ recording in MultiHeadAttention


def expected_weights(attn, x, mask, bias=0.0):
    """softmax(q k^T / sqrt(d) + bias + blocked) in plain numpy, from the module's own
    projections."""
    def heads(linear):                         # (B, T, C) -> (B, H, T, d)
        y = x @ linear.weight.data + linear.bias.data
        B, T, _ = y.shape
        return y.reshape(B, T, attn.n_head, attn.d_head).transpose(0, 2, 1, 3)

    q, k = heads(attn.q), heads(attn.k)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(attn.d_head) + bias
    scores = np.where(mask, scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("masking", ["causal", "padding"])
def test_recorded_weights_are_the_softmax_of_the_scores(masking):
    ta.manual_seed(0)
    attn = MultiHeadAttention(d_model=8, n_head=2)
    x = np.random.default_rng(1).standard_normal((2, 5, 8))
    mask = (causal_mask(5) if masking == "causal"
            else padding_mask(np.arange(5)[None, :] < np.array([[5], [3]])))
    plain = attn(ta.Tensor(x), mask=mask).data
    assert attn.last_weights is None                       # off by default: nothing kept

    attn.record_weights = True
    recorded = attn(ta.Tensor(x), mask=mask).data
    weights = attn.last_weights
    assert isinstance(weights, np.ndarray) and weights.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(weights, expected_weights(attn, x, mask), atol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(recorded, plain)         # the output is the fused path's
    if masking == "causal":                                # the future weighs exactly 0
        assert (weights[..., ~causal_mask(5)] == 0).all()
    else:                                                  # and so does padding
        assert (weights[1, :, :, 3:] == 0).all()


@pytest.mark.parametrize("n_kv_head", [2, 1])
def test_recorded_weights_are_those_the_bias_shifted(n_kv_head):
    # A bias (ALiBi's, T5's) changes what each query attends to: the recorded weights are the
    # ones the output was computed with, bias included, grouped heads too.
    ta.manual_seed(0)
    attn = MultiHeadAttention(d_model=8, n_head=2, n_kv_head=n_kv_head)
    attn.record_weights = True
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 8))
    bias = 3 * rng.standard_normal((1, 2, 4, 4))            # one for each head
    attn(ta.Tensor(x), mask=causal_mask(4), bias=bias)
    if n_kv_head == 1:                                      # the one key head, for both
        attn.k.weight.data = np.tile(attn.k.weight.data, 2)
        attn.k.bias.data = np.tile(attn.k.bias.data, 2)
    np.testing.assert_allclose(attn.last_weights, expected_weights(attn, x, causal_mask(4), bias),
                               atol=1e-6)


def test_a_weight_float32_rounds_to_0_is_recorded_above_0_and_only_a_blocked_key_at_0():
    # A weight of exactly 0 is drawn blank and said "blocked by the mask" on the page: a far
    # key that ALiBi's bias puts 200 below the others (float32's softmax: 0.0) was said so,
    # though the mask let it be read. A key the mask blocks, or a bias of -inf, is 0. So with
    # 1, as in the logit lens: the key beside that far one (float32's softmax: 1.0) read
    # 1.0000 on the page, where the head reads the far key too.
    from viz.attention_page import BLOCKED, NEAR_ONE, SCALE, encode_weights
    ta.manual_seed(0)
    attn = MultiHeadAttention(d_model=8, n_head=2)
    attn.record_weights = True
    x = np.random.default_rng(1).standard_normal((1, 4, 8))
    bias = np.zeros((4, 4))
    bias[:, 0] = -200.0                                # key 0: far behind, but readable
    bias[3, 1] = -np.inf                               # key 1 ruled out for query 3
    attn(ta.Tensor(x), mask=causal_mask(4), bias=bias)
    weights = attn.last_weights[0]                                        # (H, T, T)
    far = weights[:, 1:, 0]                            # (query 0 reads key 0 alone)
    assert (far > 0).all() and (far < 1e-30).all()
    assert (weights[:, 3, 1] == 0).all() and (weights[..., ~causal_mask(4)] == 0).all()
    np.testing.assert_allclose(weights.sum(axis=-1)[:, 1:], 1.0, atol=1e-6)
    coded = np.array(encode_weights(weights[0]))
    assert (coded[1:, 0] != BLOCKED).all() and coded[3, 1] == BLOCKED
    # Query 1 reads keys 0 and 1: key 1's weight is below 1; query 0 reads key 0 alone: 1.
    assert (weights[:, 1, 1] < 1).all() and coded[1, 1] == NEAR_ONE
    assert (weights[:, 0, 0] == 1).all() and coded[0, 0] == SCALE


def test_recording_with_a_kv_cache_sees_every_earlier_token():
    ta.manual_seed(0)
    attn = MultiHeadAttention(d_model=8, n_head=2)
    attn.record_weights = True
    x = np.random.default_rng(1).standard_normal((1, 4, 8))
    full = attn(ta.Tensor(x), mask=causal_mask(4))
    full_weights = attn.last_weights
    cache = KVCache()
    attn(ta.Tensor(x[:, :3]), mask=causal_mask(3), cache=cache)
    cache.length += 3
    attn(ta.Tensor(x[:, 3:]), mask=causal_mask(1, 3), cache=cache)
    assert attn.last_weights.shape == (1, 2, 1, 4)          # one new query, four keys
    np.testing.assert_allclose(attn.last_weights[:, :, 0], full_weights[:, :, 3], atol=1e-6)
    assert full.shape == (1, 4, 8)


# --------------------------------------------------------------------- tiny trained models


@pytest.fixture(scope="module")
def runs(tmp_path_factory, two_step_gpt_run, train_unplotted):
    """kind -> the run directory of a model trained for two steps. The GPT's, `train TINY`, is
    the run conftest trains once for every module that reads it; the others draw no loss plot,
    which no test here reads."""
    root = tmp_path_factory.mktemp("runs")
    options = {"bert": TINY + ["--model", "bert"], "transformer": SEQ2SEQ}
    for kind, args in options.items():
        result = train_unplotted(*args, "--out", root / kind)
        assert result.exit_code == 0, result.output
    return {"gpt": two_step_gpt_run.out, **{kind: root / kind for kind in options}}


def is_png(path):
    return path.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("kind,which", [("gpt", None), ("bert", None), ("transformer", None),
                                        ("transformer", "encoder"),
                                        ("transformer", "decoder"), ("gpt", "decoder"),
                                        ("bert", "encoder"), ("bert", "self")])
def test_attention_command_writes_a_png(runs, tmp_path, kind, which):
    out = tmp_path / "att.png"
    extra = [] if which is None else ["--which", which]
    result = tinyformer("attention", "--checkpoint", runs[kind], "--prompt", PROMPTS[kind],
                        "--out", out, *extra)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert is_png(out)


def test_without_out_the_picture_is_attention_png_here(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = tinyformer("attention", "--checkpoint", runs["gpt"], "--prompt", PROMPTS["gpt"])
    assert result.exit_code == 0 and result.stdout == "attention.png\n", result.output
    assert is_png(tmp_path / "attention.png")


def test_without_which_a_seq2seq_shows_its_cross_attention_as_the_help_says(runs):
    for kind, default in (("gpt", "self"), ("bert", "self"), ("transformer", "cross")):
        model, _, _ = load_model(runs[kind])
        assert choose_map(model, None) == default, kind


def test_maps_have_one_heatmap_per_layer_and_head(runs):
    model, tokenizer, _ = load_model(runs["gpt"])
    maps = attention_maps(model, tokenizer, PROMPTS["gpt"], "gpt")
    (chosen,) = maps.values()
    T = len(PROMPTS["gpt"])
    assert chosen.weights.shape == (1, 2, T, T)
    assert chosen.queries == chosen.keys and chosen.queries[3] == "␣"   # spaces made visible
    np.testing.assert_allclose(chosen.weights.sum(-1), 1.0, atol=1e-5)
    assert (chosen.weights[..., ~causal_mask(T)] == 0).all()
    assert not any(attn.record_weights for attn in (b.attn for b in model.decoder.layers))


def test_each_layers_map_is_that_layers_own_bottom_up(runs):
    # Layer 2's queries and keys zeroed: its heads spread each query evenly over the keys it
    # may see, which layer 1's do not. Drawn in the other order, a student would be told the
    # first layer does what the second does.
    from tinyformer.gpt import GPT
    loaded, tokenizer, _ = load_model(runs["gpt"])
    ta.manual_seed(0)
    model = GPT(vocab_size=loaded.embed.tok.weight.shape[0], context=16, n_layer=2, n_head=2,
                d_model=16)
    top = model.decoder.layers[1].attn
    for linear in (top.q, top.k):
        linear.weight.data[...] = 0
        linear.bias.data[...] = 0
    T = len(PROMPTS["gpt"])
    even = np.where(causal_mask(T), 1 / np.arange(1, T + 1)[:, None], 0.0)
    weights = attention_maps(model, tokenizer, PROMPTS["gpt"], "gpt")["self"].weights
    np.testing.assert_allclose(weights[1], np.broadcast_to(even, (2, T, T)), atol=1e-6)
    assert not np.allclose(weights[0], even, atol=1e-3)


def test_a_model_left_training_is_drawn_as_it_decodes_without_dropout(runs):
    # Dropout before layer 2 would change what it sees, so the picture would change from one
    # drawing to the next and show weights the model never uses when it writes.
    from tinyformer.gpt import GPT
    loaded, tokenizer, _ = load_model(runs["gpt"])
    ta.manual_seed(0)
    model = GPT(vocab_size=loaded.embed.tok.weight.shape[0], context=16, n_layer=2, n_head=2,
                d_model=16, dropout=0.5)
    drawn = [attention_maps(model, tokenizer, PROMPTS["gpt"], "gpt")["self"].weights
             for _ in range(2)]
    assert model.training                                  # left as it was
    model.eval()
    as_decoding = attention_maps(model, tokenizer, PROMPTS["gpt"], "gpt")["self"].weights
    np.testing.assert_array_equal(drawn[0], as_decoding)
    np.testing.assert_array_equal(drawn[1], as_decoding)


def test_a_long_prompts_maps_keep_each_layers_shown_queries_only_as_it_runs():
    # Every layer's whole weights were kept to the end of the run and then copied into one
    # array: for a GPT-2 on 1,024 tokens, 600 MB twice over, of which a picture shows 128
    # rows. Now each layer's are cut to the last queries as soon as it has run: the peak is
    # about one layer's weights and the work of its softmax, well under all of them once.
    import tracemalloc

    from tinyformer.gpt import GPT
    from tinyformer.tokenizers import CharTokenizer
    tokenizer, T, n_layer, n_head = CharTokenizer("ab "), 384, 12, 2
    ta.manual_seed(0)
    model = GPT(vocab_size=tokenizer.vocab_size, context=T, n_layer=n_layer, n_head=n_head,
                d_model=16)
    prompt = ("ab " * T)[:T]
    attention_maps(model, tokenizer, prompt, "gpt", last_queries=48)   # imports done untraced
    tracemalloc.start()
    try:
        (chosen,) = attention_maps(model, tokenizer, prompt, "gpt", last_queries=48).values()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chosen.weights.shape == (n_layer, n_head, 48, T) and chosen.first_query == T - 48
    every_weight = n_layer * n_head * T * T * chosen.weights.itemsize
    assert peak < every_weight, (peak, every_weight)


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_a_picture_of_the_last_queries_maps_is_the_picture_of_every_querys(runs, kind):
    # What the command draws from the weights it keeps (the last queries') is what it drew
    # from every weight: the same cells, tokens, red lines and title.
    model, tokenizer, _ = load_model(runs[kind])
    prompt = "eve has a red k" if kind == "gpt" else "the kite <mask>"
    (whole,) = attention_maps(model, tokenizer, prompt, kind).values()
    (last,) = attention_maps(model, tokenizer, prompt, kind, last_queries=6).values()
    assert last.first_query == len(whole.queries) - 6 and last.queries == whole.queries[-6:]
    pictures = [attention_figure(chosen.weights, chosen.queries, chosen.keys, "t",
                                 max_tokens=5, first_query=chosen.first_query)
                for chosen in (whole, last)]
    drawn = [(figure.axes[0].images[0].get_array(), shown_labels(figure),
              [line.get_xdata()[0] for line in figure.axes[0].lines], figure.get_suptitle())
             for figure in pictures]
    assert drawn[0][1:] == drawn[1][1:] and "showing the last 5 of" in drawn[0][3]
    np.testing.assert_array_equal(drawn[0][0].data, drawn[1][0].data)
    np.testing.assert_array_equal(drawn[0][0].mask, drawn[1][0].mask)


def test_the_command_keeps_a_pictures_queries_only_and_a_pages_every_one(runs, tmp_path,
                                                                         monkeypatch):
    import viz.attention
    from viz.attention_page import MAX_WEIGHTS
    asked = []

    def spying(*args, **kwargs):
        asked.append(args[4:] + tuple(kwargs.values()))
        return attention_maps(*args, **kwargs)
    monkeypatch.setattr(viz.attention, "attention_maps", spying)
    for out in ("a.png", "a.html"):
        result = tinyformer("attention", "--checkpoint", runs["gpt"], "--prompt", "abc",
                            "--out", tmp_path / out)
        assert result.exit_code == 0, result.output
    # A picture keeps its last queries; a page every one, as many as a page holds.
    assert asked == [(viz.attention.SHOWN_QUERIES, None),
                     (None, MAX_WEIGHTS)]
    with pytest.raises(ValueError, match="holds its last 1 queries only; a page shows every"):
        viz.attention_page(attention_maps(*load_model(runs["gpt"])[:2], "abc", "gpt", 1), "t")
    for last_queries in (0, 2.5, True):           # no whole number from 1
        with pytest.raises(ValueError, match=f"^attention_maps: last_queries must be a whole "
                                             f"number >= 1, got {last_queries}$"):
            attention_maps(*load_model(runs["gpt"])[:2], "abc", "gpt", last_queries)


def test_berts_map_is_a_full_square_and_says_so_where_gpts_is_masked(runs):
    # A student told BERT reads both sides of each token sees it in the picture's words too.
    model, tokenizer, _ = load_model(runs["bert"])
    (chosen,) = attention_maps(model, tokenizer, PROMPTS["bert"], "bert").values()
    assert chosen.description == "bidirectional self-attention"
    assert (chosen.weights[..., ~causal_mask(len(chosen.keys))] > 0).all()
    model, tokenizer, _ = load_model(runs["gpt"])
    (chosen,) = attention_maps(model, tokenizer, PROMPTS["gpt"], "gpt").values()
    assert chosen.description == "masked self-attention"


def test_token_labels_make_blanks_visible_and_escape_control_characters():
    from tinyformer.tokenizers import CharTokenizer
    tokenizer = CharTokenizer(" \n\t\r\x1ba", special_tokens=["<bos>"])
    ids = tokenizer.encode("a \n\t\r\x1b")
    assert token_labels(tokenizer, ids) == ["a", "␣", "⏎", "⇥", "\\r", "\\x1b"]
    assert token_labels(tokenizer, [tokenizer.token_to_id("<bos>")]) == ["<bos>"]


def test_an_unknown_model_kind_is_a_value_error(runs):
    from viz.lens import lens_of_prompt
    model, tokenizer, _ = load_model(runs["gpt"])
    with pytest.raises(ValueError, match="unknown model kind 'gpt2'"):
        attention_maps(model, tokenizer, PROMPTS["gpt"], "gpt2")
    # The lens said that '<bos>' is no token, having read it as an encoder-decoder's.
    with pytest.raises(ValueError, match="unknown model kind 'llama'; choose one of gpt"):
        lens_of_prompt(model, tokenizer, PROMPTS["gpt"], "llama")


def test_seq2seq_maps_pair_the_translation_with_the_source(runs):
    model, tokenizer, _ = load_model(runs["transformer"])
    maps = attention_maps(model, tokenizer, "0123", "transformer")
    S = 4
    T = maps["decoder"].weights.shape[2]
    assert maps["decoder"].queries[0] == "<bos>"           # special tokens are shown
    assert maps["encoder"].weights.shape == (1, 2, S, S)
    assert maps["cross"].weights.shape == (1, 2, T, S)
    assert maps["cross"].keys == list("0123")
    assert maps["decoder"].weights.shape == (1, 2, T, T)
    # the decoder's queries are <bos> and every token the translation wrote but the last
    src = np.array([tokenizer.encode("0123")])
    bos, eos = tokenizer.token_to_id("<bos>"), tokenizer.token_to_id("<eos>")
    written = model.greedy_decode(src, model.context, bos, eos)[0]
    assert maps["decoder"].queries == token_labels(tokenizer, written[:-1])


def test_the_decoders_inputs_are_bos_and_the_translation_but_its_last_token():
    # An untrained model may write <bos> again and again, which hides an off-by-one: a stub
    # that writes "1 0" then <eos>.
    from tinyformer.tokenizers import CharTokenizer
    from viz.attention import translation
    tokenizer = CharTokenizer("01", special_tokens=["<bos>", "<eos>"])
    bos = tokenizer.token_to_id("<bos>")
    one, zero = tokenizer.encode("10")

    class Writes10:
        context = 8

        def greedy_decode(self, src, max_len, bos_id, eos_id):
            return np.array([[bos_id, one, zero, eos_id]])

    src, tgt = translation(Writes10(), tokenizer, "01")
    assert src.tolist() == [tokenizer.encode("01")] and tgt.tolist() == [[bos, one, zero]]


def test_a_translation_that_fills_the_context_shows_the_row_that_ends_it():
    # The reverse of a task's longest source takes the whole context: its symbols and <eos>.
    # The row of its last symbol, which chose the <eos>, is shown, as for a shorter one.
    from tinyformer.tokenizers import CharTokenizer
    from viz.attention import translation
    tokenizer = CharTokenizer("01", special_tokens=["<bos>", "<eos>"])
    bos = tokenizer.token_to_id("<bos>")
    one, zero = tokenizer.encode("10")

    class Reverses:                          # writes "10" then <eos>, as far as max_len lets it
        context = 3

        def greedy_decode(self, src, max_len, bos_id, eos_id):
            assert max_len <= self.context   # as Transformer.greedy_decode requires
            return np.array([[bos_id, one, zero, eos_id][:1 + max_len]])

    _, tgt = translation(Reverses(), tokenizer, "01")
    assert tgt.tolist() == [[bos, one, zero]]


def test_the_colours_are_on_a_square_root_scale():
    # Attention spread evenly over 4 keys (1/4 each) is drawn halfway up the scale, not dim.
    figure = attention_figure(np.full((1, 1, 4, 4), 0.25), list("abcd"), list("abcd"), "t")
    norm = figure.axes[0].images[0].norm
    assert (norm(0.0), norm(0.25), norm(1.0)) == pytest.approx((0.0, 0.5, 1.0))


def test_a_nan_weight_is_drawn_red_not_white_as_a_blocked_key_is():
    # A head of NaN weights (a model whose weights hold a NaN) was drawn all white: blocked.
    from figures import drawn_colours

    from viz.graph import NAN_COLOUR
    weights = np.array([[[[1.0, 0.0], [0.5, 0.5]], [[np.nan, 0.0], [np.nan, np.nan]]]])
    figure = attention_figure(weights, list("ab"), list("ab"), "t")
    finite, nan = figure.axes[:2]
    cells = [(0, 0), (1, 0), (0, 1), (1, 1)]                           # (key, query)
    assert drawn_colours(nan, cells) == [NAN_COLOUR, "#ffffff", NAN_COLOUR, NAN_COLOUR]
    blocked, *drawn = drawn_colours(finite, [(1, 0), (0, 0), (0, 1)])
    assert blocked == "#ffffff" and not {NAN_COLOUR, "#ffffff"} & set(drawn)
    assert figure.axes[-1].get_ylabel().endswith("red: NaN")                       # the bar
    assert "NaN" not in attention_figure(weights[:, :1], list("ab"), list("ab"),
                                         "t").axes[-1].get_ylabel()


def test_a_head_of_nan_weights_leaves_the_keys_a_cropped_map_keeps_to_the_others():
    # Summed in, it made every key's total NaN, and the first keys were kept.
    weights = np.full((1, 2, 3, 3), np.nan)
    weights[0, 0] = [0.1, 0.4, 0.5]                      # the finite head reads keys 1 and 2
    np.testing.assert_array_equal(shown_tokens(weights, max_tokens=2).keys, [1, 2])


def test_heatmaps_count_layers_and_heads_from_1_as_the_lens_and_the_course_do():
    labels = list("ab")
    figure = attention_figure(np.full((2, 3, 2, 2), 0.5), labels, labels, "t")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles[0] == "layer 1 head 1" and titles[-1] == "layer 2 head 3"


def test_only_the_bottom_row_of_heatmaps_names_the_keys_under_it():
    # The columns line up down the grid: the axis is named once, under the last layer.
    labels = list("ab")
    figure = attention_figure(np.full((2, 2, 2, 2), 0.5), labels, labels, "t")
    first_layer, last_layer = figure.axes[:2], figure.axes[2:4]
    assert [ax.get_xlabel() for ax in first_layer] == ["", ""]
    assert [ax.get_xlabel() for ax in last_layer] == ["key (attended to)"] * 2


def test_the_rows_are_named_queries_and_the_columns_keys_with_their_tokens():
    # A cross-attention map, 2 target queries by 3 source keys: each axis has its own tokens.
    figure = attention_figure(np.full((1, 2, 2, 3), 1 / 3), ["x", "y"], ["a", "b", "c"], "t")
    first, second = figure.axes[:2]
    assert first.get_ylabel() == "query (attending)" and second.get_ylabel() == ""
    assert first.get_xlabel() == second.get_xlabel() == "key (attended to)"
    assert [t.get_text() for t in first.get_yticklabels()] == ["x", "y"]
    assert [t.get_text() for t in first.get_xticklabels()] == ["a", "b", "c"]


def test_the_grid_names_queries_on_its_left_column_and_keys_on_its_bottom_row_only():
    # Every heatmap labelled both axes with every token: a 12 x 4 grid of 48 tokens had
    # 4,608 labels, most of the time it took to draw, crowding the gaps between heatmaps.
    layers, heads = 3, 2
    queries, keys = list("xyz"), list("abcd")
    figure = attention_figure(np.full((layers, heads, 3, 4), 0.25), queries, keys, "t")
    grid = np.array(figure.axes[:-1]).reshape(layers, heads)
    for (layer, head), ax in np.ndenumerate(grid):
        left, bottom = head == 0, layer == layers - 1
        assert [t.get_text() for t in ax.get_yticklabels()] == (queries if left else [])
        assert [t.get_text() for t in ax.get_xticklabels()] == (keys if bottom else [])
        assert ax.get_ylabel() == ("query (attending)" if left else "")
        assert ax.get_xlabel() == ("key (attended to)" if bottom else "")


def test_a_grid_of_strips_keeps_its_rows_close_and_their_labels_apart():
    # A short translation's cross-attention, 2 queries by 12 keys, is a strip (square cells):
    # each row of the grid was 1.8 inches all the same, the strips 1.5 inches apart and each
    # "query (attending)" floating in the gap, as near the next strip as its own.
    figure = attention_figure(np.full((3, 2, 2, 12), 1 / 12), ["<bos>", "4"],
                              list("123456789012"), "t")
    figure.draw_without_rendering()
    left_column = np.array(figure.axes[:-1]).reshape(3, 2)[:, 0]
    maps = [ax.get_window_extent() for ax in left_column]
    gaps = [(upper.y0 - lower.y1) / figure.dpi for upper, lower in zip(maps, maps[1:])]
    assert all(0 < gap < 1.0 for gap in gaps), gaps                   # inches
    labels = [ax.yaxis.label.get_window_extent() for ax in left_column]
    assert all(lower.y1 <= upper.y0 for upper, lower in zip(labels, labels[1:]))
    assert_every_text_inside(figure)


@pytest.mark.parametrize("shape", [(2, 1, 2, 2), (1, 1, 4, 2), (2, 2, 2, 5)])
def test_a_small_maps_heatmaps_are_at_least_1_2_inches_along_their_longer_side(shape):
    # The rows of the grid are no longer 1.8 inches whatever the map (a strip sat far from the
    # next): a map of a few tokens gets cells big enough to fill 1.2 inches all the same,
    # where 0.14 inch a token drew two tokens as a stamp a third of an inch wide.
    layers, heads, queries, keys = shape
    figure = attention_figure(np.full(shape, 1 / keys), list("abcde")[:queries],
                              list("abcde")[:keys], "t")
    figure.draw_without_rendering()
    for ax in figure.axes[:-1]:
        extent = ax.get_window_extent()
        assert max(extent.width, extent.height) / figure.dpi >= 1.2, (extent, figure.dpi)
    assert_every_text_inside(figure)


@pytest.mark.parametrize("shape", [(1, 1, 3, 3), (2, 1, 5, 4)])
def test_a_one_head_grid_keeps_its_whole_title_in_the_picture(shape):
    # One head makes a narrow figure; the title the command gives it is wider, and was cut
    # off at both ends.
    title = ("transformer-reverse (transformer): decoder cross-attention (target -> source) "
             "- 2 layers x 1 head")
    figure = attention_figure(np.full(shape, 1 / shape[-1]), ["a"] * shape[2],
                              ["b"] * shape[3], title)
    assert_every_text_inside(figure)
    assert " ".join(figure.get_suptitle().split()) == title


@pytest.mark.parametrize("layers, heads", [(12, 2), (2, 4), (1, 1)])
def test_the_colour_bar_is_narrow_and_every_label_stays_in_the_picture(layers, heads):
    # The colour bar was a twentieth of its height: for a 12-layer model more than half an
    # inch wide, which pushed the grid's "query (attending)" labels off the left edge.
    text = "a red kite."            # (the labels' count is not what pushed them out)
    weights = np.full((layers, heads, len(text), len(text)), 1 / len(text))
    figure = attention_figure(weights, list(text), list(text), "t")
    assert_every_text_inside(figure)
    bar = figure.axes[-1].get_window_extent()
    assert bar.width / figure.dpi <= 0.25
    assert bar.height > 10 * bar.width


def test_the_commands_picture_is_titled_by_its_run_its_attention_and_its_grid(tmp_path,
                                                                            monkeypatch):
    import viz.write
    drawn = []

    def drawing(*args, **kwargs):
        drawn.append(attention_figure(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(viz.write, "attention_figure", drawing)
    labels = list("abcd")
    maps = {"self": AttentionMap(np.full((2, 3, 4, 4), 0.25), labels, labels,
                                 "masked self-attention")}
    viz.write.write_attention(str(tmp_path / "a.png"), maps, "self", "gpt", "runs/tiny")
    assert " ".join(drawn[0].get_suptitle().split()) == \
        "tiny (gpt): masked self-attention - 2 layers x 3 heads"
    # An encoder-decoder's maps show its translation alone: the title names the source, on a
    # line of its own (wrapped into the line above, it broke "2 layers x 3 heads" apart).
    viz.write.write_attention(str(tmp_path / "b.png"), maps, "self", "transformer", "runs/tiny",
                              source="012")
    assert drawn[1].get_suptitle().split("\n")[-1] == "translating '012'"


def shown_labels(figure):
    """(query labels, key labels): those of the grid's left column and bottom row."""
    heatmaps = figure.axes[:-1]
    return ([label.get_text() for label in heatmaps[0].get_yticklabels()],
            [label.get_text() for label in heatmaps[-1].get_xticklabels()])


def test_a_cropped_masked_map_shows_its_last_tokens_and_says_the_first_are_left_out():
    # A GPT's map: a window at the end of the triangle, blocked keys blank.
    weights = np.tril(np.random.default_rng(0).random((1, 1, 6, 6)) + 0.1)
    weights /= weights.sum(axis=-1, keepdims=True)
    figure = attention_figure(weights, list("abcdef"), list("abcdef"), "t", max_tokens=3)
    shown = figure.axes[0].images[0].get_array()
    np.testing.assert_array_equal(shown.data, weights[0, 0, -3:, -3:])
    assert shown.mask.sum() == 3 and shown.mask[0, 1:].all()       # the later keys
    assert shown_labels(figure) == (list("def"), list("def"))
    assert " ".join(figure.get_suptitle().split()) == \
        "t (showing the last 3 of 6 tokens: the first 3, which these queries also read, are " \
        "left out)"
    assert [line.get_xdata()[0] for line in figure.axes[0].lines] == [-0.5]   # keys before
    whole = attention_figure(np.full((1, 1, 3, 3), 1 / 3), list("abc"), list("abc"), "t",
                             max_tokens=3)
    assert whole.get_suptitle() == "t"


def test_a_cropped_bidirectional_map_keeps_the_first_words_its_queries_read():
    # BERT's masked word reads "eve", at the start of a long prompt: the last keys alone (as a
    # GPT's map is cropped) dropped them, and the picture showed a <mask> reading nothing.
    # The keys kept are those the queries read most, in their order, a red line where keys
    # are missing, and the title says so.
    text = "eve has a red kite"
    weights = np.full((2, 1, len(text), len(text)), 0.01)
    weights[..., :3] = 1.0                                  # every query reads "eve"
    weights[..., -3:] = 0.5                                 # and "ite"
    weights /= weights.sum(axis=-1, keepdims=True)
    figure = attention_figure(weights, list(text), list(text), "t", max_tokens=6)
    queries, keys = shown_labels(figure)
    assert queries == list("d kite") and keys == list("eveite")
    assert " ".join(figure.get_suptitle().split()) == \
        ("t (showing the last 6 of 18 queries and the 6 of 18 keys they attend to most, in "
         "order (the 12 others are left out where a red line splits the keys))")
    chosen = shown_tokens(weights, max_tokens=6).keys
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array().data,
                                  weights[0, 0, -6:][:, chosen])
    edges = sorted(line.get_xdata()[0] for line in figure.axes[0].lines)
    assert chosen.tolist() == [0, 1, 2, 15, 16, 17] and edges == [2.5]
    # Cross-attention (2 target queries, 18 source keys), its keys cut alone.
    cross = attention_figure(weights[:, :, :2], ["x", "y"], list(text), "t", max_tokens=6)
    assert " ".join(cross.get_suptitle().split()).startswith(
        "t (showing the 6 of 18 keys the queries attend to most")


def test_keys_left_out_after_the_last_column_are_marked_by_a_red_line_at_the_right_edge():
    # The one key read least is the last: the map ends one key short, and says so there.
    weights = np.ones((1, 1, 4, 4))
    weights[..., -1] = 0.01
    weights /= weights.sum(axis=-1, keepdims=True)
    figure = attention_figure(weights, list("abcd"), list("abcd"), "t", max_tokens=3)
    edges = [line.get_xdata()[0] for line in figure.axes[0].lines]
    assert shown_tokens(weights, max_tokens=3).keys.tolist() == [0, 1, 2] and edges == [2.5]


def test_a_first_key_left_out_is_marked_by_a_red_line_at_the_left_edge():
    # The one key read least is the first: the map starts one key late, and says so there.
    weights = np.ones((1, 1, 4, 4))
    weights[..., 0] = 0.01
    weights /= weights.sum(axis=-1, keepdims=True)
    figure = attention_figure(weights, list("abcd"), list("abcd"), "t", max_tokens=3)
    edges = [line.get_xdata()[0] for line in figure.axes[0].lines]
    assert shown_tokens(weights, max_tokens=3).keys.tolist() == [1, 2, 3] and edges == [-0.5]


def test_a_map_of_no_tokens_is_refused_in_one_line():
    # max_tokens=0 kept no query and no key: an empty picture, or an IndexError drawing it.
    weights = np.full((1, 1, 2, 2), 0.5)
    for show in (lambda: shown_tokens(weights, max_tokens=0),
                 lambda: attention_figure(weights, ["a", "b"], ["a", "b"], "t", max_tokens=0)):
        with pytest.raises(ValueError, match=r"^plot_attention: max_tokens must be at least 1, "
                                             r"got 0$"):
            show()


def test_a_bidirectional_map_of_a_built_in_berts_context_is_drawn_whole():
    # 60 tokens, fewer than the built-in BERT's context: every query and key is drawn, where
    # the picture kept the last 48 of each. A GPT's map of as many is cropped as before.
    both_ways = shown_tokens(np.full((1, 1, 60, 60), 1 / 60))
    assert (len(both_ways.queries), len(both_ways.keys), both_ways.note) == (60, 60, "")
    masked = np.tril(np.ones((1, 1, 60, 60)))
    one_way = shown_tokens(masked / masked.sum(axis=-1, keepdims=True))
    assert one_way.keys.tolist() == one_way.queries.tolist() == list(range(12, 60))
    assert one_way.note.startswith("showing the last 48 of 60 tokens")


def test_key_labels_stand_upright_only_when_each_is_one_character():
    def rotation(keys):
        figure = attention_figure(np.full((1, 1, 1, 2), 0.5), ["q"], keys, "t")
        return {label.get_rotation() for label in figure.axes[0].get_xticklabels()}

    assert rotation(["a", "b"]) == {0} and rotation(["a", "<b"]) == {90}


def test_plot_grid_grows_with_layers_and_long_prompts_are_cropped(tmp_path):
    labels = list("abcdef")
    weights = np.full((1, 3, 6, 6), 1 / 6)
    assert plot_attention(weights, labels, labels, tmp_path / "one.png", "one") == 3
    two = np.concatenate([weights, weights])
    assert plot_attention(two, labels, labels, tmp_path / "two.png", "two") == 6
    one_h, one_w = imread(tmp_path / "one.png").shape[:2]
    two_h, two_w = imread(tmp_path / "two.png").shape[:2]
    assert two_h > one_h and two_w == one_w
    # 60 tokens: only the last 48 are drawn, which keeps the picture no bigger than for 48.
    long_labels = [str(i % 10) for i in range(60)]
    plot_attention(np.full((1, 1, 60, 60), 1 / 60), long_labels, long_labels,
                   tmp_path / "long.png", "long", max_tokens=48)
    plot_attention(np.full((1, 1, 48, 48), 1 / 48), long_labels[:48], long_labels[:48],
                   tmp_path / "48.png", "48")
    assert imread(tmp_path / "long.png").shape[1] == imread(tmp_path / "48.png").shape[1]
    with pytest.raises(ValueError, match="5 row and 6 column labels for 6 queries and 6 keys"):
        plot_attention(weights, labels[:5], labels, tmp_path / "bad.png", "bad")
    assert not (tmp_path / "bad.png").exists()


# ---------------------------------------------------------------------------- bad inputs


BAD = {
    "no checkpoint": ("missing", PROMPTS["gpt"], [], "does not exist"),
    "not a checkpoint": ("empty", PROMPTS["gpt"], [], "no config.json"),
    "unknown character": ("gpt", "eve has a €", [], "cannot be encoded"),
    "empty prompt": ("gpt", "", [], "empty"),
    "too long": ("gpt", "eve has a red kite.", [], "at most 16"),
    "bert too long": ("bert", "the kite is red and blue", [], "at most 16"),
    "seq2seq non-digit": ("transformer", "abc", [], "is no source of the"),
    "seq2seq too long": ("transformer", "0" * 17, [], "at most"),
    "cross on gpt": ("gpt", PROMPTS["gpt"], ["--which", "cross"], "self-attention only"),
    "encoder on gpt": ("gpt", PROMPTS["gpt"], ["--which", "encoder"], "self-attention only"),
    "self on seq2seq": ("transformer", "012", ["--which", "self"], "choose cross"),
    "bad --which": ("gpt", PROMPTS["gpt"], ["--which", "heads"], "--which"),
    "not .png": ("gpt", PROMPTS["gpt"], ["--out", "{tmp}/att.svg"], ".png"),
    "no such directory": ("gpt", PROMPTS["gpt"], ["--out", "{tmp}/nope/att.png"],
                          "does not exist"),
    "out is a directory": ("gpt", PROMPTS["gpt"], ["--out", "{tmp}"], "is a directory"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, case):
    run, prompt, extra, message = BAD[case]
    checkpoint = runs.get(run, tmp_path / run)
    (tmp_path / "empty").mkdir()
    extra = [arg.replace("{tmp}", str(tmp_path)) for arg in extra]
    if "--out" not in extra:
        extra += ["--out", tmp_path / "att.png"]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = tinyformer("attention", "--checkpoint", checkpoint, "--prompt", prompt, *extra)
    assert result.exit_code == 2, (case, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), (case, result.stderr)
    assert message in lines[0], (case, lines[0])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before       # nothing written


def test_a_prompt_too_long_for_a_page_is_one_line_exit_2_and_writes_nothing(runs, tmp_path,
                                                                            monkeypatch):
    import importlib                             # the module: viz.attention_page is its function
    monkeypatch.setattr(importlib.import_module("viz.attention_page"), "MAX_WEIGHTS", 10)
    result = tinyformer("attention", "--checkpoint", runs["gpt"], "--prompt", "abcdef",
                        "--out", tmp_path / "a.html")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: 72 attention weights are more than a page holds "
                                    "(10); use a shorter prompt"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["gpt", "transformer"])
def test_a_prompt_too_long_for_a_page_is_refused_before_any_weight_is_recorded(
        runs, tmp_path, monkeypatch, kind):
    # The page counted its weights only once every layer's and head's had been recorded:
    # GPT-2 on a long prompt took the memory and time of 150 million weights, then refused.
    # Their number is known from the prompt's length (and the translation's), before recording.
    import importlib
    monkeypatch.setattr(importlib.import_module("viz.attention_page"), "MAX_WEIGHTS", 10)

    def recorded(*args, **kwargs):
        raise AssertionError("weights recorded for a page that cannot hold them")
    monkeypatch.setattr(importlib.import_module("viz.attention"), "_record", recorded)
    result = tinyformer("attention", "--checkpoint", runs[kind], "--prompt", PROMPTS[kind],
                        "--out", tmp_path / "a.html")
    assert result.exit_code == 2, result.output
    assert "attention weights are more than a page holds (10)" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("last_queries", [None, 2])     # 2: fewer than the queries, counted so
def test_attention_maps_counts_the_weights_a_page_would_hold_before_recording(runs,
                                                                              last_queries):
    model, tokenizer, _ = load_model(runs["transformer"])
    maps = attention_maps(model, tokenizer, PROMPTS["transformer"], "transformer",
                          last_queries)
    total = sum(chosen.weights.size for chosen in maps.values())
    # As many as the maps hold: allowed; one fewer: refused, by the count of every map.
    kept = attention_maps(model, tokenizer, PROMPTS["transformer"], "transformer",
                          last_queries, max_weights=total)
    assert {name: m.weights.shape for name, m in kept.items()} == \
        {name: m.weights.shape for name, m in maps.items()}
    with pytest.raises(TooBigForPage, match=f"^{total:,} attention weights are more than a "
                                            f"page holds \\({total - 1:,}\\)"):
        attention_maps(model, tokenizer, PROMPTS["transformer"], "transformer",
                       last_queries, max_weights=total - 1)


@pytest.mark.parametrize("suffix, failing", [(".html", "encode_weights"),
                                              (".png", "attention_figure")])
def test_a_value_error_of_ours_in_drawing_the_maps_is_a_bug_exit_1_not_bad_input(
        runs, tmp_path, monkeypatch, suffix, failing):
    # The page's one refusal of the input is a prompt too long for it: every ValueError in
    # drawing or writing the maps was said as bad input (exit 2), a bug of ours among them.
    import importlib
    module = "viz.attention_page" if suffix == ".html" else "viz.write"

    def broken(*args, **kwargs):
        raise ValueError("a bug of ours")
    monkeypatch.setattr(importlib.import_module(module), failing, broken)
    result = tinyformer("attention", "--checkpoint", runs["gpt"], "--prompt", "abc",
                        "--out", tmp_path / f"a{suffix}")
    assert result.exit_code == 1, result.output
    assert "internal error (ValueError: a bug of ours)" in result.stderr


def test_an_attention_map_shows_its_shape_and_first_labels_not_every_weight():
    labels = list("eve has a red kite.")
    shown = repr(AttentionMap(np.full((2, 4, 19, 19), 0.5), labels, labels, "self-attention"))
    assert shown == ("AttentionMap(weights=<array (2, 4, 19, 19) (layers, heads, queries, keys)>, "
                     "queries=['e', 'v', 'e', ' ', 'h', 'a', 's', ' ', ... 19 in all], "
                     "keys=['e', 'v', 'e', ' ', 'h', 'a', 's', ' ', ... 19 in all], "
                     "description='self-attention')")


def test_attention_figure_is_the_grid_for_a_notebook():
    from matplotlib.figure import Figure

    import viz
    labels = list("abcd")
    fig = viz.attention_figure(np.full((2, 3, 4, 4), 0.25), labels, labels, "title")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 3 + 1     # heatmaps + colour bar


def test_a_long_prompt_of_characters_keeps_every_label_made_smaller_not_every_second():
    # Eight heads of 48 characters: the labels, thinned to every second character, read as
    # nonsense ("tekt fee"); a little smaller, every one fits, and none overlaps the next.
    text = "the kite of eve is in the shed now. the kite is "
    figure = attention_figure(np.full((1, 8, 48, 48), 1 / 48), list(text), list(text), "t")
    figure.draw_without_rendering()
    ax = figure.axes[0]
    labels = ax.get_yticklabels()
    assert [label.get_text() for label in labels] == list(text)
    tops = sorted((label.get_window_extent().y0, label.get_window_extent().y1)
                  for label in labels)
    assert all(y1 <= next_y0 + 1 for (_, y1), (next_y0, _) in zip(tops, tops[1:]))
