"""`tinyformer graph`: the examples and a checkpoint's step of every model kind, forward and
backward, drawn for real; modules collapsed by depth and repeated blocks; bad input."""

import html
import json
import os
import re
import shutil
from graphlib import TopologicalSorter
from types import SimpleNamespace

import numpy as np
import tinyautograd as ta
import pytest
from click.testing import CliRunner

from tinyformer_cli import main
from dot_source import boxes, svg_clusters, svg_titles, svg_tooltips, tooltips
from tinyformer.checkpoint import MODELS, load_model
from tinyformer.rundir import save_checkpoint
from viz.examples import EXAMPLES, example

# CI installs dot: there, a missing dot fails the tests rather than skipping them.
needs_dot = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                               reason="graphviz's dot is not installed (CI installs it)")


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def draw(tmp_path, *args, suffix=".svg"):
    """Run `tinyformer graph ARGS --out FILE` and return what it wrote."""
    out = tmp_path / f"graph{suffix}"
    result = tinyformer("graph", *args, "--out", out)
    assert result.exit_code == 0, result.output
    return out.read_text()


def owners(model):
    """The module path of each parameter's owner, the root's own ("") left out."""
    return {name.rpartition(".")[0] for name, _ in model.named_parameters()} - {""}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_is_a_scalar_loss_with_named_parameters(name):
    shown = example(name)
    assert shown.loss.shape == () and shown.loss.requires_grad
    assert np.isfinite(shown.loss.item())
    assert list(shown.params.named_parameters())


def test_an_unknown_example_is_a_value_error_naming_the_examples():
    with pytest.raises(ValueError, match="unknown example 'nope'; choose one of mlp, "):
        example("nope")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_draws_to_dot_with_its_parameter_names(name, tmp_path):
    source = draw(tmp_path, "--example", name, suffix=".dot")
    for param_name, _ in example(name).params.named_parameters():
        assert param_name in source
    assert len(re.findall(r"->", source)) >= 3


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                           (".pdf", b"%PDF")])
def test_renders_for_real(tmp_path, suffix, magic):
    out = tmp_path / f"gpt{suffix}"
    result = tinyformer("graph", "--example", "gpt", "--grad", "--data", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)


@needs_dot
def test_without_out_the_picture_is_graph_svg_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = tinyformer("graph", "--example", "mlp")
    assert result.exit_code == 0 and result.stdout == "graph.svg\n", result.output
    assert (tmp_path / "graph.svg").read_bytes().startswith(b"<?xml")


@needs_dot
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_backward_graph_of_every_example(tmp_path, name):
    svg = draw(tmp_path, "--example", name, "--what", "backward")
    titles, boxes = svg_titles(svg), svg_clusters(svg)
    assert "dL/dL = 1" in titles and "more nodes not drawn" not in svg
    model = example(name).params
    for param_name, _ in model.named_parameters():      # layer norm's `weight`, a GPT's `a.b`
        wrapped = param_name if param_name.isidentifier() else f"({param_name})"
        # in its module's box, named there by the rest of its path; in full as its tooltip
        assert (titles + svg_tooltips(svg)).count(f"dL/d{wrapped}") == 1
    assert owners(model) <= set(boxes)              # a box per module that owns parameters
    assert sum(box.endswith(" backward") for box in boxes) >= len(owners(model))


# ------------------------------------------------------------------ a checkpoint's step


TINY = ["--n-layer", 2, "--n-head", 2, "--d-model", 16, "--batch-size", 4, "--iters", 1]
PROMPTS = {"gpt": "eve has a kite.", "bert": "eve has a kite.", "transformer": "314+15"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_unplotted):
    """A one-step run of each model kind: {kind: directory} (no loss plot: none is read)."""
    made = {}
    text = ["--context", 16, "--eval-iters", 1]
    for kind, args in [("gpt", text), ("bert", ["--model", "bert", *text]),
                       ("transformer", ["--task", "add"])]:
        made[kind] = tmp_path_factory.mktemp(kind) / "run"
        result = train_unplotted(*TINY, *args, "--out", made[kind])
        assert result.exit_code == 0, result.output
    return made


@needs_dot
@pytest.mark.parametrize("kind", ["gpt", "bert", "transformer"])
def test_a_checkpoints_training_step_forward_and_backward(tmp_path, runs, kind):
    model, _, saved = load_model(runs[kind])
    assert saved["model"] == kind
    step = ["--checkpoint", runs[kind], "--prompt", PROMPTS[kind]]
    forward = draw(tmp_path, *step)
    assert owners(model) <= set(svg_clusters(forward))
    assert "crossentropy" in svg_titles(forward)
    backward = draw(tmp_path, *step, "--what", "backward")
    for name, _ in model.named_parameters():
        assert svg_tooltips(backward).count(f"dL/d({name})") == 1
    assert owners(model) <= set(svg_clusters(backward))
    assert "crossentropy backward" in svg_clusters(backward)


# Every value of the modern block's switches, in four mixes: each model's own defaults are the
# runs above. rmsnorm_affine has no option of `train` (a --config file's key), so the models
# are built here, on the runs' tokenizers and settings, their weights drawn afresh.
SWITCHED = [
    {"positions": "rope", "norm": "pre", "normalization": "rmsnorm", "activation": "swiglu",
     "n_kv_head": 1, "qk_norm": True, "logit_softcap": 3.0, "bias": False,
     "tie_weights": False},
    {"positions": "none", "norm": "post", "normalization": "rmsnorm", "rmsnorm_affine": False,
     "activation": "relu2", "qk_norm": True, "dropout": 0.3},
    {"positions": "sinusoidal", "activation": "relu", "qk_norm": True, "bias": False},
    {"positions": "learned", "activation": "gelu", "n_kv_head": 1, "logit_softcap": 3.0},
]


def switched_run(run, kind, switches, directory):
    """A copy of `run` whose checkpoint is a model of its kind built with `switches`, of one
    layer (an encoder-decoder's two draw more than --max-nodes' default)."""
    shutil.copytree(run, directory)
    saved = json.loads((directory / "config.json").read_text())
    config = {**saved["model_config"], "n_layer": 1, **switches}
    ta.manual_seed(0)
    model = MODELS[kind](**config)
    kept = {key: value for key, value in saved.items()
            if key not in ("format", "version", "files", "sha256")}
    save_checkpoint(directory, {**kept, "model_config": model.config},
                    {name: p.data for name, p in model.named_parameters()}, {})
    return model


@pytest.mark.parametrize("switches", SWITCHED, ids=lambda s: ",".join(map(str, s.values())))
@pytest.mark.parametrize("kind", ["gpt", "bert", "transformer"])
def test_the_backward_graph_of_every_switch_of_the_block(tmp_path, runs, kind, switches):
    # `graph --what backward` draws what grad(create_graph=True) records: every op of every
    # block the switches build has its backward recorded, and each parameter its dL/d box.
    # (Its graphviz source: no dot needed.)
    model = switched_run(runs[kind], kind, switches, tmp_path / "run")
    backward = SimpleNamespace(source=draw(tmp_path, "--checkpoint", tmp_path / "run",
                                           "--prompt", PROMPTS[kind], "--what", "backward",
                                           suffix=".dot"))
    assert "more nodes not drawn" not in backward.source
    drawn = list(tooltips(backward).values())
    for name, _ in model.named_parameters():
        assert drawn.count(f"dL/d({name})") == 1, name
    titles = {title for title, _, _ in boxes(backward)}
    assert owners(model) | {"crossentropy backward", "attention backward"} <= titles
    # the switched ops' own backward formulas, recorded as ops of the backward graph
    ops = {"rmsnorm": "rmsnorm backward", "swiglu": "swiglu backward",
           "relu2": "relusquared backward", "gelu": "gelu backward"}
    wanted = {ops[v] for v in (switches.get("normalization"), switches["activation"]) if v in ops}
    if "logit_softcap" in switches:
        wanted.add("softcap backward")
    assert wanted <= titles


@needs_dot
def test_a_checkpoints_backward_graph_folded(tmp_path, runs):
    svg = draw(tmp_path, "--checkpoint", runs["transformer"], "--prompt", "314+15", "--what",
               "backward", "--depth", 2, "--fold-repeats")
    titles = svg_titles(svg)
    # the layers of the encoder and of the decoder, each a stack of two, one node each, in
    # the box of their encoder and decoder
    assert {"encoder.layers: EncoderLayer x 2", "decoder.layers: DecoderLayer x 2"} <= set(titles)
    assert {"encoder", "decoder"} <= set(svg_clusters(svg))
    assert not any(".layers.0" in t for t in titles + svg_clusters(svg))


# ------------------------------------------------------- depth and repeats, on both graphs


@pytest.mark.parametrize("what", ["forward", "backward"])
def test_depth_collapses_the_example_to_its_modules(tmp_path, what):
    source = draw(tmp_path, "--example", "gpt", "--what", what, "--depth", 2, suffix=".dot")
    folded = re.findall(r"^\s*module\d+ \[label=<<B>(.*?)</B>(.*)$", source, re.M)
    assert {title for title, _ in folded} == {"embed.tok", "embed.pos", "decoder.layers.0",
                                              "decoder.final_norm"}
    label = dict(folded)["decoder.layers.0"]
    assert "DecoderLayer" in label and " ops<" in label and " params<" in label
    assert "attn_norm" not in source          # folded into decoder.layers.0, boxes and all


def test_a_folded_block_and_its_residual_sums_draw_no_cycle(tmp_path):
    # The add that sums the gradient of a block's inner h = x + attn(x) reads the block's own
    # backward and feeds it; drawn outside the folded block it was an arrow both ways.
    source = draw(tmp_path, "--example", "gpt", "--what", "backward", "--depth", 2,
                  suffix=".dot")
    edges = re.findall(r"^\s*(\w+) -> (\w+)", source, re.M)
    assert any(a.startswith("module") for a, _ in edges)
    after = {}
    for source_id, target_id in edges:
        after.setdefault(target_id, set()).add(source_id)
    TopologicalSorter(after).prepare()          # CycleError: the picture loops back


@pytest.mark.parametrize("what", ["forward", "backward"])
def test_fold_repeats_draws_the_layers_as_one_node(tmp_path, what):
    source = draw(tmp_path, "--example", "bert", "--what", what, "--fold-repeats",
                  suffix=".dot")
    layers = example("bert").params.encoder.layers
    (label,) = re.findall(r"^\s*module\d+ \[label=<<B>encoder.layers: EncoderLayer x 2</B>(.*)$",
                          source, re.M)
    assert f"{sum(layer.num_parameters() for layer in layers):,} params" in label
    assert "layers.0" not in source and "layers.1" not in source
    assert ("gradients<" in label) == (what == "backward")


@pytest.mark.parametrize("what", ["forward", "backward"])
def test_grad_and_flow_on_both_graphs(tmp_path, what):
    source = draw(tmp_path, "--example", "mlp", "--what", what, "--grad", "--flow",
                  suffix=".dot")
    assert "gradient norm (log scale)" in source
    assert "grad: norm" in source and "grad norm " not in source     # the norm said once
    # every parameter's node is coloured by its gradient: forward the parameter itself,
    # backward its dL/d
    title = "{}" if what == "forward" else "dL/d({})"
    for name, _ in example("mlp").params.named_parameters():
        (fill,) = re.findall(rf"fillcolor=\"(#\w+)\".*tooltip=\"{re.escape(title.format(name))}\"",
                             source)
        assert fill not in ("#ffffff", "#cfe2f3")


def test_grad_alone_shows_every_ops_gradient_on_the_forward_graph(tmp_path):
    source = draw(tmp_path, "--example", "mlp", "--grad", suffix=".dot")
    ops = re.findall(r"^\s*op\d+ \[label=<<B>(\w+)</B>(.*)$", source, re.M)
    assert {"linear", "tanh"} <= {name for name, _ in ops}
    assert all("grad: norm" in label for _, label in ops)     # not only the parameters'


@pytest.mark.parametrize("extra", [[], ["--depth", "1"], ["--fold-repeats"]])
def test_flow_colours_by_gradient_norm_with_a_legend(tmp_path, extra):
    source = draw(tmp_path, "--example", "gpt", "--flow", *extra, suffix=".dot")
    assert "gradient norm (log scale)" in source and "grad norm" in source


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, words", [
    ([], "give one of --example NAME or --checkpoint DIR"),
    (["--example", "mlp", "--checkpoint", "x"], "--example NAME or --checkpoint DIR, not both"),
    (["--example", "mlp", "--prompt", "hi"], "--prompt is the text of a --checkpoint's batch"),
    (["--example", "mlp", "--out", "g.txt"], "the suffix says the format"),
    (["--example", "mlp", "--out", "no/such/dir/g.svg"], "does not exist"),
    (["--example", "lstm"], "Invalid value for '--example'"),
    (["--example", "mlp", "--depth", "-1"], "Invalid value for '--depth'"),
    # a cap of one place is its note alone: no node of the graph drawn
    (["--example", "mlp", "--max-nodes", "1"], "Invalid value for '--max-nodes'"),
    # a page folds the boxes around modules, and has none around the whole model
    (["--example", "mlp", "--depth", "0", "--out", "g.html"], "give --depth 1 or more"),
    (["--example", "mlp", "--depth", "0", "--out", "g.HTML"], "give --depth 1 or more"),
    # fewer places than the example's parameters: their dL/d boxes alone, unconnected
    (["--example", "gpt", "--max-nodes", "12"], "or use --depth to fold modules"),
    (["--checkpoint", "no-such-run", "--prompt", "hi"], "does not exist"),
    (["--checkpoint", "RUN:gpt"], "--checkpoint needs --prompt"),
    (["--checkpoint", "RUN:gpt", "--prompt", "e"], "at least 2 tokens"),
    (["--checkpoint", "RUN:gpt", "--prompt", ""], "--prompt is empty"),
    (["--checkpoint", "RUN:bert", "--prompt", ""], "--prompt is empty"),
    (["--checkpoint", "RUN:bert", "--prompt", "eve has a <mask>"], "without <mask>"),
    (["--checkpoint", "RUN:transformer", "--prompt", ""], "--prompt is empty"),
    (["--checkpoint", "RUN:gpt", "--prompt", "ÿ"], "cannot be encoded"),
    (["--checkpoint", "RUN:transformer", "--prompt", "31415"], "no source of the add task"),
    # Letters are no source of a task either: said as such, not as a prompt it cannot encode.
    (["--checkpoint", "RUN:transformer", "--prompt", "eve"], "no source of the add task"),
    # The message of generate, attention and lens, for a prompt too long for the model.
    (["--checkpoint", "RUN:transformer", "--prompt", "9" * 20 + "+1"],
     "--prompt has 22 tokens; this model reads at most 11: shorten it"),
    # A GPT's step reads its context and one more token, the last target; a BERT its context.
    (["--checkpoint", "RUN:gpt", "--prompt", "a" * 18],
     "--prompt has 18 tokens; this model reads at most 17 (its context, 16, and one "
     "target): shorten it"),
    (["--checkpoint", "RUN:bert", "--prompt", "a" * 17],
     "--prompt has 17 tokens; this model reads at most 16: shorten it"),
])
def test_bad_input(tmp_path, monkeypatch, runs, args, words):
    monkeypatch.chdir(tmp_path)
    args = [str(runs[a[4:]]) if a.startswith("RUN:") else a for a in args]
    result = tinyformer("graph", *args, "--what", "backward")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_backward_cap_too_small_for_any_op_says_the_least_that_draws_one(tmp_path):
    result = tinyformer("graph", "--example", "gpt", "--what", "backward", "--max-nodes", 2,
                        "--out", tmp_path / "g.dot")
    assert result.exit_code == 2 and not (tmp_path / "g.dot").exists()
    least = int(re.search(r"raise --max-nodes \((\d+) draws the first ops\)", result.stderr)[1])
    refused = tinyformer("graph", "--example", "gpt", "--what", "backward", "--max-nodes",
                         least - 1, "--out", tmp_path / "g.dot")
    assert refused.exit_code == 2, refused.output
    source = draw(tmp_path, "--example", "gpt", "--what", "backward", "--max-nodes", least,
                  suffix=".dot")
    assert re.search(r"^\s*op\d+ -> grad\d+", source, re.M)      # an op, feeding its dL/d


def test_a_backward_cap_too_small_is_refused_in_the_words_of_draw_backward_with_the_options():
    # The command wrote its own copy of the sentence, which had drifted from the library's.
    from viz import draw_backward
    from viz.write import step_to_draw
    shown = step_to_draw("gpt", None, None)
    with pytest.raises(ValueError) as library:
        draw_backward(shown.loss, params=shown.params, inputs=shown.inputs, max_nodes=2)
    result = tinyformer("graph", "--example", "gpt", "--what", "backward", "--max-nodes", 2)
    assert result.exit_code == 2
    said = str(library.value).removeprefix("draw_backward: ")
    said = said.replace("max_nodes", "--max-nodes").replace("depth", "--depth")
    assert result.stderr == f"Error: {said}\n"


@pytest.mark.parametrize("kind, most", [("gpt", 17), ("bert", 16)])
def test_a_prompt_as_long_as_the_step_reads_is_drawn_whole(runs, kind, most):
    # A longer one was cut to fit, silently, where attention and lens refuse it.
    from viz.examples import checkpoint_step
    model, tokenizer, saved = load_model(runs[kind])
    assert model.context + (kind == "gpt") == most
    step = checkpoint_step(model, tokenizer, saved, "a" * most)
    assert step.loss.shape == ()
    with pytest.raises(ValueError, match=f"has {most + 1} tokens; .* at most {most}[ :]"):
        checkpoint_step(model, tokenizer, saved, "a" * (most + 1))


def test_a_berts_step_hides_every_seventh_token_from_the_first(runs, monkeypatch):
    # From the first, so that a prompt of one token hides it and the loss has a guess to score.
    import tinyformer.jobs
    from tinyformer.bert import IGNORE
    from tinyformer.tokenizers import encode_prompt
    from viz.examples import checkpoint_step
    model, tokenizer, saved = load_model(runs["bert"])
    fed, scored = [], tinyformer.jobs.masked_lm_loss
    monkeypatch.setattr(tinyformer.jobs, "masked_lm_loss", lambda model, inputs, targets: (
        fed.append((inputs, targets)) or scored(model, inputs, targets)))
    mask = tokenizer.token_to_id("<mask>")
    for prompt in (PROMPTS["bert"], PROMPTS["bert"][:1]):
        ids = np.array(encode_prompt(tokenizer, prompt, allow_special=False))
        step = checkpoint_step(model, tokenizer, saved, prompt)
        inputs, targets = fed.pop()
        hidden = np.arange(len(ids)) % 7 == 0
        np.testing.assert_array_equal(inputs[0], np.where(hidden, mask, ids))
        np.testing.assert_array_equal(targets[0], np.where(hidden, ids, IGNORE))
        assert np.isfinite(step.loss.data)


def test_a_seq2seq_prompt_whose_answer_does_not_fit_the_decoder_says_so(runs):
    # A reversed prompt as long as the context fits the encoder; the decoder reads <bos> and
    # the answer, one token more. It was refused as "12 tokens; give at most 11" of 11 given.
    from viz.examples import checkpoint_step
    model, tokenizer, saved = load_model(runs["transformer"])
    saved = {**saved, "train": {**saved["train"], "task": "reverse"}}
    prompt = "1234567890"[:model.context - 1] + "0"
    assert len(prompt) == model.context
    with pytest.raises(ValueError) as error:
        checkpoint_step(model, tokenizer, saved, prompt)
    assert str(error.value) == (f"the answer to --prompt, {prompt[::-1]!r}, and <bos> make "
                                f"{model.context + 1} tokens; this model reads at most "
                                f"{model.context}: shorten --prompt")
    assert checkpoint_step(model, tokenizer, saved, prompt[1:]).loss.shape == ()


def test_a_seq2seq_prompt_longer_than_any_source_it_trained_on_is_noted_as_its_step_shows_it(
        tmp_path, monkeypatch, runs):
    # attention and lens say so of a prompt the model takes but never trained on; graph drew
    # its step and said nothing, then said "its answer is likely wrong" of an answer it does
    # not show: its step is on the right answer, whose loss is likely high. The run, as if
    # trained on sources of at most 4 digits, so that a longer one still fits its context.
    import viz.write
    model, tokenizer, saved = load_model(runs["transformer"])
    trained = {**saved, "train": {**saved["train"], "min_len": 3, "max_len": 4}}
    monkeypatch.setattr(viz.write, "load_model", lambda checkpoint_dir: (model, tokenizer,
                                                                          trained))
    for prompt, note in [("31+41", ""), ("314+15", "note: --prompt has 5 digits, more than "
                         "any source it was trained on (--max-len 4); its loss on the right "
                         "answer is likely high\n")]:
        result = tinyformer("graph", "--checkpoint", runs["transformer"], "--prompt", prompt,
                            "--out", tmp_path / "graph.dot")
        assert result.exit_code == 0 and result.stdout, result.output
        assert result.stderr == note


def test_without_graphviz_the_source_is_kept_in_a_new_dot_file_never_over_the_users(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))   # no `dot` anywhere on PATH
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.dot").write_text("MY NOTES")
    result = tinyformer("graph", "--example", "mlp", "--out", "notes.svg")
    assert result.exit_code == 2
    line, = result.stderr.strip().splitlines()
    assert "apt-get install graphviz" in line and "notes.dot exists" in line, line
    assert (tmp_path / "notes.dot").read_text() == "MY NOTES"
    assert sorted(os.listdir(tmp_path)) == ["notes.dot"]
    # With no such file, the source is saved there, so that the drawing is not lost.
    result = tinyformer("graph", "--example", "mlp", "--out", "graph.svg")
    assert result.exit_code == 2 and "wrote the source to graph.dot" in result.stderr
    assert (tmp_path / "graph.dot").read_text().startswith("digraph")
    assert not (tmp_path / "graph.svg").exists()


@needs_dot
@pytest.mark.parametrize("suffix, noted", [(".png", True), (".svg", False)])
def test_a_graph_too_big_for_a_png_is_a_note_saying_what_draws_it_readably(tmp_path, capfd,
                                                                          suffix, noted):
    # dot scales a PNG taller than 32767 pixels down to fit, its labels then unreadable, and
    # printed its own warning about cairo; the command says what to draw instead.
    from viz.examples import Example
    from viz.write import write_graph
    x = ta.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(400):                      # a chain of ops 400 boxes tall
        y = y.tanh()
    notes = []
    out = write_graph(str(tmp_path / f"chain{suffix}"), Example(y.sum(), ta.nn.Module(), {}),
                      log=notes.append)
    assert os.path.getsize(out) > 0
    assert capfd.readouterr().err == ""
    assert bool(notes) == noted
    if noted:
        assert len(notes) == 1 and "--depth N" in notes[0] and ".svg or .html" in notes[0]


def test_a_png_too_big_to_read_is_noted_whatever_the_case_of_its_suffix(tmp_path, monkeypatch):
    # render writes "chain.PNG" as a PNG: the note on its size is owed to it as to "chain.png".
    import viz.write
    from viz.examples import Example
    monkeypatch.setattr(viz.write, "render", lambda dot, out_path: out_path)
    monkeypatch.setattr(viz.write, "at_png_limit", lambda path: True)
    x = ta.Tensor(np.ones(2), requires_grad=True)
    notes = []
    viz.write.write_graph(str(tmp_path / "chain.PNG"), Example(x.tanh().sum(), ta.nn.Module(), {}),
                          log=notes.append)
    assert len(notes) == 1 and "too big for a PNG" in notes[0]


@pytest.mark.parametrize("suffix, noted", [(".png", True), (".pdf", True), (".svg", False)])
@pytest.mark.parametrize("what", ["forward", "backward"])
def test_a_graphs_title_in_characters_no_font_has_is_a_note_as_the_other_pictures_say(
        tmp_path, monkeypatch, suffix, noted, what):
    # A run named in Chinese, or with an emoji, showed boxes in the title of a PNG with no
    # word said, where attention, lens and plot name the characters no font has. dot draws a
    # PNG's and a PDF's text itself; an SVG's is drawn by whatever shows it.
    import viz.graph
    import viz.write
    from viz.examples import Example
    monkeypatch.setattr(viz.write, "render", lambda dot, out_path: out_path)
    monkeypatch.setattr(viz.write, "at_png_limit", lambda path: False)
    monkeypatch.setattr(viz.graph, "font_characters", lambda: [(0x20, 0x7e), (0xa0, 0x17f)])
    x = ta.Tensor(np.ones(2), requires_grad=True)
    out = str(tmp_path / f"g{suffix}")

    def notes_of(title):
        notes = []
        viz.write.write_graph(out, Example(x.tanh().sum(), ta.nn.Module(), {"x": x}), what,
                              title=title, log=notes.append)
        return notes
    notes = notes_of("运行 café 😀\u200d: the graph of the loss on 'eve'")
    if not noted:
        assert notes == []
        return
    # Each character once, in order; é is in a font, and so are spaces and the joiner drawn
    # as nothing; the words are those of the matplotlib pictures' note.
    assert notes == [f"note: no installed font has 运行😀, drawn as boxes in {out}; install "
                     f"fonts that do (Debian or Ubuntu: apt install fonts-noto-core "
                     f"fonts-noto-cjk fonts-symbola) and draw it again, or write a page "
                     f"(.html), which the browser draws with its own fonts"]
    assert notes_of("the mlp example: its loss's graph") == []
    monkeypatch.setattr(viz.graph, "font_characters", lambda: None)     # no fc-list to ask
    assert notes_of("运行") == []


def test_the_characters_of_the_installed_fonts_are_read_from_fontconfig(monkeypatch):
    import subprocess

    import viz.graph
    listing = "20-7e a0-17f 192\n4e00-9fff 3000\n"

    def fc_list(command, **settings):
        assert command == ["fc-list", "--format", "%{charset}\n"]
        return subprocess.CompletedProcess(command, 0, listing, "")
    monkeypatch.setattr(viz.graph.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(viz.graph.subprocess, "run", fc_list)
    assert viz.graph.font_characters() == [(0x20, 0x7e), (0xa0, 0x17f), (0x192, 0x192),
                                           (0x4e00, 0x9fff), (0x3000, 0x3000)]
    assert viz.graph.unshown_in_graph("a 中文、ƒ ∑ 😀") == "、∑😀"
    listing = "not a range\n"
    assert viz.graph.font_characters() is None and viz.graph.unshown_in_graph("∑") == ""
    monkeypatch.setattr(viz.graph.shutil, "which", lambda name: None)
    assert viz.graph.font_characters() is None


@needs_dot
@pytest.mark.parametrize("what", ["forward", "backward"])
@pytest.mark.parametrize("flow", [False, True])
def test_a_picture_is_titled_by_what_it_shows_and_has_a_key_or_a_legend(tmp_path, what, flow):
    # A picture said nothing of itself: not what graph it is, nor what its colours are.
    svg = draw(tmp_path, "--example", "mlp", "--what", what, *["--flow"] * flow)
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert f"the mlp example: its loss's graph ({what})" in texts
    assert ("key" in texts) != flow and ("gradient norm (log scale)" in texts) == flow
