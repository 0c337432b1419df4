"""The summary's counts against PyTorch's: the parameters of the same model in transformers,
and the FLOPs that torch.utils.flop_counter.FlopCounterMode counts on its forward pass (matrix
products, attention's two included), for GPT-2, a Llama-style block (grouped-query attention,
SwiGLU, no biases, an untied head) and BERT. Random models built here, no network."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import (BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel,
                          LlamaConfig, LlamaForCausalLM)

from tinyformer.bert import BERT
from tinyformer.gpt import GPT
from tinyformer.summary import flops_per_token

VOCAB, T, D_MODEL, N_LAYER, N_HEAD = 101, 16, 32, 2, 4


# Attention written out as two matmuls ("eager"): the fused scaled_dot_product_attention that
# transformers calls by default runs on the CPU in a form whose products the counter misses.
EAGER = {"attn_implementation": "eager"}


def torch_forward_flops_per_token(model):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros((1, T), dtype=torch.long))
    return counter.get_total_flops() / T


def gpt2():
    config = GPT2Config(vocab_size=VOCAB, n_positions=T, n_embd=D_MODEL, n_layer=N_LAYER,
                        n_head=N_HEAD, bos_token_id=0, eos_token_id=0, **EAGER)
    ours = GPT(VOCAB, context=T, n_layer=N_LAYER, n_head=N_HEAD, d_model=D_MODEL)
    return GPT2LMHeadModel(config), ours, 0


def llama():
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=D_MODEL, intermediate_size=88,
                         num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD,
                         num_key_value_heads=2, max_position_embeddings=T,
                         tie_word_embeddings=False, **EAGER)
    ours = GPT(VOCAB, context=T, n_layer=N_LAYER, n_head=N_HEAD, d_model=D_MODEL, n_kv_head=2,
               activation="swiglu", d_ff=88, bias=False, tie_weights=False,
               normalization="rmsnorm", positions="rope")
    return LlamaForCausalLM(config), ours, 0


def bert():
    config = BertConfig(vocab_size=VOCAB, hidden_size=D_MODEL, num_hidden_layers=N_LAYER,
                        num_attention_heads=N_HEAD, intermediate_size=4 * D_MODEL,
                        max_position_embeddings=T, type_vocab_size=2, **EAGER)
    ours = BERT(VOCAB, context=T, n_layer=N_LAYER, n_head=N_HEAD, d_model=D_MODEL)
    return BertForMaskedLM(config), ours, 2 * D_MODEL     # ours has no segment embeddings


@pytest.mark.parametrize("build", [gpt2, llama, bert])
def test_parameters_and_forward_flops_equal_pytorchs(build):
    torch.manual_seed(0)
    theirs, ours, segment_table = build()
    theirs.eval()
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters()) - segment_table
    assert flops_per_token(ours)["forward"] == torch_forward_flops_per_token(theirs)


def test_gpt2_smalls_parameters_by_the_formula():
    # GPT-2 small: 124,439,808 with the head tied. Built at its width it takes seconds; its
    # count is the formula's, checked here at a small width against the model built.
    def gpt2_parameters(vocab, context, n_layer, d):
        per_layer = 4 * d * d + 4 * d + 8 * d * d + 5 * d + 4 * d     # attn, ffn, 2 norms
        return vocab * d + context * d + n_layer * per_layer + 2 * d  # + the final norm
    assert gpt2_parameters(50257, 1024, 12, 768) == 124_439_808
    ours = GPT(VOCAB, context=T, n_layer=N_LAYER, n_head=N_HEAD, d_model=D_MODEL)
    assert ours.num_parameters() == gpt2_parameters(VOCAB, T, N_LAYER, D_MODEL)
