"""BERT: shapes and options, padding, parity with a BERT written in torch, the 80/10/10
masking recipe, gradcheck, and learning."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyautograd as ta
import tinyautograd.functional as F
from precision import to_float64
from torch_pieces import assert_equals_torchs, torch_pieces
from tinyautograd import optim
from tinyformer.bert import BERT, IGNORE, TokenMasker, mask_tokens

PAD, MASK = 0, 1


def tiny_bert(**options):
    ta.manual_seed(0)
    return BERT(**{**dict(vocab_size=9, context=8, n_layer=2, n_head=2, d_model=8), **options})


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "none"])
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_logits_and_a_gradient_for_every_parameter(positions, norm):
    model = tiny_bert(positions=positions, norm=norm)
    idx = np.random.default_rng(0).integers(2, 9, (3, 6))
    logits = model(idx)
    assert logits.shape == (3, 6, 9)
    F.cross_entropy(logits, idx).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.abs(p.grad).sum() > 0, name


def test_without_a_pad_id_token_0_is_read_like_any_other():
    # pad_id was 0 by default: a tokenizer with no padding (CharTokenizer("ab"): "a" is 0)
    # had every "a" hidden from attention. As a Hugging Face BERT given no attention mask,
    # every token is read now; a pad_id hides padding.
    from tinyformer.tokenizers import CharTokenizer
    idx = np.array([CharTokenizer("ab").encode("abbaab")])
    for options, read in (({}, True), ({"pad_id": None}, True), ({"pad_id": PAD}, False)):
        model = tiny_bert(vocab_size=2, **options)          # {}: the default, None
        before = model(idx).data
        model.embed.tok.weight.data[0] = np.random.default_rng(0).standard_normal(8)
        after = model(idx).data
        b = idx[0] == 1                                     # the "b"s, seeing the "a"s or not
        unchanged = np.allclose(after[0, b, 1], before[0, b, 1], rtol=1e-5, atol=1e-6)
        assert unchanged != read, f"BERT({options})"
    with pytest.raises(ValueError, match="BERT: pad_id must be a whole number >= 0"):
        tiny_bert(pad_id=1.5)


def test_a_pad_id_outside_the_vocabulary_is_refused_as_torch_refuses_its_padding_idx():
    # No token could equal it, so nothing was hidden, without a word.
    with pytest.raises(ValueError, match=r"^BERT: pad_id 11 is not a token id: the vocabulary "
                                         r"has ids 0 to 10$"):
        BERT(11, 8, n_layer=1, n_head=2, d_model=8, pad_id=11)


@pytest.mark.parametrize("pad_id, advice", [
    (PAD, r"pad the shorter rows at the end with the model's pad_id 0$"),
    (None, r"this model has no pad_id, so it would read padding as tokens: build it with "
           r"pad_id=<your tokenizer's padding id>, or give each row alone$")])
def test_rows_of_different_lengths_are_told_how_this_model_takes_padding(pad_id, advice):
    # "pad the shorter rows" alone, to a model without a pad_id, led to padding read as text.
    with pytest.raises(TypeError, match=r"^tokens must be a \(B, T\) integer array with rows "
                       r"of one length; " + advice):
        tiny_bert(pad_id=pad_id)([[3, 4], [3, 4, 5]])


def test_padding_never_changes_the_real_positions():
    model = tiny_bert(pad_id=PAD)
    idx = np.random.default_rng(0).integers(2, 9, (2, 8))
    idx[0, 5:] = PAD
    idx[1, 3:] = PAD
    before = model(idx).data
    real = idx != PAD
    model.embed.tok.weight.data[PAD] += 5.0                        # what a pad token looks like
    changed = model(idx).data
    # every logit at a real position is unchanged, except the one for the PAD class itself,
    # which the tied head reads from the very row that was changed
    np.testing.assert_allclose(changed[real][:, PAD + 1:], before[real][:, PAD + 1:],
                               rtol=1e-5, atol=1e-6)
    model.embed.tok.weight.data[PAD] -= 5.0
    longer = model(idx[:, :5]).data                          # fewer pads on the first row
    np.testing.assert_allclose(longer[0, :5], before[0, :5], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(longer[1, :3], before[1, :3], rtol=1e-5, atol=1e-6)


def torch_bert(model, idx):
    """The same BERT written directly in torch, reading our parameters (float64): post-norm,
    learned positions, a norm on the embeddings, padding hidden from every query, and the MLM
    head LayerNorm(gelu(x W + b)) E^T + c."""
    params, embedded, linear, norm, heads = torch_pieces(model, idx)
    B, T = idx.shape
    real = torch.as_tensor(idx != model.config["pad_id"])[:, None, None, :]   # (B, 1, 1, T) keys
    x = norm("embed.norm", embedded)
    for i in range(model.config["n_layer"]):
        b = f"encoder.layers.{i}"
        q, k, v = (heads(linear(f"{b}.attn.{n}", x)) for n in "qkv")
        a = TF.scaled_dot_product_attention(q, k, v, attn_mask=real)
        x = norm(f"{b}.attn_norm", x + linear(f"{b}.attn.out", a.transpose(1, 2).reshape(B, T, -1)))
        h = TF.gelu(linear(f"{b}.ffn.fc1", x), approximate="tanh")
        x = norm(f"{b}.ffn_norm", x + linear(f"{b}.ffn.fc2", h))
    h = norm("head.norm", TF.gelu(linear("head.dense", x), approximate="tanh"))
    logits = h @ params["embed.tok.weight"].T + params["head.bias"]
    return logits, params


def test_equals_a_bert_written_in_torch_outputs_and_every_gradient():
    model = to_float64(tiny_bert(pad_id=PAD))
    for p in model.parameters():            # norms off 1 and biases off 0, so each one counts
        p.data += np.random.default_rng(1).normal(0, 0.1, p.shape)
    idx = np.random.default_rng(0).integers(2, 9, (3, 6))
    idx[0, 4:] = PAD
    targets = np.random.default_rng(2).integers(0, 9, (3, 6))
    assert_equals_torchs(model, idx, targets, torch_bert)


def test_the_masking_recipe_80_10_10():
    rng = np.random.default_rng(0)
    idx = rng.integers(2, 50, (1000, 100))          # about 13,500 chosen tokens
    idx[:, -10:] = PAD
    inputs, targets = mask_tokens(idx, MASK, 50, special_ids=(PAD,), rate=0.15, rng=rng)
    chosen = targets != IGNORE
    assert not chosen[:, -10:].any()                         # padding is never chosen
    assert abs(chosen[:, :-10].mean() - 0.15) < 0.005
    np.testing.assert_array_equal(targets[chosen], idx[chosen])
    as_mask = (inputs[chosen] == MASK).mean()
    unchanged = (inputs[chosen] == idx[chosen]).mean()
    # tolerances of 4 standard deviations of a proportion over ~13,500 draws
    # A swap draws one of the 48 ordinary ids, never MASK (nor PAD): only the 80% read MASK.
    assert abs(as_mask - 0.8) < 0.015
    assert abs(unchanged - (0.1 + 0.1 / 48)) < 0.011         # kept, or swapped for itself
    np.testing.assert_array_equal(inputs[~chosen], idx[~chosen])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_unsigned_ids_give_targets_that_the_loss_ignores_where_nothing_was_chosen(dtype):
    # IGNORE wrapped to 255 (or 65535) in idx's type: with a byte-level vocabulary of 256, the
    # loss then counted every unchosen position as a token 255 to guess.
    ta.manual_seed(0)
    model = BERT(vocab_size=256, context=8, n_layer=1, n_head=2, d_model=8)
    idx = np.random.default_rng(0).integers(2, 256, (2, 8)).astype(dtype)
    inputs, targets = mask_tokens(idx, MASK, 256, (PAD, MASK), rng=np.random.default_rng(0))
    chosen = targets != IGNORE
    assert inputs.dtype == dtype and targets.dtype == np.int64 and 0 < chosen.sum() < idx.size
    np.testing.assert_array_equal(targets[chosen], idx[chosen])
    logits = model(inputs)
    expected = F.cross_entropy(logits[chosen], idx[chosen].astype(np.int64))
    assert F.cross_entropy(logits, targets, ignore_index=IGNORE).item() == pytest.approx(
        expected.item())


def test_ids_put_in_that_idx_type_cannot_hold_widen_the_inputs_type():
    # Byte-level text read as uint8 (np.fromfile), its <pad> and <mask> at 256 and 257: masking
    # failed with "Python integer 257 out of bounds for uint8".
    pad, mask = 256, 257
    idx = np.random.default_rng(0).integers(0, 256, (4, 64)).astype(np.uint8)
    inputs, targets = mask_tokens(idx, mask, 258, (pad, mask), rate=0.5,
                                  rng=np.random.default_rng(0))
    chosen = targets != IGNORE
    assert inputs.dtype == np.uint16 and (inputs[chosen] == mask).any()
    np.testing.assert_array_equal(targets[chosen], idx[chosen])
    np.testing.assert_array_equal(inputs[~chosen], idx[~chosen])
    # a type that holds them is kept, signed too
    small = mask_tokens((idx % 90).astype(np.int8), 89, 90, rng=np.random.default_rng(0))[0]
    assert small.dtype == np.int8
    # to its last id: int8 holds a <mask> of 127, the last of a vocabulary of 128
    full = mask_tokens((idx % 127).astype(np.int8), 127, 128, rng=np.random.default_rng(0))[0]
    assert full.dtype == np.int8 and (full == 127).any()


@pytest.mark.parametrize("kwargs, error, message", [
    # nan compared False with every draw and hid nothing, without a word
    (dict(rate=float("nan")), ValueError, r"rate must be a finite number in \[0, 1\], got nan"),
    (dict(rate=1.5), ValueError, r"rate must be a finite number in \[0, 1\], got 1.5"),
    (dict(rate=-0.1), ValueError, r"rate must be a finite number in \[0, 1\], got -0.1"),
    # these failed deep in numpy
    (dict(mask_id=-1), ValueError, r"mask_id must be a token id in \[0, 11\), got -1"),
    (dict(mask_id=11), ValueError, r"mask_id must be a token id in \[0, 11\), got 11"),
    (dict(special_ids=3), TypeError, r"special_ids must be a list of token ids, e.g. \[0\], "
                                     r"got int"),
    (dict(special_ids=[0.5]), ValueError, r"special_ids must be token ids \(whole numbers "
                                          r">= 0\), got 0.5"),
    (dict(idx=[[1.5, 2.0]]), TypeError, r"idx must be integer token ids, got float64"),
    (dict(idx=[[3, 11]]), ValueError, r"idx holds id 11, outside the vocabulary \[0, 11\)"),
    # a seed failed at the first draw; 0, being false, was read as None (the engine's draws)
    (dict(rng=7), TypeError, r"rng must be a numpy Generator, as np.random.default_rng\(seed\) "
                             r"makes, or None for the engine's seeded one, got 7"),
    (dict(rng=0), TypeError, r"rng must be a numpy Generator, .* got 0"),
    # an IndexError from numpy's indexing, and a 0.5 silently read as 0 (no word)
    (dict(in_word=[1] * 5), ValueError, r"in_word must hold one value per token id, shape "
                                        r"\(11,\), got shape \(5,\)"),
    (dict(in_word=[0.5] * 11), ValueError, r"in_word must hold 0, CONTINUES \(1\) or BEGINS "
                                           r"\(2\) for each token id, or booleans, got \[0.5\]"),
])
def test_mask_tokens_refuses_bad_arguments_in_one_line(kwargs, error, message):
    args = {**dict(idx=[[1, 2, 3, 4, 5, 6, 7, 8]], mask_id=10, vocab_size=11,
                   rng=np.random.default_rng(0)), **kwargs}
    with pytest.raises(error, match=f"^mask_tokens: {message}$"):
        mask_tokens(**args)


def test_a_token_masker_checks_its_word_table_once_and_masks_as_mask_tokens_does():
    # mask_tokens checked its whole-vocabulary in_word table at every batch of a training run:
    # a TokenMasker, made once, checks it when made, then masks each batch alike.
    with pytest.raises(ValueError, match=r"^mask_tokens: in_word must hold 0, CONTINUES"):
        TokenMasker(10, 11, in_word=[0.5] * 11)
    in_word = np.arange(11) % 3
    masker = TokenMasker(10, 11, special_ids=[0], rate=0.5, in_word=in_word)
    in_word[:] = 7                                  # the masker keeps the table it checked
    idx = np.random.default_rng(0).integers(0, 10, (4, 9))
    for seed in range(3):
        expected = mask_tokens(idx, 10, 11, [0], rate=0.5, rng=np.random.default_rng(seed),
                               in_word=np.arange(11) % 3)
        for got, want in zip(masker(idx, np.random.default_rng(seed)), expected):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=r"^mask_tokens: idx holds id 11, outside"):
        masker([[3, 11]])                           # a batch's ids, checked at every call


@pytest.mark.parametrize("method", ["generate", "start_decoding"])
def test_generate_on_bert_says_it_fills_in_masks_instead(method):
    # A user who comes from GPT got "'BERT' object has no attribute 'generate'" and no more.
    model = tiny_bert()
    with pytest.raises(AttributeError, match=rf"^'BERT' object has no attribute '{method}': "
                                             r"BERT does not write left to right.*<mask>.*"
                                             r"likeliest_ordinary.*tinyformer generate"):
        getattr(model, method)
    assert not hasattr(model, "generate")           # a check for a model that writes holds
    with pytest.raises(AttributeError, match=r"^'BERT' object has no attribute 'genrate'$"):
        _ = model.genrate


def test_gradcheck_over_every_parameter_of_a_tiny_bert():
    ta.manual_seed(1)
    model = to_float64(BERT(vocab_size=5, context=4, n_layer=1, n_head=2, d_model=4))
    idx = np.array([[2, 3, 4, 0], [4, 2, 0, 0]])
    targets = np.array([[3, IGNORE, 2, IGNORE], [IGNORE, 4, IGNORE, IGNORE]])
    assert ta.gradcheck(lambda *_: F.cross_entropy(model(idx), targets, ignore_index=IGNORE),
                        *model.parameters())


def test_bert_learns_to_fill_in_masked_tokens_well_above_chance(one_blas_thread):
    vocab = 12                                     # PAD, MASK and ten ordinary tokens
    rng = np.random.default_rng(0)

    def counting_runs(n):                          # s, s+1, s+2, ... (mod 10), shifted past
        start = rng.integers(0, vocab - 2, (n, 1))  # the special tokens
        return (start + np.arange(12)) % (vocab - 2) + 2

    ta.manual_seed(0)
    model = BERT(vocab, context=12, n_layer=2, n_head=2, d_model=32)
    optimizer = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(400):
        inputs, targets = mask_tokens(counting_runs(32), MASK, vocab, (PAD, MASK), rng=rng)
        loss = F.cross_entropy(model(inputs), targets, ignore_index=IGNORE)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    inputs, targets = mask_tokens(counting_runs(500), MASK, vocab, (PAD, MASK),
                                  rng=np.random.default_rng(9))
    chosen = targets != IGNORE
    accuracy = (model(inputs).data.argmax(-1)[chosen] == targets[chosen]).mean()
    assert accuracy > 0.8, accuracy                # chance is 0.1


def test_an_untied_head_has_an_output_weight_of_its_own_that_a_checkpoint_keeps(tmp_path):
    from tinyformer.checkpoint import load_model
    from tinyformer.rundir import save_checkpoint
    from tinyformer.tokenizers import CharTokenizer

    tied, untied = tiny_bert(), tiny_bert(tie_weights=False)
    assert tied.config["tie_weights"] is True and untied.config["tie_weights"] is False
    names = [{name for name, _ in model.named_parameters()} for model in (tied, untied)]
    assert names[1] - names[0] == {"head.out.weight"}
    assert untied.head.out.weight.shape == (8, 9)                  # (d_model, vocab)
    idx = np.random.default_rng(0).integers(2, 8, (2, 6))          # never token 8
    logits = [model(idx).data for model in (tied, untied)]
    # Not a constant added to the row: the head reads a layer-normed stream, whose mean is 0
    # (the norm's bias is 0 at first), so a constant moved token 8's logits by rounding alone,
    # which told them apart on some processors only.
    for model in (tied, untied):
        model.embed.tok.weight.data[8] += np.linspace(-5.0, 5.0, 8)
    # Tied, the head reads the changed row as token 8's output weight; untied, nothing does.
    assert not np.allclose(tied(idx).data[..., 8], logits[0][..., 8], rtol=0.01, atol=0.01)
    np.testing.assert_array_equal(untied(idx).data, logits[1])
    F.cross_entropy(untied(idx), idx).backward()
    for name, p in untied.named_parameters():
        assert p.grad is not None and np.abs(p.grad).sum() > 0, name
    # The option is in the config a checkpoint keeps: it loads back as the same model.
    CharTokenizer("abcdefghi").save(tmp_path / "tokenizer.json")
    save_checkpoint(tmp_path, {"model": "bert", "model_config": untied.config, "step": 1},
                    {name: p.data for name, p in untied.named_parameters()}, {})
    loaded, _, _ = load_model(tmp_path)
    assert loaded.config == untied.config
    np.testing.assert_array_equal(loaded(idx).data, untied(idx).data)
