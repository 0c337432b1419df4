"""`tinyformer exercises draw N`: each picture shows what the learner's own code computes (the
reference solution's picture, and a wrong answer's, differ where the answer does), a file that
cannot be drawn yet says why as a check would, and the command writes the file it names."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from full_disk import files_limited_to
from solutions import solution_text, write_solved

from tinyformer_cli import main
from tinyformer.exercises import CHAPTERS, exercises, find
from tinyformer.exercises.checking import CheckFailure, load_learner_file
from tinyformer.exercises.pictures import DRAWERS, Picture, draw, render
from tinyformer.graph_layout import INSTALL_HINT

PNG = b"\x89PNG\r\n\x1a\n"


def learner_of(ex, tmp_path, solution=None):
    """The reference solution of `ex` (or `solution`, text in its place), loaded."""
    return load_learner_file(write_solved(ex, tmp_path / Path(ex.file).name, solution))


def picture_of(slug, tmp_path, *edits, **options):
    """The picture of exercise `slug` solved by its reference solution, with each (old, new)
    of `edits` applied first: a learner's own, possibly wrong, answer."""
    ex = find(slug)
    text = solution_text(ex)
    for old, new in edits:
        assert old in text, f"the solution of {slug} no longer contains {old!r}"
        text = text.replace(old, new)
    return DRAWERS[slug].draw(learner_of(ex, tmp_path, text), **options)


def panel(picture, title_part):
    return next(p for p in picture.panels if title_part in p.title)


# -- every chapter has a picture, and an unfinished file says why it cannot be drawn ----------

def test_every_chapter_has_a_picture():
    drawn = {find(slug).chapter for slug in DRAWERS}
    assert drawn == set(range(1, len(CHAPTERS) + 1))
    gradient_exercises = {"scalar_engine", "broadcast_gradients", "matmul_backward",
                          "softmax_cross_entropy_backward", "layer_norm_backward", "embedding"}
    attention = {ex.slug for ex in exercises() if ex.chapter in (6, 11)}
    assert gradient_exercises | attention <= set(DRAWERS)


@pytest.mark.parametrize("slug", [s for s in DRAWERS if s not in ("scalar_engine", "your_gpt")])
def test_an_untouched_file_cannot_be_drawn_and_says_which_todo(slug, tmp_path):
    ex = find(slug)
    message = draw(ex, ex.source, tmp_path / "picture.png")
    assert message is not None and "is not written yet" in message, message
    assert not (tmp_path / "picture.png").exists()


def test_the_untouched_scalar_engine_draws_its_graph_without_gradients(tmp_path):
    ex = find("scalar_engine")
    picture = DRAWERS["scalar_engine"].draw(load_learner_file(ex.source))
    assert "No gradients yet: `Value.backward` is not written yet" in picture.caption
    assert "data 0.7071 | grad 0.0000" in picture.dot.source          # o, computed forward


# -- the pictures show the learner's values -----------------------------------------------------

def test_the_scalar_engine_graph_shows_each_values_data_and_grad(tmp_path):
    source = picture_of("scalar_engine", tmp_path).dot.source
    for name, data, grad in [("x1", 2.0, -1.5), ("w1", -3.0, 1.0), ("x2", 0.0, 0.5),
                             ("w2", 1.0, 0.0), ("n", 0.8814, 0.5), ("o", 0.7071, 1.0)]:
        assert f'"{name} | data {data:.4f} | grad {grad:.4f}"' in source
    assert source.count("shape=ellipse") == 5                     # *, *, +, +, tanh
    assert source.count("->") == 9 + 5                     # inputs to ops, ops to their values
    wrong = picture_of("scalar_engine", tmp_path,
                       ("self.grad += (1 - out.data ** 2) * out.grad", "self.grad += out.grad"))
    assert '"n | data 0.8814 | grad 1.0000"' in wrong.dot.source  # the learner's own gradient


@pytest.mark.parametrize("slug, edit, wrong_input", [
    ("broadcast_gradients", ("unbroadcast(grad * a, np.shape(b))", "grad * a"), "b"),
    ("matmul_backward", ("return grad_a, grad_b", "return grad_a, grad_a"), "b"),
    ("softmax_cross_entropy_backward", ("return d / n * grad", "return d * grad"), "logits"),
    ("layer_norm_backward", ("d_gamma = (rows * x_hat.reshape(rows.shape)).sum(axis=0)",
                             "d_gamma = rows.sum(axis=0)"), "gamma"),
    ("embedding", ("np.add.at(table_grad, ctx.ids, grad)", "table_grad[ctx.ids] += grad"),
     "table"),
])
def test_a_backward_picture_marks_each_gradient_against_tinyautograds(slug, edit, wrong_input,
                                                                      tmp_path):
    right = picture_of(slug, tmp_path).dot.source
    grads = [line for line in right.splitlines() if "d loss / d " in line and "grad_" in line]
    assert grads and all("matches tinyautograd" in line for line in grads), right
    assert all('fillcolor="#cfe2f3"' in line for line in grads)       # blue: right
    assert "upstream grad" in right and "your " in right
    wrong = picture_of(slug, tmp_path, edit).dot.source
    node = next(line for line in wrong.splitlines() if f"grad_{wrong_input} [" in line)
    assert "matches tinyautograd" not in node and ("differs" in node or "shape should" in node)
    assert 'fillcolor="#f4cccc"' in node                   # red, not the blue of a right one


def test_the_table_lookup_picture_shows_the_rows_picked(tmp_path):
    picture = picture_of("table_lookup", tmp_path)
    table = panel(picture, "table  (V, d)").values
    np.testing.assert_array_equal(panel(picture, "lookup_by_matmul").values,
                                  table[[2, 0, 3, 2]])
    np.testing.assert_array_equal(panel(picture, "one_hot").values, np.eye(4)[[2, 0, 3, 2]])


def test_the_markov_picture_is_the_learners_table(tmp_path):
    probs = picture_of("markov_first_order", tmp_path).panels[0]
    assert np.allclose(probs.values.sum(axis=1)[probs.values.sum(axis=1) > 0], 1.0)
    unnormalised = picture_of("markov_first_order", tmp_path,
                              ("return np.divide(counts, sums, out=np.zeros_like(counts, "
                               "dtype=float), where=sums > 0)", "return counts"))
    assert unnormalised.panels[0].values.max() > 1.0


def test_the_attention_as_matmul_picture_keeps_only_earlier_positions(tmp_path):
    scores = picture_of("attention_as_matmul", tmp_path).panels[0].values
    assert scores.shape == (12, 12) and scores.any()
    assert not np.triu(scores).any()
    # Every token listening for its own kind instead of the informative ones: another map.
    same_token = picture_of("attention_as_matmul", tmp_path,
                            ("lookup_masks(ids, mask_table) @ keys.T", "keys @ keys.T"))
    assert not np.array_equal(same_token.panels[0].values, scores)
    assert not np.triu(same_token.panels[0].values).any()


def test_attention_maps_are_the_learners_weights(tmp_path):
    picture = picture_of("scaled_dot_product", tmp_path)
    for weights in (panel(picture, "no mask").values, panel(picture, "causal").values):
        assert np.allclose(weights.sum(axis=1), 1.0)
    assert not np.triu(panel(picture, "causal").values, k=1).any()
    assert np.triu(panel(picture, "no mask").values, k=1).any()
    unscaled = picture_of("scaled_dot_product", tmp_path,
                          ("/ math.sqrt(q.shape[-1])", "")).panels[0].values
    assert not np.allclose(unscaled, panel(picture, "no mask").values)


def test_an_attention_map_of_the_wrong_shape_names_the_call_once(tmp_path):
    with pytest.raises(CheckFailure) as failure:
        picture_of("scaled_dot_product", tmp_path, ("return scores.softmax(axis=-1) @ v",
                                                    "return (scores.softmax(axis=-1) @ v)[0]"))
    assert str(failure.value).startswith("scaled_dot_product(q, k, v) returned a")
    assert "returned returned" not in str(failure.value)
    assert "a Tensor of shape (6, 6); the picture needs (1, 6, 6)" in str(failure.value)


def test_the_causal_mask_picture_shows_the_mask_and_its_weights(tmp_path):
    picture = picture_of("causal_mask", tmp_path)
    np.testing.assert_array_equal(picture.panels[0].values, np.tril(np.ones((6, 6))))
    assert not np.triu(picture.panels[1].values, k=1).any()


def test_a_float_causal_mask_is_said_as_the_check_says_it_not_as_numpys_type_error(tmp_path):
    """np.tril(np.ones((T, T))) is 0.0 and 1.0: causal_attention's `~mask` fails on it. The
    picture names the dtype, as the check does, rather than numpy's TypeError."""
    ex = find("causal_mask")
    solved = write_solved(ex, tmp_path / "causal_mask.py", solution_text(ex).replace(
        "np.ones((T, T), dtype=bool)", "np.ones((T, T))"))
    message = draw(ex, solved, tmp_path / "picture.png")
    assert message.startswith("causal_mask(T=6) returned an array of dtype float64; a mask "
                              "must be boolean (dtype bool)"), message
    assert "TypeError" not in message and not (tmp_path / "picture.png").exists()


def test_the_heads_of_multi_head_attention_differ(tmp_path):
    picture = picture_of("multi_head_attention", tmp_path)
    first, second = (p.values for p in picture.panels)
    assert np.allclose(first.sum(axis=1), 1.0) and not np.allclose(first, second)
    # A reshape straight to (B, n_head, T, d_head) mixes the heads' features: other maps.
    wrong = picture_of("multi_head_attention", tmp_path,
                       ("x.reshape(B, T, n_head, C // n_head).swapaxes(1, 2)",
                        "x.reshape(B, n_head, T, C // n_head)"))
    assert not np.allclose(wrong.panels[0].values, first)


def test_heads_are_counted_from_one_and_say_their_index(tmp_path):
    # Every other picture counts layers and heads from 1; the exercise indexes them from 0.
    titles = [p.title for p in picture_of("multi_head_attention", tmp_path).panels]
    assert titles == ["head 1 (index 0)", "head 2 (index 1)"]


def test_a_value_that_rounding_left_near_zero_is_written_as_zero():
    from tinyformer.exercises.pictures import Panel, _figure
    figure = _figure(Picture("t", [Panel("p", values=np.array([[1.9e-16, 0.25], [1.0, 0.0]]),
                                         numbers=True)]))
    assert sorted(text.get_text() for text in figure.axes[0].texts) == ["0", "0", "0.25", "1"]


@pytest.mark.parametrize("slug, labels", [
    ("sinusoidal_positions", ("dimension (0 to 31)", "position (0 to 47)")),
    ("scaled_dot_product", ("key (column)", "query (row)")),
    ("causal_mask", ("key (column)", "query (row)")),
    ("multi_head_attention", ("key (column)", "query (row)")),
])
def test_heatmaps_name_their_axes_and_a_table_of_colours_has_a_colour_bar(slug, labels,
                                                                           tmp_path):
    from tinyformer.exercises.pictures import _figure
    picture = picture_of(slug, tmp_path)
    figure = _figure(picture)
    maps = figure.axes[:len(picture.panels)]
    assert all((ax.get_xlabel(), ax.get_ylabel()) == labels for ax in maps)
    # A table with no numbers written in says what its colours mean beside it.
    colour_bars = len(figure.axes) - len(picture.panels)
    assert colour_bars == sum(not panel.numbers for panel in picture.panels)


@pytest.mark.parametrize("slug, where", [
    ("attend_to_first", lambda T: np.eye(T)[[0] * T]),
    ("previous_token", lambda T: np.eye(T)[[0] + list(range(T - 1))]),
])
def test_a_hand_set_head_looks_where_it_should(slug, where, tmp_path):
    pattern = picture_of(slug, tmp_path).panels[0].values
    assert np.allclose(pattern, where(len(pattern)), atol=1e-3)


def test_the_induction_picture_has_both_layers(tmp_path):
    first, second = (p.values for p in picture_of("induction_head", tmp_path).panels)
    ids = [0, 3, 1, 4, 5, 3, 1, 4, 5]
    assert np.allclose(first[1:].argmax(axis=1), np.arange(8))     # the previous token
    for t in range(5, 9):                           # after the earlier copy of its token
        assert second[t].argmax() == ids.index(ids[t]) + 1


def test_the_gelu_and_schedule_curves_are_the_learners(tmp_path):
    (_, xs, ys), (_, _, relu) = picture_of("feed_forward", tmp_path).panels[0].lines
    assert np.allclose(ys[[0, 60, 80, 160]], [-0.0001, -0.1588, 0.0, 3.9999], atol=1e-4)
    assert np.array_equal(relu, np.maximum(xs, 0.0))
    (_, steps, rates), = picture_of("warmup_schedule", tmp_path).panels[0].lines
    assert rates.argmax() == 20 and np.isclose(rates[0], 3e-3 / 21)
    assert np.isclose(rates[-1], 3e-4) and np.all(np.diff(rates[20:101]) <= 1e-12)


def test_the_temperature_picture_sharpens_and_cuts(tmp_path):
    bars = [p.values for p in picture_of("temperature_top_k", tmp_path).panels]
    assert all(np.isclose(b.sum(), 1.0) for b in bars)
    assert bars[1][0] > bars[0][0] > bars[2][0]                  # T = 0.5, 1, 2
    assert np.count_nonzero(bars[3]) == 3                        # top_k 3


def test_the_bpe_picture_is_a_tree_of_the_learners_merges(tmp_path):
    source = picture_of("bpe_train", tmp_path).dot.source
    assert "256: 'at'" in source and "-> 256" in source
    assert source.count("fillcolor=\"#cfe2f3\"") == 10           # one node per merge


def test_the_mask_pictures(tmp_path):
    ids, allowed = (p.values for p in picture_of("padding_mask", tmp_path).panels)
    np.testing.assert_array_equal(ids, [[5, 6, 7, 8], [9, 4, 0, 0], [3, 2, 1, 0]])
    np.testing.assert_array_equal(allowed, ids != 0)
    masks = {p.title.split(":")[0]: p.values for p in
             picture_of("attention_masks", tmp_path).panels}
    np.testing.assert_array_equal(masks["GPT"], np.tril(np.ones((4, 4))))
    np.testing.assert_array_equal(masks["decoder self-attention"],
                                  np.tril(np.ones((4, 4))) * [1, 1, 1, 0])
    np.testing.assert_array_equal(masks["cross-attention"], np.ones((4, 1)) * [1, 1, 1, 0, 0])


def test_your_gpts_loss_curve_comes_from_training_it(tmp_path):
    (_, steps, losses), (_, _, uniform) = \
        picture_of("your_gpt", tmp_path, steps=4).panels[0].lines
    assert list(steps) == [1, 2, 3, 4] and np.all(np.isfinite(losses))
    assert abs(losses[0] - uniform[0]) < 0.3           # an untrained model guesses uniformly


def test_the_induction_scores_picture_names_the_learners_scores(tmp_path):
    first, second = picture_of("induction_scores", tmp_path).panels
    score = float(second.title.split("induction ")[1])
    assert score > 0.5 and "previous-token" in first.title


# -- rendering, and the command ----------------------------------------------------------------

def test_render_writes_png_and_svg_of_both_kinds(tmp_path):
    for slug in ("table_lookup", "scalar_engine"):
        picture = picture_of(slug, tmp_path)
        assert isinstance(picture, Picture)
        assert render(picture, tmp_path / f"{slug}.png").read_bytes().startswith(PNG)
        assert b"<svg" in render(picture, tmp_path / f"{slug}.svg").read_bytes()[:400]


def test_a_title_and_caption_wider_than_the_panels_are_wrapped_inside_the_figure():
    from tinyformer.exercises.pictures import Panel, _figure
    narrow = Picture("Attend to the first token: every row has its weight in column 0",
                     [Panel("the head", values=np.eye(3))],
                     caption="position:token; row t is where position t looks. Predictions: "
                             "3 3 3 3 3 3 3 3")
    figure = _figure(narrow)
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)                       # lays the figure out, as savefig does
    for text in (figure._suptitle, figure._supxlabel):
        extent = text.get_window_extent(renderer)
        assert figure.bbox.x0 <= extent.x0 and extent.x1 <= figure.bbox.x1, text.get_text()


@pytest.mark.parametrize("slug", ["table_lookup", "scalar_engine"])     # matplotlib, graphviz
def test_render_that_fails_to_write_leaves_the_old_picture(tmp_path, slug):
    picture = picture_of(slug, tmp_path)
    out = tmp_path / "picture.png"
    out.write_text("the old picture")
    with files_limited_to(1000), pytest.raises(OSError):
        render(picture, out)
    assert out.read_text() == "the old picture"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")) == []


def run(*args):
    return CliRunner().invoke(main, ["exercises", *map(str, args)])


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    assert run("init", tmp_path / "course").exit_code == 0
    monkeypatch.chdir(tmp_path / "course")
    return tmp_path / "course"


def test_draw_writes_the_picture_into_the_workspace_and_says_where(workspace):
    ex = find("scalar_engine")
    write_solved(ex, workspace / ex.file)
    result = run("draw", "scalar_engine")
    assert result.exit_code == 0, result.output
    path = workspace / "pictures" / f"{ex.number:02d}_scalar_engine.png"
    assert path.read_bytes().startswith(PNG)
    assert f"Drew {DRAWERS['scalar_engine'].what} to {path}" in result.output


def test_draw_of_a_graph_without_graphviz_is_the_machines_answer_not_the_learners(
        workspace, tmp_path, monkeypatch):
    ex = find("scalar_engine")
    write_solved(ex, workspace / ex.file)
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))   # no `dot` to be found
    result = run("draw", "scalar_engine")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"Error: {INSTALL_HINT}; this picture is a graph: draw "
                                     f"it again once one is installed")


def test_draw_out_chooses_the_file_and_its_format(workspace, tmp_path):
    ex = find("causal_mask")
    write_solved(ex, workspace / ex.file)
    result = run("draw", ex.number, "--out", "mask.svg")
    assert result.exit_code == 0, result.output
    assert b"<svg" in (workspace / "mask.svg").read_bytes()[:400]


def test_draw_of_an_unfinished_file_says_why_and_exits_3(workspace):
    result = run("draw", "matmul_backward")
    assert result.exit_code == 3
    assert "CANNOT DRAW" in result.output and "is not written yet" in result.output
    assert not (workspace / "pictures").exists() or not any((workspace / "pictures").iterdir())


def test_draw_runs_the_learners_code_in_its_own_process(workspace):
    ex = find("feed_forward")
    path = workspace / ex.file
    path.write_text(path.read_text().replace("    raise NotImplementedError",
                                             "    raise SystemExit(3)", 1))
    result = run("draw", ex.number)
    assert result.exit_code == 3 and "ended the drawing early (exit status 3): it calls exit()" \
        in result.output


@pytest.mark.parametrize("args, words", [
    (["draw", "one_hot"], ["has no picture", "these have:", "scalar_engine"]),
    (["draw", "causal_mask", "--out", "mask.txt"], ["ending in .png or .svg"]),
    (["draw", "causal_mask", "--out", "no/such/dir/mask.png"], ["does not exist"]),
    (["draw", "causal_mask", "--out", "."], ["is a directory"]),
    # A file where its folder would be was said to be a folder that does not exist.
    (["draw", "causal_mask", "--out", "notes.txt/mask.png"],
     ["notes.txt' is a file, not a directory", "give a path in a directory that exists"]),
])
def test_draw_input_errors(workspace, args, words):
    (workspace / "notes.txt").write_text("the learner's own")
    result = run(*args)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith("Error: ") and "\n" not in line
    for word in words:
        assert word in line, line


def test_draw_needs_a_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("draw", "scalar_engine")
    assert result.exit_code == 2 and "no exercise workspace" in result.stderr



# -- the course's page shows a picture a chapter ----------------------------------------------

def test_the_course_page_shows_one_picture_a_chapter_drawn_by_the_docs_script():
    import importlib.util
    import re
    docs = Path(__file__).resolve().parent.parent / "docs"
    spec = importlib.util.spec_from_file_location("make_course_pictures",
                                                  docs / "make_course_pictures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    expected = [script.picture_path(find(slug)) for slug in script.CHAPTER_PICTURES]
    assert [find(slug).chapter for slug in script.CHAPTER_PICTURES] == \
        list(range(1, len(CHAPTERS) + 1))
    page = (docs / "course.md").read_text()
    shown = [docs / link for link in re.findall(r"!\[[^\]]*\]\((images/course/[^)]+)\)", page)]
    assert shown == expected
    for path in shown:
        assert path.read_bytes().startswith(PNG), path
    for chapter, path in enumerate(shown, start=1):              # under its own chapter
        assert page.index(f"## Chapter {chapter}. ") < page.index(path.name)


def test_a_result_the_drawer_cannot_use_is_reported_not_raised(tmp_path):
    ex = find("bpe_train")
    solved = write_solved(ex, tmp_path / "bpe_train.py", solution_text(ex).replace(
        "    return merges", "    return [('a', 'b')]"))
    message = draw(ex, solved, tmp_path / "picture.png")
    assert message.startswith("the picture could not use what your code returned:")
    assert "ValueError" in message and "tinyformer exercises check bpe_train" in message



@pytest.mark.parametrize("returned, says", [
    ("None", "returned None. Did you forget a `return`?"),
    ("out[:, :3]", "returned an array of shape (4, 3); the picture needs (4, 4)."),
])
def test_a_result_of_the_wrong_shape_or_none_is_said_before_drawing(tmp_path, returned, says):
    ex = find("table_lookup")
    solved = write_solved(ex, tmp_path / "table_lookup.py", solution_text(ex) + (
        f"\n\ndef one_hot(ids, vocab_size):\n    out = np.eye(vocab_size)[ids]\n"
        f"    return {returned}\n"))
    message = draw(ex, solved, tmp_path / "picture.png")
    assert message.startswith("one_hot(ids=[2, 0, 3, 2], vocab_size=4) " + says), message
    assert not (tmp_path / "picture.png").exists()


def test_a_mask_of_none_is_said_not_drawn_as_nan(tmp_path):
    """numpy makes None a mask of NaN: the picture was drawn, of nothing, and said so."""
    ex = find("attention_masks")
    solved = write_solved(ex, tmp_path / "attention_masks.py", solution_text(ex).replace(
        "    return bert_mask(src_ids, pad_id)", "    bert_mask(src_ids, pad_id)"))
    message = draw(ex, solved, tmp_path / "picture.png")
    assert message == ("cross_mask(src_ids=[[4, 5, 6, 0, 0]], tgt_ids=[[7, 8, 9, 0]], "
                       "pad_id=0) returned None. Did you forget a `return`?"), message
    assert not (tmp_path / "picture.png").exists()


# -- what a heatmap writes where, and in which colours -----------------------------------------

def test_a_heatmap_writes_each_number_in_its_own_cell_and_labels_rows_and_columns():
    from tinyformer.exercises.pictures import Panel, _figure
    values = np.array([[0.0, 0.25, 0.5], [0.75, 1.0, -0.5]])
    figure = _figure(Picture("t", [Panel("p", values=values, rows=["r0", "r1"],
                                         cols=["c0", "c1", "c2"], numbers=True)]))
    ax = figure.axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}                                   # (row, column): text
    assert cells == {(0, 0): "0", (0, 1): "0.25", (0, 2): "0.5", (1, 0): "0.75",
                     (1, 1): "1", (1, 2): "-0.5"}
    assert [t.get_text() for t in ax.get_yticklabels()] == ["r0", "r1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c0", "c1", "c2"]


def test_a_heatmap_writes_dark_cells_in_white_and_centres_a_signed_table_on_zero():
    from tinyformer.exercises.pictures import Panel, _figure

    def heatmap(values):
        figure = _figure(Picture("t", [Panel("p", values=np.array(values), numbers=True)]))
        return figure.axes[0]
    ax = heatmap([[0.1, 0.9]])
    assert [t.get_color() for t in ax.texts] == ["black", "white"]
    assert ax.images[0].get_clim() == (0.0, 1.0)
    signed = heatmap([[-0.5, 2.0]])          # white is 0: the colours of -x and x mirror
    assert signed.images[0].get_clim() == (-2.0, 2.0)
    # as dark a blue as the 2.0 is a red, so written in white as well
    assert [t.get_color() for t in heatmap([[-2.0, 0.5, 2.0]]).texts] == [
        "white", "black", "white"]
    assert signed.images[0].get_cmap().name == "RdBu_r"


def test_bars_write_each_bars_own_value_above_it(tmp_path):
    from tinyformer.exercises.pictures import _figure
    picture = picture_of("temperature_top_k", tmp_path)
    figure = _figure(picture)
    for ax, p in zip(figure.axes, picture.panels):
        assert [bar.get_height() for bar in ax.patches] == list(p.values)
        assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in p.values]
    assert [p.title for p in picture.panels] == ["temperature 1.0", "temperature 0.5",
                                                 "temperature 2.0", "temperature 1.0, top_k 3"]


def test_a_wrong_gradient_shows_the_learners_numbers_and_by_how_much_they_differ(tmp_path):
    # Not divided by N = 2: the learner's p - onehot(target), twice tinyautograd's.
    wrong = picture_of("softmax_cross_entropy_backward", tmp_path,
                       ("return d / n * grad", "return d * grad")).dot.source
    node = next(line for line in wrong.splitlines() if "grad_logits [" in line)
    assert " -0.300   0.200   0.100" in node and "  0.250   0.250  -0.500" in node
    assert "differs from tinyautograd by up to 0.25" in node
    # Both gradients the same: b's is (2, 3), a's shape, where (3, 2) is due.
    shaped = picture_of("matmul_backward", tmp_path,
                        ("return grad_a, grad_b", "return grad_a, grad_a")).dot.source
    node = next(line for line in shaped.splitlines() if "grad_b [" in line)
    assert "d loss / d b  (2, 3)" in node and "shape should be (3, 2)" in node


def test_layers_are_counted_from_one_and_positions_labelled_position_then_token(tmp_path):
    picture = picture_of("induction_head", tmp_path)
    assert [p.title for p in picture.panels] == ["layer 1", "layer 2"]
    ids = [0, 3, 1, 4, 5, 3, 1, 4, 5]
    assert picture.panels[0].rows == [f"{t}:{i}" for t, i in enumerate(ids)]
    # One prediction a position; after the repeat, the token that came after its first copy.
    predicted = picture.caption.split("Predictions: ")[1].split()
    assert len(predicted) == len(ids) and predicted[5:] == ["1", "4", "5", "3"]
    assert [p.title for p in picture_of("attend_to_first", tmp_path).panels] == ["the head"]
    scored = picture_of("induction_scores", tmp_path).panels
    assert [p.title.split(":")[0] for p in scored] == ["layer 1", "layer 2"]


def test_the_scalar_engine_graph_fills_the_inputs_apart_from_what_they_compute(tmp_path):
    lines = picture_of("scalar_engine", tmp_path).dot.source.splitlines()
    filled = {line.split('"')[1].split(" |")[0]: line.split("fillcolor=")[1].split()[0]
              for line in lines if "shape=record" in line}
    leaves = {"x1", "x2", "w1", "w2", "b"}
    assert {name for name, colour in filled.items() if colour == '"#cfe2f3"'} == leaves
    assert set(filled) - leaves == {"x1*w1", "x2*w2", "x1*w1 + x2*w2", "n", "o"}


def test_a_heatmap_writes_nan_and_infinities_as_they_are_and_colours_by_the_rest():
    import io
    from tinyformer.exercises.pictures import Panel, _figure
    values = np.array([[-np.inf, 0.25], [np.nan, 1e-12], [2.0, np.inf]])
    figure = _figure(Picture("t", [Panel("p", values=values, numbers=True)]))
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.texts] == ["-inf", "0.25", "nan", "0", "2", "inf"]
    assert ax.images[0].get_clim() == (0.0, 2.0)
    figure.savefig(io.BytesIO(), format="png")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")   # the learner's
def test_an_attention_row_with_every_key_masked_is_drawn_with_its_nans(tmp_path):
    """Masking the allowed keys with -inf instead of the blocked ones leaves the last query
    none to read: its weights are NaN, and the picture shows them rather than failing."""
    ex = find("scaled_dot_product")
    solved = write_solved(ex, tmp_path / "attention.py", solution_text(ex).replace(
        "scores.masked_fill(~mask, -1e9)", "scores.masked_fill(mask, float('-inf'))"))
    assert draw(ex, solved, tmp_path / "picture.png") is None
    assert (tmp_path / "picture.png").read_bytes().startswith(PNG)
    masked = panel(DRAWERS["scaled_dot_product"].draw(load_learner_file(solved)), "causal")
    assert np.isnan(masked.values[-1]).all()
