"""The model summary: FLOPs counted on the graph equal the formula, and 6N beside them."""

import numpy as np
import pytest

import tinyautograd as ta
from tinyformer.attention import Attention, MultiHeadAttention, causal_mask
from tinyformer.bert import BERT
from tinyformer.gpt import GPT
from tinyformer.layers import FeedForward, modules_of_your_own
from tinyformer.schema import BadInput
from tinyformer.transformer import Transformer
from tinyformer.summary import (flops_per_token, forward_flops, forward_flops_by_part,
                                ops_with_loops, summary, summary_line)
from tinyformer.tokenizers import compression


def test_flops_counted_on_the_graph_equal_the_formula():
    ta.manual_seed(0)
    vocab, T, n_layer, d_model = 11, 8, 2, 16
    model = GPT(vocab, context=T, n_layer=n_layer, n_head=4, d_model=d_model)
    linear_weights = sum(p.size for name, p in model.named_parameters()
                         if name.startswith("decoder.layers") and name.endswith("weight")
                         and "norm" not in name)
    # per token: 2 FLOPs per weight of every Linear, the tied head (d_model x vocab), and
    # attention's Q K^T and P V over all T keys, in every layer
    expected = 2 * linear_weights + 2 * d_model * vocab + n_layer * 4 * T * d_model
    flops = flops_per_token(model)
    assert flops["forward"] == expected
    assert flops["training"] == 3 * expected
    non_embedding = model.num_parameters() - vocab * d_model - T * d_model
    assert flops["six_n"] == 6 * non_embedding


@pytest.mark.parametrize("T", [0, -1, 2.5, True])
def test_a_sequence_length_that_counts_no_tokens_is_refused(T):
    # 0 stood for the context unasked; -1 failed in numpy ("negative dimensions")
    model = GPT(11, context=8, n_layer=1, n_head=2, d_model=16)
    with pytest.raises(ValueError, match=r"summary: T must be a whole number >= 1, got"):
        flops_per_token(model, T)
    with pytest.raises(ValueError, match=r"summary: T must be a whole number >= 1, got"):
        summary(model, T)
    assert flops_per_token(model, 4)["forward"] < flops_per_token(model)["forward"]


def test_summary_lists_modules_parameters_and_flops():
    model = GPT(11, context=8, n_layer=2, n_head=4, d_model=16)
    text = summary(model)
    assert "decoder" in text and f"{model.num_parameters():,}" in text
    assert "6N = " in text and "FLOPs per token at T=8" in text


def test_an_encoder_decoders_flops_are_said_per_target_token_with_its_source_counted():
    # Its count holds the encoder's work on a source of T tokens, per token of the target:
    # "per token" alone read as the cost of any token, about twice what it is.
    T, d_model, n_layer = 8, 16, 1
    model = Transformer(11, 11, context=T, n_layer=n_layer, n_head=2, d_model=d_model)
    line = next(line for line in summary(model).splitlines() if line.startswith("FLOPs"))
    assert line.startswith(f"FLOPs per target token at T={T} (source and target of T tokens "
                           f"each): forward {flops_per_token(model)['forward']:,.0f},")
    # Per target token: the encoder's layers on the T source tokens (projections 8 d^2, Q K^T
    # and P V 4 T d, feed-forward 16 d^2), the decoder's (its cross-attention's too) and the
    # head tied to the target embedding (2 d vocab).
    encoder = n_layer * (24 * d_model ** 2 + 4 * T * d_model)
    decoder = n_layer * (32 * d_model ** 2 + 8 * T * d_model)
    assert flops_per_token(model)["forward"] == encoder + decoder + 2 * d_model * 11
    gpt = GPT(11, context=T, n_layer=n_layer, n_head=2, d_model=d_model)
    assert "FLOPs per token at T=8: forward" in summary(gpt)        # one stack: as it was


def test_a_notebook_shows_the_summary_as_its_lines_not_as_a_quoted_string():
    # IPython's pretty printer (what a cell ending with `summary(model)` shows) calls
    # _repr_pretty_(printer, cycle) where a class has one; a plain str came out as '...\n...'.
    text = summary(GPT(11, context=8, n_layer=1, n_head=2, d_model=8))

    class Printer:
        shown = ""

        def text(self, words):
            self.shown += words

    printer = Printer()
    text._repr_pretty_(printer, cycle=False)
    assert printer.shown == str(text) and printer.shown.startswith("GPT: ")


def table_rows(text):
    """{module: parameters} from a summary's table, and its total."""
    lines = text.splitlines()
    start, end = lines.index(next(line for line in lines if line.startswith("module "))), \
        next(i for i, line in enumerate(lines) if line.startswith("total "))
    rows = dict(line.rsplit(None, 1) for line in lines[start + 1:end])
    return ({name.strip(): int(count.replace(",", "")) for name, count in rows.items()},
            int(lines[end].split()[-1].replace(",", "")))


TABLE = 11 * 16                                 # the token embedding of the models below


@pytest.mark.parametrize("build, shared_by", [
    (lambda: BERT(11, context=8, n_layer=1, n_head=2, d_model=16), ("embed", "head")),
    (lambda: Transformer(11, 11, context=8, n_layer=1, n_head=2, d_model=16,
                         share_embeddings=True), ("src_embed", "tgt_embed"))])
def test_the_modules_parameters_add_up_to_the_total_each_counted_once(build, shared_by):
    # BERT's head holds the token embedding it is tied to, and the encoder-decoder's two
    # embeddings may share one: the table counted the shared parameters again in each row.
    # The table is counted under the first module that holds it, and not under the second.
    model = build()
    rows, total = table_rows(summary(model))
    assert total == model.num_parameters() == sum(rows.values())
    first, second = (getattr(model, name) for name in shared_by)
    assert rows[shared_by[0]] == first.num_parameters()
    assert rows[shared_by[1]] == second.num_parameters() - TABLE
    for name, module in model.named_children():
        if name not in shared_by:
            assert rows[name] == module.num_parameters()


@pytest.mark.parametrize("model", [ta.nn.Sequential(ta.nn.Linear(2, 3)), ta.nn.Linear(2, 3)])
def test_a_module_other_than_the_three_models_is_a_type_error_of_one_line(model):
    # It was AttributeError: 'Sequential' object has no attribute 'config'.
    with pytest.raises(TypeError, match=rf"^summary takes a GPT, BERT or Transformer, got a "
                                        rf"{type(model).__name__}; print\(model\)") as info:
        summary(model)
    assert "\n" not in str(info.value)


def test_counts_are_said_in_words_one_and_many():
    one = GPT(5, context=4, n_layer=1, n_head=1, d_model=8)
    assert "(1 layer, 1 head, width 8, context 4)" in summary_line(one)
    assert "multi-head attention (1 head)" in summary(one)
    assert "(2 layers, 4 heads, width 16, context 8)" in summary_line(
        GPT(5, context=8, n_layer=2, n_head=4, d_model=16))
    # An encoder-decoder's n_layer is of each stack: "2 layers" read as two in all.
    assert "(2 encoder and 2 decoder layers, 4 heads, width 16, context 8)" in summary_line(
        Transformer(5, 5, context=8, n_layer=2, n_head=4, d_model=16))
    assert "(1 encoder and 1 decoder layer, 1 head," in summary_line(
        Transformer(5, 5, context=8, n_layer=1, n_head=1, d_model=8))
    for n, said in [(1000, "GPT with 1,000 parameters ("), (1, "GPT with 1 parameter (")]:
        one.num_parameters = lambda n=n: n
        assert said in summary_line(one)
    assert compression("a", [7]) == ("1 token, 1 character (1 byte): 1.00 characters per "
                                     "token, 1.00 bytes per token")
    assert compression("", []) == "0 tokens, 0 characters (0 bytes)"


def test_parameters_by_part_put_each_module_in_its_part():
    from tinyformer.summary import parameters_by_part
    from tinyformer.transformer import Transformer
    model = Transformer(11, 13, context=8, n_layer=2, n_head=2, d_model=16, tie_weights=False)
    by_part = parameters_by_part(model)
    assert sum(by_part.values()) == model.num_parameters()
    modules = dict(model.named_modules())
    attention = sum(m.num_parameters() for path, m in modules.items()
                    if path.rsplit(".", 1)[-1] in ("attn", "cross_attn"))
    ffn = sum(m.num_parameters() for path, m in modules.items() if path.endswith(".ffn"))
    norms = sum(m.num_parameters() for m in modules.values() if isinstance(m, ta.nn.LayerNorm))
    tables = sum(m.num_parameters() for m in modules.values()
                 if isinstance(m, ta.nn.Embedding))
    assert by_part == {"embeddings": tables, "attention": attention, "feed-forward": ffn,
                       "norms": norms, "head": 16 * 13 + 13}


def test_forward_flops_by_part_add_up_to_the_forward_and_attention_scores_grow_with_t():
    from tinyformer.summary import forward_flops_by_part
    ta.manual_seed(0)
    T, n_layer, d_model = 8, 2, 16
    model = GPT(11, context=T, n_layer=n_layer, n_head=4, d_model=d_model)
    by_part = forward_flops_by_part(model)
    assert sum(by_part.values()) == flops_per_token(model)["forward"]
    assert by_part["attention scores"] == n_layer * 4 * T * d_model
    assert by_part["head"] == 2 * d_model * 11
    assert by_part["attention projections"] == 2 * 4 * d_model * d_model * n_layer


def test_the_block_names_its_kind_of_attention_and_reads_older_configs():
    from types import SimpleNamespace

    from tinyformer.summary import describe_block

    def said(**switches):
        return describe_block(GPT(11, context=8, n_layer=1, n_head=4, d_model=16, **switches))

    assert "multi-query attention (4 query heads, 1 key-value head)" in said(n_kv_head=1)
    assert "grouped-query attention (4 query heads, 2 key-value heads)" in said(n_kv_head=2)
    # A head width other than d_model / n_head (Qwen3's) is said; d_model / n_head given as
    # d_head is the usual one, and not.
    assert ("grouped-query attention (4 query heads, 2 key-value heads, each of width 8)"
            in said(n_kv_head=2, d_head=8))
    assert "multi-head attention (4 heads, each of width 2)," in said(d_head=2)
    assert "multi-head attention (4 heads)," in said(d_head=4)
    model = GPT(11, context=8, n_layer=1, n_head=4, d_model=16, normalization="rmsnorm")
    older = dict(model.config)
    del older["rmsnorm_affine"]                 # a config written before the switch existed
    assert describe_block(SimpleNamespace(config=older)) == describe_block(model)
    assert "pre-norm RMSNorm," in describe_block(model)
    assert "no biases" in said(bias=False) and "no biases" not in said()
    # tie_weights said too: a summary did not tell a tied head from an untied one.
    assert said(tie_weights=False).endswith(", a head of its own (untied)")
    assert "untied" not in said()
    for untied in (BERT(11, 8, n_layer=1, n_head=4, d_model=16, tie_weights=False),
                   Transformer(11, 11, 8, n_layer=1, n_head=4, d_model=16, tie_weights=False,
                               share_embeddings=True)):
        assert "a head of its own (untied)" in describe_block(untied)
    assert "source and target embeddings shared" in describe_block(untied)


def test_a_summary_of_a_model_in_training_mode_draws_no_dropout_masks():
    # Its forward ran with dropout on, drawing from the engine's generator: printing a summary
    # before training changed the losses of the training that followed.
    ta.manual_seed(0)
    model = GPT(11, context=8, n_layer=2, n_head=2, d_model=16, dropout=0.1)
    ta.manual_seed(1)
    expected = ta.random.default_generator().random()
    ta.manual_seed(1)
    summary(model)
    assert ta.random.default_generator().random() == expected
    assert all(module.training for module in model.modules())      # left in its own mode


class _ScoresWrittenOut(MultiHeadAttention):
    """An attention of one's own (as for ALiBi's biases): Q K^T and P V as engine ops."""

    def forward(self, x, context=None, mask=None, cache=None):
        B, T, _ = x.shape
        q = self._split_heads(self.q(x), self.n_head)
        k, v = self._keys_values(x, 0)
        scores = (q @ k.swapaxes(-2, -1) / self.d_head ** 0.5).masked_fill(~causal_mask(T), -1e9)
        heads = scores.softmax(axis=-1) @ v
        return self.out(heads.swapaxes(1, 2).reshape(B, T, self.n_head * self.d_head))


class _ScaleNorm(ta.nn.Module):
    def forward(self, x):
        return x / (x * x).mean(axis=-1, keepdims=True).sqrt()


def test_a_summary_names_the_modules_of_your_own_and_counts_their_attention_scores():
    # Its words are the config's: with norms and attention of one's own they would describe
    # another model. Q K^T and P V written out are the attention's scores, as the fused op's.
    T, d_model = 8, 16
    model = GPT(11, context=T, n_layer=2, n_head=4, d_model=d_model)
    plain = forward_flops_by_part(model)
    assert "of your own" not in summary(model)
    layer = model.decoder.layers[1]
    layer.attn = _ScoresWrittenOut(d_model, 4)
    layer.ffn_norm = _ScaleNorm()
    first_line = summary(model).splitlines()[0]
    assert first_line.endswith("; of your own: decoder.layers.1.attn (_ScoresWrittenOut), "
                               "decoder.layers.1.ffn_norm (_ScaleNorm)")
    assert forward_flops_by_part(model) == plain


def test_a_module_replaced_by_a_plain_function_is_of_your_own_as_none():
    # The activation is no module any more: what the config builds there is missing
    model = GPT(11, context=8, n_layer=2, n_head=4, d_model=16)
    model.decoder.layers[0].ffn.act = lambda x: x.relu()
    assert modules_of_your_own(model) == ["decoder.layers.0.ffn.act (None)"]


class _OwnFirstLayer(GPT):
    """A GPT whose first layer holds a feed-forward of its own, swapped in its __init__."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder.layers[0].ffn = _OwnFFN(self.config["d_model"], 4 * self.config["d_model"])


class _OwnFFN(FeedForward):
    pass


def test_a_module_a_subclass_swaps_in_its_own_init_is_of_your_own():
    # Compared with what GPT builds, not with what the subclass itself builds (the same)
    model = _OwnFirstLayer(11, context=8, n_layer=2, n_head=4, d_model=16)
    assert modules_of_your_own(model) == ["decoder.layers.0.ffn (_OwnFFN)"]


class _LearnedBias(MultiHeadAttention):
    """An attention of one's own with a learned bias on the scores, one a head (T5's kind),
    given to the fused op."""

    def __init__(self, d_model, n_head, T):
        super().__init__(d_model, n_head)
        self.rel = ta.nn.Parameter(np.zeros((n_head, T, T), np.float32))

    def forward(self, x, context=None, mask=None, cache=None, *, bias=None):
        return super().forward(x, context, mask, cache, bias=self.rel)     # T tokens, no cache


def test_a_bias_on_the_fused_op_leaves_its_flops_those_of_the_scores():
    # The op's bias, a Parameter, made its Q K^T and P V count as a projection (a product
    # with a weight); a bias given to the op at all made the count fail unpacking q, k, v.
    T, d_model = 8, 16
    model = GPT(11, context=T, n_layer=2, n_head=4, d_model=d_model)
    plain = forward_flops_by_part(model)
    model.decoder.layers[1].attn = _LearnedBias(d_model, 4, T)
    assert forward_flops_by_part(model) == plain


@pytest.mark.parametrize("model, ops", [
    (lambda: GPT(11, 8, n_layer=1, n_head=2, d_model=8), ["layer norm", "GELU", "softmax"]),
    (lambda: GPT(11, 8, n_layer=1, n_head=2, d_model=8, normalization="rmsnorm",
                 activation="swiglu"), ["softmax"]),
    # BERT's head has a GELU of its own, whatever its blocks' activation.
    (lambda: BERT(11, 8, n_layer=1, n_head=2, d_model=8, normalization="rmsnorm",
                  activation="swiglu"), ["GELU", "softmax"]),
    (lambda: Transformer(11, 11, context=8, n_layer=1, n_head=2, d_model=8),   # ReLU's
     ["layer norm", "softmax"]),
])
def test_the_ops_with_loops_are_those_the_model_runs(model, ops):
    # The engine line of every run named layer norm and GELU, a modern block's too.
    assert ops_with_loops(model()) == [*ops, "Adam"]
    assert ta.kernels.summary(["softmax", "Adam"]).startswith("softmax and Adam run ")
    assert ta.kernels.summary(["Adam"]).startswith("Adam runs ")


@pytest.mark.parametrize("build", [
    lambda: GPT(11, context=8, n_layer=1, n_head=2, d_model=16, positions="rope"),
    lambda: Transformer(11, 11, context=8, n_layer=1, n_head=2, d_model=16),
])
def test_a_sequence_longer_than_the_context_is_refused_in_the_summarys_terms(build):
    # The forward pass refused it as "tokens: sequence of 9 tokens ..." ("src: ..." for the
    # encoder-decoder): no argument the caller of flops_per_token gave.
    model = build()
    for count in (flops_per_token, forward_flops_by_part, summary):
        with pytest.raises(BadInput, match=r"^summary: T must be at most the model's "
                                           r"context, 8, got 9$"):
            count(model, 9)
    assert flops_per_token(model, 8) == flops_per_token(model)


def test_the_fused_attention_counts_each_of_its_two_products_by_its_own_width():
    # Q K^T costs 2 T_q T_k d_k, P V 2 T_q T_k d_v: values wider than the queries and keys (an
    # attention of your own) are counted at their own width.
    q, k = (ta.Tensor(np.ones((1, 2, 3, 4)), requires_grad=True) for _ in range(2))
    v = ta.Tensor(np.ones((1, 2, 3, 6)), requires_grad=True)                   # (B, H, T, d_v)
    with ta.enable_grad():
        out = Attention.apply(q, k, v)
    assert forward_flops(out) == 2 * (2 * 3 * 3) * 4 + 2 * (2 * 3 * 3) * 6


@pytest.mark.parametrize("tie_weights", [True, False])
def test_6n_differs_from_the_count_by_what_the_docstring_says_and_the_summary_names_n(
        tie_weights):
    # The module docstring: the training count is 6N plus attention's products (12 L T
    # d_attn) plus a tied head's product (6 d_model vocab), less 6 per bias and norm weight.
    vocab, T, n_layer, d_model, n_head, d_head = 13, 8, 2, 16, 2, 4      # d_attn = 8
    model = GPT(vocab, context=T, n_layer=n_layer, n_head=n_head, d_model=d_model,
                d_head=d_head, tie_weights=tie_weights)
    flops = flops_per_token(model)
    no_products = sum(p.size for p in model.parameters() if p.ndim == 1)   # biases and norms
    tied_head = 6 * d_model * vocab if tie_weights else 0
    assert flops["training"] == (flops["six_n"] + 12 * n_layer * T * n_head * d_head
                                 + tied_head - 6 * no_products)
    assert flops["six_n"] == 6 * flops["n"]
    tables = vocab * d_model + T * d_model                 # token and learned positions
    assert flops["n"] == model.num_parameters() - tables
    # The summary says what its N is: without it, a tied head's product made the count and 6N
    # differ by more than attention's products with nothing to say why.
    said = (f"6N = {flops['six_n']:,}, N = {flops['n']:,} parameters outside the embeddings"
            + (" and the head tied to them" if tie_weights else "") + "\n")
    assert said in summary(model)


def test_the_counts_are_python_numbers_as_hinted():
    """forward_flops is hinted int and its attention's count was numpy's int64 (np.prod of a
    shape): json.dumps refused it, and `forward_flops_by_part`'s "attention scores" was a
    numpy float64 beside the other parts' Python floats."""
    import json
    model = GPT(11, context=8, n_layer=1, n_head=2, d_model=16)
    idx = np.zeros((1, 8), dtype=np.int64)
    assert type(forward_flops(model(idx))) is int
    assert {type(v) for v in forward_flops_by_part(model).values()} == {float}
    assert json.loads(json.dumps(forward_flops_by_part(model))) == forward_flops_by_part(model)
