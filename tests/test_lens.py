"""The logit lens (tinyformer/lens.py, viz/lens.py, `tinyformer lens`): each row is the head
applied to the residual stream after the embeddings and after each layer, computed here again
by running the layers one by one; the last row is the model's own prediction, for GPT, BERT
and the encoder-decoder; the stream is only kept while the lens reads it; the command prints
the table or draws it, and refuses bad input in one line."""

import os
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from click.testing import CliRunner
from figures import assert_every_text_inside

import tinyautograd as ta
from tinyformer_cli import main
from tinyformer.attention import causal_mask
from tinyformer.bert import BERT
from tinyformer.gpt import GPT
from tinyformer.lens import FEW, head_stack, likeliest, logit_lens
from tinyformer.transformer import Transformer

IDX = np.array([[1, 2, 3, 4, 2]])


def test_a_lens_shows_its_rows_and_shapes_not_every_number():
    # What a notebook cell ending with `lens` prints: a line, not hundreds.
    ta.manual_seed(0)
    model = GPT(vocab_size=9, context=8, n_layer=2, n_head=2, d_model=16)
    shown = repr(logit_lens(model, lambda m: m(IDX), k=2))
    assert shown == ("Lens(rows=['embed', 'layer 1', 'layer 2'], top_ids=<array (3, 5, 2) int64>, "
                     "top_probs=<array (3, 5, 2) float32>)")


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_each_row_is_the_head_on_the_stream_after_that_layer(norm):
    ta.manual_seed(0)
    model = GPT(vocab_size=9, context=8, n_layer=3, n_head=2, d_model=16, norm=norm).eval()
    lens = logit_lens(model, lambda m: m(IDX), k=2)
    assert lens.rows == ["embed", "layer 1", "layer 2", "layer 3"]
    with ta.no_grad():                          # the stream, layer by layer, by hand
        x = model.embed(IDX)
        states = [x]
        for layer in model.decoder.layers:
            x = layer(x, mask=causal_mask(IDX.shape[1]))
            states.append(x)
        for row, state in enumerate(states):
            if model.decoder.final_norm is not None:
                state = model.decoder.final_norm(state)
            probs = model.logits(state).softmax().data[0]              # (T, V)
            top = np.argsort(-probs, axis=-1, kind="stable")[:, :2]
            np.testing.assert_array_equal(lens.top_ids[row], top)
            np.testing.assert_allclose(lens.top_probs[row],
                                       np.take_along_axis(probs, top, axis=-1), rtol=1e-6)
    assert model.decoder.stream is None             # kept only while the lens reads it


@pytest.mark.parametrize("build, run", [
    (lambda: GPT(vocab_size=9, context=8, n_layer=2, n_head=2, d_model=16),
     lambda m: m(IDX)),
    (lambda: BERT(vocab_size=9, context=8, n_layer=2, n_head=2, d_model=16),
     lambda m: m(IDX)),
    (lambda: Transformer(9, 9, context=8, n_layer=2, n_head=2, d_model=16, norm="pre"),
     lambda m: m(IDX, IDX)),
], ids=["gpt", "bert", "transformer"])
def test_the_last_row_is_the_models_own_prediction(build, run):
    ta.manual_seed(0)
    model = build().eval()
    lens = logit_lens(model, run)
    with ta.no_grad():
        probs = run(model).softmax().data[0]
    np.testing.assert_array_equal(lens.top_ids[-1, :, 0], probs.argmax(axis=-1))
    np.testing.assert_allclose(lens.top_probs[-1, :, 0], probs.max(axis=-1), rtol=1e-6)
    assert len(lens.rows) == 3 and head_stack(model).stream is None


def test_a_batch_of_several_sequences_is_refused_not_read_as_its_first():
    # The lens is of one sequence; a batch of two was read as its first sequence alone.
    model = GPT(vocab_size=9, context=8, n_layer=1, n_head=2, d_model=16)
    with pytest.raises(ValueError, match="a batch of 2 sequences; run the model on one"):
        logit_lens(model, lambda m: m(np.concatenate([IDX, IDX])))
    assert model.decoder.stream is None


@pytest.mark.parametrize("run, runs", [
    (lambda m: (m(IDX), m(IDX)), 2),                 # read as one run of a 3-layer model
    (lambda m: m.generate(IDX, 2), 2),               # failed in numpy's stack
    (lambda m: None, 0),
], ids=["twice", "generate", "never"])
def test_a_run_that_does_not_run_the_model_once_is_refused(run, runs):
    model = GPT(vocab_size=9, context=8, n_layer=1, n_head=2, d_model=16)
    with pytest.raises(ValueError, match=f"^logit_lens: the run ran the model {runs} times; "
                                         f"run its forward once, as lambda m: m\\(idx\\) does"):
        logit_lens(model, run)
    assert model.decoder.stream is None


@pytest.mark.parametrize("k", [1, 3, FEW, FEW + 1, 40])
def test_the_likeliest_ids_are_those_a_stable_sort_puts_first(k):
    # Ties (a row of equal probabilities, as a model of zero weights gives) go to the lower
    # id, and a diverged model's row of NaN gives 0, 1, 2, ...; k past the vocabulary gives
    # the whole of it.
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 4, (6, 30)).astype(np.float32) / 4     # many ties
    probs[1] = 1 / 30
    probs[2] = np.nan
    probs[3, 2:] = -np.inf                 # logits that rule tokens out: ranked last, by id
    expected = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    kept = probs.copy()
    np.testing.assert_array_equal(likeliest(probs, k), expected)
    np.testing.assert_array_equal(probs, kept)                      # the caller's untouched
    # A vocabulary smaller than k, in the passes of argmax too (k <= FEW): each id once.
    narrow = probs[:, :max(k - 1, 1)]
    np.testing.assert_array_equal(likeliest(narrow, k),
                                  np.argsort(-narrow, axis=-1, kind="stable")[:, :k])


def test_the_lens_keeps_its_few_likeliest_tokens_without_sorting_the_vocabulary(monkeypatch):
    # Sorting each row of (T, V) probabilities to keep 3 was two thirds of the work of
    # GPT-2's lens of a long prompt (V = 50,257): a pass of argmax for each is enough.
    ta.manual_seed(0)
    model = GPT(vocab_size=9, context=8, n_layer=2, n_head=2, d_model=16)
    expected = logit_lens(model, lambda m: m(IDX)).top_ids
    def no_sorting(*args, **kwargs):
        raise AssertionError("the lens sorted a row of probabilities")
    monkeypatch.setattr(np, "argsort", no_sorting)
    np.testing.assert_array_equal(logit_lens(model, lambda m: m(IDX)).top_ids, expected)


@pytest.mark.parametrize("k", [0, 2.5, True, "3"])
def test_a_k_that_is_no_whole_number_from_1_is_refused_in_one_line_before_the_run(k):
    model = GPT(vocab_size=9, context=8, n_layer=1, n_head=2, d_model=16)
    runs = []
    with pytest.raises(ValueError, match=r"^logit_lens: k must be a whole number >= 1, got "):
        logit_lens(model, lambda m: runs.append(m(IDX)), k=k)
    assert runs == []            # refused before the model ran


def test_the_stream_is_dropped_even_when_the_run_fails():
    model = GPT(vocab_size=9, context=8, n_layer=1, n_head=2, d_model=16)
    with pytest.raises(ValueError, match="exceeds the context"):
        logit_lens(model, lambda m: m(np.zeros((1, 20), dtype=int)))
    assert model.decoder.stream is None


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, train_unplotted):
    """A two-step GPT's run (no loss plot: none is read)."""
    out = tmp_path_factory.mktemp("runs") / "gpt"
    result = train_unplotted("--n-layer", 2, "--n-head", 2, "--d-model", 16, "--context", 32,
                             "--batch-size", 4, "--iters", 2, "--eval-iters", 1, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_the_command_prints_one_row_per_token_and_draws_a_png(run_dir, tmp_path):
    result = tinyformer("lens", "--checkpoint", run_dir, "--prompt", "eve has")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["position", "embed", "layer", "1", "layer", "2"]
    assert len(lines) == 1 + len("eve has")
    assert [line.split()[0] for line in lines[1:]] == list("eve") + ["␣"] + list("has")
    out = tmp_path / "lens.png"
    result = tinyformer("lens", "--checkpoint", run_dir, "--prompt", "eve has", "--out", out)
    assert result.exit_code == 0 and out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("no_color", [None, "1"])
def test_the_table_is_coloured_on_a_terminal_unless_no_color_is_set(run_dir, no_color):
    # It was coloured wherever it went, NO_COLOR or not (no-color.org).
    reader, writer = os.openpty()
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    command = [sys.executable, "-c", "from tinyformer_cli import main; main()", "lens",
               "--checkpoint", str(run_dir), "--prompt", "eve"]
    terminal = {"TERM": "xterm", **({"NO_COLOR": no_color} if no_color else {})}
    done = subprocess.run(command, stdout=writer, env={**env, **terminal})
    os.close(writer)
    shown = os.read(reader, 100_000).decode()
    os.close(reader)
    assert done.returncode == 0 and shown.startswith("position")
    assert ("\033[" in shown) == (no_color is None)


@pytest.mark.parametrize("args, words", [
    (["--prompt", "eve", "--out", "lens.svg"], "the suffix says the format"),
    (["--prompt", "ÿ"], "cannot encode"),
    (["--prompt", ""], "empty"),
])
def test_bad_input_is_one_line_and_writes_nothing(run_dir, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    result = tinyformer("lens", "--checkpoint", run_dir, *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_prompt_that_is_no_source_of_a_runs_task_is_refused(tmp_path, train_unplotted):
    """The tasks share one vocabulary: "12+3" encodes for a reverse run, which never read a
    +; the lens of it would show what the model was never asked."""
    out = tmp_path / "reverse"
    result = train_unplotted("--task", "reverse", "--min-len", 3, "--max-len", 4,
                             "--n-layer", 1, "--d-model", 16, "--n-head", 2, "--iters", 1,
                             "--out", out)
    assert result.exit_code == 0, result.output
    result = tinyformer("lens", "--checkpoint", out, "--prompt", "12+3")
    assert result.exit_code == 2, result.output
    line, = result.stderr.strip().splitlines()
    assert "--prompt '12+3' is no source of the reverse task" in line, line
    assert tinyformer("lens", "--checkpoint", out, "--prompt", "123").exit_code == 0


def test_in_colour_a_sure_prediction_is_bright_and_bold_and_an_unsure_one_dim():
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_text
    tokenizer = CharTokenizer("abc")
    lens = Lens(rows=["embed", "layer 1"], top_ids=np.array([[[0]], [[1]]]),
                top_probs=np.array([[[0.9]], [[0.1]]]))            # (rows, T=1, k=1)
    plain = lens_text(lens, ["a"], tokenizer)
    coloured = lens_text(lens, ["a"], tokenizer, colour=True)
    assert "\x1b[" not in plain
    assert "\x1b[1;92ma 90%\x1b[0m" in coloured and "\x1b[2mb 10%\x1b[0m" in coloured
    assert coloured.replace("\x1b[1;92m", "").replace("\x1b[2m", "").replace("\x1b[0m", "") \
        .split() == plain.split()
    edges = Lens(rows=["embed", "layer 1"], top_ids=np.array([[[0]], [[1]]]),
                 top_probs=np.array([[[0.8]], [[0.4]]]))        # sure from 80%, fair from 40%
    coloured = lens_text(edges, ["a"], tokenizer, colour=True)
    assert "\x1b[1;92ma 80%\x1b[0m" in coloured and "\x1b[32mb 40%\x1b[0m" in coloured


def test_the_table_cuts_long_tokens_and_leaves_no_trailing_blanks():
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_text
    lens = Lens(rows=["embed"], top_ids=np.array([[[0], [1]]]),
                top_probs=np.array([[[0.5], [1.0]]]))                # (rows, T=2, k=1)
    text = lens_text(lens, ["abcdefghijk", "b"], CharTokenizer("ab"))
    assert text.splitlines() == ["position  embed",
                                 "abcdefgh  a 50%",
                                 "b         b 100%"]


def test_a_probability_that_rounds_to_100_or_0_percent_is_not_shown_as_sure_or_impossible():
    # A 99.7% read "100%" in the table and the page's cells, beside its tooltip's 99.7%.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_text, percent
    assert [percent(p) for p in [1.0, 0.997, 0.995, 0.994, 0.5, 0.005, 0.004, 1e-9, 0.0]] == [
        "100%", ">99%", ">99%", "99%", "50%", "<1%", "<1%", "<1%", "0%"]
    assert percent(np.float32(1) - np.finfo(np.float32).eps) == ">99%"   # as the lens keeps it
    lens = Lens(rows=["embed"], top_ids=np.array([[[0], [1], [0], [1]]]),
                top_probs=np.array([[[0.997], [1.0], [0.003], [0.0]]]))   # (rows, T=4, k=1)
    text = lens_text(lens, list("abab"), CharTokenizer("ab"))
    assert text.splitlines() == ["position  embed",
                                 "a         a >99%",
                                 "b         b 100%",
                                 "a         a <1%",
                                 "b         b 0%"]


class OneTokenOnly(GPT):
    """A GPT whose head rules out every token but 0 (logits -inf): the one model here that is
    sure of its next token."""

    def logits(self, x):
        return super().logits(x).masked_fill(np.arange(self.config["vocab_size"]) != 0,
                                             -np.inf)


def test_a_probability_that_float32_rounds_to_1_or_0_is_kept_short_of_it_unless_it_is_so():
    # float32's softmax is 1.0 where the others add up to less than 6e-8, and 0.0 for a token
    # 104 behind: the table read "100%", sure, of a token whose rivals it listed beside it,
    # and "0%", ruled out, of tokens the model gives a chance.
    from viz.lens import percent
    idx = np.array([[1, 2, 3]])
    ta.manual_seed(0)
    model = GPT(vocab_size=5, context=8, n_layer=1, n_head=1, d_model=8, tie_weights=False)
    model.head.weight.data[...] *= 20000                    # leads of hundreds in the logits
    probs = model(idx).softmax(axis=-1).data[0]              # (T, V)
    assert (probs.max(axis=-1) == 1).all() and (np.sort(probs, axis=-1)[:, -2] == 0).all()
    lens = logit_lens(model, lambda m: m(idx))
    top = lens.top_probs[-1]                                                      # (T, k)
    assert top.dtype == np.float32 and (top[:, 0] < 1).all() and (top[:, 1:] > 0).all()
    # The runners-up are those of the logits, not ids 0 and 1, the first of the tokens whose
    # probabilities float32 rounds to 0 alike.
    np.testing.assert_array_equal(lens.top_ids[-1],
                                  np.argsort(-model(idx).data[0], axis=-1)[:, :3])
    assert {percent(p) for p in top[:, 0]} == {">99%"}
    assert {percent(p) for p in top[:, 1:].ravel()} == {"<1%"}
    # A model sure of its token (every other logit -inf) reads 1 and 0, as they are.
    ta.manual_seed(0)
    sure = OneTokenOnly(vocab_size=5, context=8, n_layer=1, n_head=1, d_model=8)
    lens = logit_lens(sure, lambda m: m(idx))
    assert (lens.top_ids[..., 0] == 0).all() and (lens.top_probs[..., 0] == 1).all()
    assert (lens.top_probs[..., 1:] == 0).all()


def test_the_table_stays_aligned_in_a_terminal_with_wide_characters():
    # A Chinese character or an emoji takes two columns of a terminal, a combining accent
    # none: padded by len(), each such character pushed the rest of its row out of line.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_text
    tokenizer = CharTokenizer(["猫", "a", "😀"])

    def columns(text):          # as a terminal shows them
        return sum(2 if unicodedata.east_asian_width(c) == "W" else
                   0 if unicodedata.category(c) == "Mn" else 1 for c in text)

    lens = Lens(rows=["embed", "layer 1"], top_ids=np.array([[[0], [1], [2]]] * 2),
                top_probs=np.full((2, 3, 1), 0.5))                  # (rows, T=3, k=1)
    lines = lens_text(lens, ["猫猫猫猫猫", "e\u0301", "x"], tokenizer).splitlines()
    # The second column starts at one column on every line, the first cut to 8 columns.
    starts = {columns(line[:line.index(column)]) for line, column in
              zip(lines, ["embed", "猫 50%", "a 50%", "😀 50%"])}
    assert starts == {10}, lines
    assert lines[1].startswith("猫猫猫猫  猫 50%")


class Pieces:
    """A tokenizer whose id 1 is an empty piece (a byte-level BPE has pieces that show nothing)."""
    def id_to_token(self, i):
        return ["a", "", "c"][i]

    def id_to_bytes(self, i):
        return self.id_to_token(i).encode()


def test_the_table_and_the_picture_show_each_states_top_prediction_in_its_column():
    from tinyformer.lens import Lens
    from viz.lens import lens_figure, lens_rows
    top_ids = np.array([[[0, 2], [2, 0]], [[1, 0], [0, 2]]])           # (states, T=2, k=2)
    top_probs = np.array([[[0.6, 0.3], [0.5, 0.4]], [[0.9, 0.1], [0.7, 0.2]]])
    lens = Lens(rows=["embed", "layer 1"], top_ids=top_ids, top_probs=top_probs)
    assert lens_rows(lens, ["x", "y"], Pieces()) == [
        [("position", None), ("embed", None), ("layer 1", None)],
        [("x", None), ("a 60%", 0.6), ("\u2205 90%", 0.9)],
        [("y", None), ("c 50%", 0.5), ("a 70%", 0.7)]]
    ax = lens_figure(lens, ["x", "y"], Pieces()).axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["embed", "layer 1"]
    np.testing.assert_array_equal(ax.images[0].get_array(), [[0.6, 0.9], [0.5, 0.7]])
    assert {text.get_position(): text.get_text() for text in ax.texts} == {
        (0, 0): "a", (1, 0): "\u2205", (0, 1): "c", (1, 1): "a"}           # (state, position)


def test_an_encoder_decoders_lens_reads_each_step_of_its_translation():
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_of_prompt
    tokenizer = CharTokenizer("012", special_tokens=["<bos>", "<eos>"])
    ta.manual_seed(0)
    model = Transformer(tokenizer.vocab_size, tokenizer.vocab_size, context=6, n_layer=1,
                        n_head=2, d_model=8).eval()
    lens, tokens = lens_of_prompt(model, tokenizer, "0120", "transformer")
    bos, eos = tokenizer.token_to_id("<bos>"), tokenizer.token_to_id("<eos>")
    written = model.greedy_decode(np.array([tokenizer.encode("0120")]), model.context, bos,
                                  eos)[0]
    assert tokens[0] == "<bos>" and len(tokens) == len(written) - 1 == lens.top_ids.shape[1]


def test_a_berts_lens_reads_the_masks_of_its_prompt_as_its_mask_token():
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_of_prompt
    tokenizer = CharTokenizer("ab", special_tokens=["<mask>"])
    ta.manual_seed(0)
    model = BERT(vocab_size=tokenizer.vocab_size, context=8, n_layer=1, n_head=2,
                 d_model=16).eval()
    lens, tokens = lens_of_prompt(model, tokenizer, "ab<mask>a", "bert")
    assert tokens == ["a", "b", "<mask>", "a"] and lens.top_ids.shape[1] == 4


def test_the_pictures_text_is_black_or_white_whichever_reads_better_on_its_cell():
    # It switched at a probability of 0.5, which left white text on teal below the contrast
    # reading needs (3.8:1 at 0.5); from 0.44 up black reads better.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_figure
    lens = Lens(rows=["embed", "layer 1", "layer 2"], top_ids=np.zeros((3, 1, 1), dtype=int),
                top_probs=np.array([[[0.9]], [[0.47]], [[0.1]]]))
    texts = lens_figure(lens, ["a"], CharTokenizer("ab")).axes[0].texts
    assert [text.get_color() for text in texts] == ["black", "black", "white"]


def nan_lens():
    """The lens of a two-layer GPT whose second layer holds a NaN weight (a notebook's model
    after its training diverged), its tokens and tokenizer: finite after the embeddings and
    layer 1, NaN after layer 2."""
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_of_prompt
    tokenizer = CharTokenizer("abc")
    ta.manual_seed(0)
    model = GPT(vocab_size=tokenizer.vocab_size, context=8, n_layer=2, n_head=2, d_model=16)
    model.decoder.layers[1].attn.q.weight.data[0, 0] = np.nan
    lens, tokens = lens_of_prompt(model, tokenizer, "abca", "gpt")
    assert np.isfinite(lens.top_probs[:2]).all() and np.isnan(lens.top_probs[2]).all()
    return lens, tokens, tokenizer


def test_a_nan_states_cells_read_nan_in_red_not_token_0_at_nan_percent():
    # They read "a nan%": "a" is token 0, first in argsort's order of NaNs, no prediction.
    from viz.lens import lens_text
    lens, tokens, tokenizer = nan_lens()
    lines = lens_text(lens, tokens, tokenizer).splitlines()
    assert lines[0].split()[-2:] == ["layer", "2"]
    assert [line.split()[-1] for line in lines[1:]] == ["NaN"] * 4
    assert "nan" not in "\n".join(lines)
    assert lens_text(lens, tokens, tokenizer, colour=True).count("\x1b[1;31mNaN\x1b[0m") == 4


def test_a_nan_states_cells_in_the_picture_are_red_and_read_nan():
    # viridis(NaN) raised "cannot convert float NaN to integer": no picture at all.
    from figures import drawn_colours

    from viz.graph import NAN_COLOUR
    from viz.lens import lens_figure
    lens, tokens, tokenizer = nan_lens()
    ax = lens_figure(lens, tokens, tokenizer).axes[0]
    texts = {text.get_position(): text for text in ax.texts}          # (state, position)
    for t in range(len(tokens)):
        assert texts[2, t].get_text() == "NaN" and texts[2, t].get_color() == "white"
        assert texts[1, t].get_text() != "NaN"
    # Off the middle, where the text is: the cell's own colour.
    nan, finite = drawn_colours(ax, [(2.3, 0.3), (1.3, 0.3)])
    assert nan == NAN_COLOUR != finite


def test_write_lens_writes_the_format_its_suffix_names(tmp_path):
    # It wrote a PNG whatever the name said, as the other pictures never do.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.write import write_lens
    lens = Lens(rows=["embed"], top_ids=np.zeros((1, 1, 1), dtype=int),
                top_probs=np.array([[[0.9]]]))
    write_lens(tmp_path / "lens.svg", lens, ["a"], CharTokenizer("ab"))
    assert b"<svg" in (tmp_path / "lens.svg").read_bytes()[:1000]
    with pytest.raises(ValueError, match="the suffix says the format"):
        write_lens(tmp_path / "lens.jpg", lens, ["a"], CharTokenizer("ab"))


def test_the_picture_leaves_the_users_backend_and_pyplot_alone_and_shows_in_a_notebook():
    # lens_figure switched a notebook's backend to Agg and left a pyplot figure open (kept in
    # pyplot's global list); with no _repr_png_ a fresh kernel showed "<Figure size ...>".
    import matplotlib
    import matplotlib.pyplot as plt

    import viz
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    lens = Lens(rows=["embed", "layer 1"], top_ids=np.zeros((2, 1, 1), dtype=int),
                top_probs=np.array([[[0.9]], [[0.1]]]))
    backend, open_figures = matplotlib.get_backend(), plt.get_fignums()
    matplotlib.use("svg")                       # the user's, whatever it is, is not Agg
    try:
        figure = viz.lens_figure(lens, ["a"], CharTokenizer("ab"), title="run: the lens")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == open_figures
    finally:
        matplotlib.use(backend)
    assert figure._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("positions, layers", [(1, 2), (4, 2), (30, 2), (2, 1), (2, 12)])
def test_the_picture_keeps_every_label_inside_it_however_few_the_positions(positions, layers):
    # A seq2seq that ends its translation at once has one position, a one-layer model two
    # states: the axis labels and the colour bar's are longer than so small a table, and were
    # cut off.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_figure
    lens = Lens(rows=["embed"] + [f"layer {i + 1}" for i in range(layers)],
                top_ids=np.zeros((layers + 1, positions, 1), dtype=int),
                top_probs=np.full((layers + 1, positions, 1), 0.5))
    figure = lens_figure(lens, ["a"] * positions, CharTokenizer("abc"), title="run: the lens")
    assert_every_text_inside(figure)


def test_the_picture_of_a_long_prompt_shows_its_last_positions_and_says_how_many_are_left_out():
    # A row a position and no cap: 1,000 tokens made a PNG 38,508 pixels tall (20 s to draw),
    # which many viewers refuse; attention shows the last 48 of a long prompt, and so does this.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.attention import MAX_TOKENS
    from viz.lens import lens_figure
    T = MAX_TOKENS + 12
    probs = np.linspace(0.01, 0.99, T)
    lens = Lens(rows=["embed", "layer 1"], top_ids=np.tile(np.arange(T) % 3, (2, 1))[..., None],
                top_probs=np.tile(probs, (2, 1))[..., None])
    tokens = [f"t{t}" for t in range(T)]
    figure = lens_figure(lens, tokens, CharTokenizer("abc"), title="run: the lens")
    ax = figure.axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == tokens[12:]
    np.testing.assert_array_equal(ax.images[0].get_array()[:, 0], probs[12:])
    assert {text.get_position(): text.get_text() for text in ax.texts}[0, 0] == "a"  # t12 % 3
    assert " ".join(ax.get_title().split()) == (
        f"run: the lens (showing the last {MAX_TOKENS} of {T} positions: the first 12 are left "
        f"out (a page, .html, shows them all))")
    assert_every_text_inside(figure)
    # As many as it may show: all of them, and no note.
    ax = lens_figure(lens, tokens, CharTokenizer("abc"), title="run", max_positions=T).axes[0]
    assert len(ax.get_yticklabels()) == T and ax.get_title() == "run"
    with pytest.raises(ValueError, match="max_positions must be at least 1, got 0"):
        lens_figure(lens, tokens, CharTokenizer("abc"), max_positions=0)
    # Not a comparison's TypeError: a picture of every position is refused, a page offered.
    with pytest.raises(ValueError, match=r"max_positions must be a whole number, got None "
                                         r"\(lens_page shows every position\)"):
        lens_figure(lens, tokens, CharTokenizer("abc"), max_positions=None)
    # A bool is no count, though Python takes True for 1: not a picture of one position.
    with pytest.raises(ValueError, match="max_positions must be a whole number, got True"):
        lens_figure(lens, tokens, CharTokenizer("abc"), max_positions=True)


@pytest.mark.parametrize("kind, shown", [("gpt", 48), ("bert", 60)])
def test_the_commands_picture_shows_a_gpts_last_48_positions_and_a_berts_up_to_128(
        tmp_path, train_unplotted, kind, shown):
    # As attention draws their maps: what a GPT predicts next is read at its last positions,
    # and a BERT's <mask> may be anywhere in the prompt. A page keeps every position.
    out = tmp_path / kind
    result = train_unplotted("--model", kind, "--n-layer", 1, "--n-head", 1, "--d-model", 8,
                             "--context", 64, "--batch-size", 2, "--iters", 1, "--eval-iters", 1,
                             "--out", out)
    assert result.exit_code == 0, result.output
    prompt = "eve has a red kite. the kite of eve is red. it rained on the kite."[:60]
    captured = {}

    def save_figure(figure, *args):
        captured["rows"] = len(figure.axes[0].get_yticklabels())
    import viz.write
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(viz.write, "save_figure", save_figure)
        result = tinyformer("lens", "--checkpoint", out, "--prompt", prompt,
                            "--out", tmp_path / "lens.png")
    assert result.exit_code == 0, result.output
    assert captured["rows"] == shown
    result = tinyformer("lens", "--checkpoint", out, "--prompt", prompt,
                        "--out", tmp_path / "lens.html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lens.html").read_text().count('<th class="token">') == 60


def test_the_picture_keeps_a_long_run_names_whole_title_inside_it():
    # The run's name, as long as a sweep names its runs, ran off both edges.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_figure
    lens = Lens(rows=["embed", "layer 1"], top_ids=np.zeros((2, 3, 1), dtype=int),
                top_probs=np.full((2, 3, 1), 0.5))
    title = "gpt-sweep-lr0.008-dmodel32-nlayer2-context16-rope-swiglu-seed1234: the logit lens"
    figure = lens_figure(lens, ["a"] * 3, CharTokenizer("abc"), title=title)
    assert_every_text_inside(figure)
    assert "".join(figure.axes[0].get_title().split()) == "".join(title.split())


def test_a_prompts_control_characters_are_shown_escaped_never_sent_to_the_terminal():
    # A carriage return or an escape in the prompt (a byte-level BPE reads any text) was
    # printed raw in the position column: the terminal moved its cursor or changed colour.
    from tinyformer.tokenizers import CharTokenizer
    from viz.lens import lens_of_prompt, lens_text
    tokenizer = CharTokenizer("ab\r\x1b")
    ta.manual_seed(0)
    model = GPT(vocab_size=tokenizer.vocab_size, context=8, n_layer=1, n_head=2, d_model=16)
    lens, tokens = lens_of_prompt(model, tokenizer, "a\rb\x1b", "gpt")
    assert tokens == ["a", "\\r", "b", "\\x1b"]
    text = lens_text(lens, tokens, tokenizer)
    assert all(c.isprintable() for line in text.splitlines() for c in line), repr(text)


def test_a_prompts_lens_goes_to_the_page_and_the_picture_by_vizs_own_names():
    # viz exported lens_page and lens_figure but not lens_of_prompt, which makes what they
    # take: a user of viz alone had no way to a lens.
    import viz
    from tinyformer.tokenizers import CharTokenizer
    tokenizer = CharTokenizer("ab")
    ta.manual_seed(0)
    model = GPT(vocab_size=tokenizer.vocab_size, context=8, n_layer=1, n_head=2, d_model=16)
    lens, tokens = viz.lens_of_prompt(model, tokenizer, "abba", "gpt")
    assert tokens == list("abba") and lens.rows == ["embed", "layer 1"]
    assert viz.lens_page(lens, tokens, tokenizer, "a lens").title == "a lens"
    assert len(viz.lens_figure(lens, tokens, tokenizer).axes[0].texts) == 2 * len(tokens)


def test_a_model_in_training_mode_is_read_without_dropout_and_left_in_its_mode():
    # As generate reads it: the lens of a model just trained, with dropout, was a random draw.
    ta.manual_seed(0)
    model = GPT(vocab_size=9, context=8, n_layer=2, n_head=2, d_model=16, dropout=0.5)
    model.train()
    lens = logit_lens(model, lambda m: m(IDX))
    assert all(module.training for module in model.modules())
    expected = logit_lens(model.eval(), lambda m: m(IDX))
    np.testing.assert_array_equal(lens.top_ids, expected.top_ids)
    np.testing.assert_array_equal(lens.top_probs, expected.top_probs)


def test_a_long_token_is_cut_between_its_escapes_never_inside_one():
    # GPT-2's first piece of a curly quote is the bytes b" \xe2\x80", shown "␣\xe2\x80": cut
    # at 8 characters it read "␣\xe2\x8", a byte it is not; now whole escapes or none.
    from tinyformer.lens import Lens
    from tinyformer.tokenizers import BPETokenizer
    from viz.lens import lens_figure, lens_text
    tokenizer = BPETokenizer.train("a “quote” and ‘another’ “one” " * 20, 262)
    curly = next(i for i in range(tokenizer.vocab_size)
                 if tokenizer.id_to_bytes(i) == " \u201c".encode()[:-1])
    assert tokenizer.id_to_token(curly) == " \\xe2\\x80"
    lens = Lens(rows=["embed"], top_ids=np.array([[[curly]]]), top_probs=np.array([[[0.5]]]))
    label = token_labels_of(tokenizer, curly)
    assert lens_text(lens, [label], tokenizer).splitlines()[1] == "␣\\xe2     ␣\\xe2 50%"
    figure = lens_figure(lens, [label], tokenizer)
    assert [t.get_text() for t in figure.axes[0].texts] == ["␣\\xe2"]
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["␣\\xe2"]


@pytest.mark.parametrize("text, width, cut", [
    ("ab\u200bcd", 7, "ab"), ("ab\u200bcd", 8, "ab\\u200b"),        # a zero-width space
    ("ab\rcd", 3, "ab"), ("ab\rcd", 4, "ab\\r"),                     # a carriage return
    ("a\U000e0001b", 11, "a\\U000e0001"), ("a\U000e0001b", 10, "a"),  # a language tag
])
def test_every_escape_a_label_holds_is_kept_whole_or_left_out(text, width, cut):
    from viz.lens import _cut
    from viz.plots import visible
    assert _cut(visible(text), width) == cut


@pytest.mark.parametrize("width, cut", [(2, "a"), (3, "a\\\\"), (4, "a\\\\r")])
def test_a_backslash_of_the_text_is_kept_whole_or_left_out(width, cut):
    # token_labels shows a token's own backslash doubled: the text a\r (a, a backslash, r)
    # is 'a\\r'. Cut inside the pair it read 'a\', or 'a\' and then '\r', a carriage return.
    from tinyformer.tokenizers import CharTokenizer
    from viz.attention import token_labels
    from viz.lens import _cut
    tokenizer = CharTokenizer.train("a\\r")
    label = "".join(token_labels(tokenizer, tokenizer.encode("a\\r")))
    assert label == "a\\\\r"
    assert _cut(label, width) == cut


def token_labels_of(tokenizer, token_id):
    from viz.attention import token_labels
    return token_labels(tokenizer, [token_id])[0]


def test_hooks_record_ablate_patch_and_take_gradients_as_recomputing_by_hand_does():
    # The interpretability steps on module hooks, each checked a second way.
    ta.manual_seed(0)
    model = GPT(vocab_size=9, context=8, n_layer=2, n_head=2, d_model=16).eval()
    layers, other = model.decoder.layers, np.array([[3, 2, 1, 4, 2]])

    def run(idx, module, hook, pre=False):
        handle = (module.register_forward_pre_hook(hook) if pre
                  else module.register_forward_hook(hook))
        try:
            return model(idx)
        finally:
            handle.remove()

    # Record: the stream after the last block, read by the final norm and head, is the logits.
    kept = {}
    logits = run(IDX, layers[1], lambda m, args, out: kept.update(stream=out))
    np.testing.assert_array_equal(
        model.logits(model.decoder.final_norm(kept["stream"])).data, logits.data)

    # Saliency: the gradient of a logit with respect to the embeddings' output, kept by a hook,
    # is the one through the layers run by hand from that output; none reaches a later token.
    logits = run(IDX, model.embed, lambda m, args, out: kept.update(embedded=out))
    (saliency,) = ta.grad(logits[0, 2, 5], [kept["embedded"]])
    x = ta.Tensor(kept["embedded"].data, requires_grad=True)
    by_hand = x
    for layer in layers:
        by_hand = layer(by_hand, mask=causal_mask(IDX.shape[1]))
    by_hand = model.logits(model.decoder.final_norm(by_hand))[0, 2, 5]
    (expected,) = ta.grad(by_hand, [x])
    np.testing.assert_allclose(saliency.data, expected.data, atol=1e-6)
    assert np.all(saliency.data[0, 3:] == 0)

    # Patch: the stream after layer 1 taken from another prompt, at every position, gives that
    # prompt's logits.
    run(other, layers[0], lambda m, args, out: kept.update(other=out))
    patched = run(IDX, layers[0], lambda m, args, out: kept["other"])
    np.testing.assert_array_equal(patched.data, model(other).data)

    # Ablate: zeroing head 2 of layer 2 where the heads meet (the input of attn.out, head i in
    # columns i*d_head..) is the model with that head's rows of attn.out.weight zeroed.
    def ablate(module, args):
        return args[0] * (np.arange(16) < 8)

    out = layers[1].attn.out
    ablated = run(IDX, out, ablate, pre=True).data
    assert not np.allclose(ablated, logits.data)
    out.weight.data[8:16] = 0
    np.testing.assert_allclose(ablated, model(IDX).data, atol=1e-6)
