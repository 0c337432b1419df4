"""What a model is and what it costs: its block in words (which norm, feed-forward, attention,
positions: the modern block's switches), parameters per module and per part, and FLOPs per
token, counted exactly from the graph of a forward pass and set beside the usual 6N
approximation.

The exact count walks the recorded graph and adds up the multiply-adds of every matrix
product (2 m k n FLOPs for an (m, k) @ (k, n)), attention's two products included. Elementwise
work (softmax, layer norm, GELU) is left out, as the 6N rule leaves it out: at model sizes it is
a few percent. Training costs about three forwards: the backward does two matrix products for
each one of the forward (one for the gradient of each operand).

The 6N rule (Kaplan et al. 2020): training takes about 6 N FLOPs per token, N the number of
parameters outside the embedding tables (the token table and learned positions: a lookup does
no product). It differs from the exact count in three ways:

- it misses attention's own products, which grow with T: Q K^T and P V over all T keys (the
  causal mask's half included), as the fused op computes them, 4 n_layer T d_attn per token
  for the forward, 12 n_layer T d_attn for training (d_attn = n_head d_head, d_model unless
  d_head says): the 12 L T d of PaLM's and nanoGPT's 6N + 12 L T d;
- it misses the product of a head tied to the token embedding: the matrix is the token table,
  left out of N, but the product (2 d_model vocab per token for the forward, 6 d_model vocab for
  training) is done all the same; nanoGPT keeps the tied table in its N for this reason. An
  untied head is a Linear, in N;
- it counts biases and norm weights, which do no matrix product, at 6 FLOPs each.

For GPT-2 small (124,439,808 parameters, N = 85,056,000) at T = 1024: training 854,438,400 per
token counted, 6N = 510,336,000; 12 L T d = 113,246,208 and the tied head's 231,584,256 make up
the difference, less 728,064 for the biases and norms.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import tinyautograd as ta
from tinyautograd import Tensor, nn

from .attention import Attention
from .decoding import eval_mode
from .layers import default_d_ff, modules_of_your_own
from .schema import BadInput, check_whole, counted


def _matmul_flops(node):
    """FLOPs of one graph node: matrix products only."""
    if node.fn in (ta.ops.MatMul, ta.ops.Linear):               # Linear: x @ W, then + b
        a = node.inputs[0]
        k = a.shape[-1]
        return 2 * k * node.output.size                           # each output: k multiply-adds
    if node.fn is Attention:
        q, k, v = node.inputs[:3]                                 # then a bias, if any
        scores = math.prod(q.shape[:-1]) * k.shape[-2]            # (..., T_q, T_k)
        return 2 * scores * q.shape[-1] + 2 * scores * v.shape[-1]   # Q K^T, then P V
    return 0


def _nodes(output):
    """Every node of the graph that produced `output`, each once."""
    seen, todo = set(), [output.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        todo.extend(t.grad_fn for t in node.inputs)


def forward_flops(output: Tensor) -> int:
    """Matrix-product FLOPs of the whole graph that produced `output`."""
    return sum(_matmul_flops(node) for node in _nodes(output))


def _part(path: str) -> str:
    """The part of the model a parameter or module path belongs to."""
    parts = path.split(".")
    if "attn" in parts or "cross_attn" in parts:
        return "attention"
    if "ffn" in parts:
        return "feed-forward"
    if any(part.endswith("norm") for part in parts):
        return "norms"
    if parts[0].endswith("embed"):
        return "embeddings"
    return "head"


PARTS = ("embeddings", "attention", "feed-forward", "norms", "head")


def parameters_by_part(model: nn.Module) -> dict[str, int]:
    """{part: parameters}: embeddings, attention (its projections and QK-norms), feed-forward,
    norms (every other norm: around the sub-layers, at the top, and BERT's on its embeddings
    and in its head) and head (a tied head has none of its own)."""
    counts = dict.fromkeys(PARTS, 0)
    for name, p in model.named_parameters():
        counts[_part(name)] += p.size
    return counts


def parameters_by_child(model: nn.Module) -> dict[str, int]:
    """{top-level module: parameters}, each parameter counted once, under the first module
    that reaches it (named_parameters' order), so that the counts add up to the total: BERT's
    head holds the token embedding it is tied to, which is counted under `embed`."""
    counts = {name: 0 for name, _ in model.named_children()}
    for name, p in model.named_parameters():
        child = name.split(".")[0]
        counts[child] = counts.get(child, 0) + p.size
    return counts


def _tokens(model, T):
    """T, or the model's context for None; BadInput (a ValueError) for a T that is no whole
    number from 1 (0 would count nothing, or stand for the context unasked) or is beyond the
    context, said in the summary's terms: the forward pass it counts would refuse it as a
    sequence of `tokens` (or `src`) too long, naming no argument the caller gave."""
    if T is None:
        return model.context
    check_whole("summary", 1, T=T)
    if T > model.context:
        raise BadInput(f"summary: T must be at most the model's context, {model.context}, "
                       f"got {T}")
    return int(T)


def flops_per_token(model: nn.Module, T: int | None = None) -> dict[str, float]:
    """{'forward', 'training', 'six_n', 'n'}: FLOPs per token for a sequence of T tokens (the
    model's context by default), counted on the graph (matrix products only), and 6 N for
    comparison, N ('n') the parameters outside the embedding tables: a head tied to the token
    embedding is left out of N with its table, though its product is counted in 'forward'
    (the module's docstring says what else 6N misses). For the encoder-decoder, the source and
    the target both have T tokens, and the count is per target token."""
    T = _tokens(model, T)
    logits = _forward_graph(model, T)
    forward = forward_flops(logits) / T
    n = non_embedding_parameters(model)
    return {"forward": forward, "training": 3 * forward, "six_n": 6 * n, "n": n}


def non_embedding_parameters(model: nn.Module) -> int:
    """Kaplan et al.'s N: the parameters outside the embedding tables (token and learned
    positions; a lookup costs no FLOPs), each counted once. A head tied to the token embedding
    is that table, and left out; an untied head is counted."""
    tables = {id(p): p.size for module in model.modules() if isinstance(module, nn.Embedding)
              for p in module.parameters()}
    return model.num_parameters() - sum(tables.values())


def _forward_graph(model, T):
    """The logits of a forward pass on T tokens (a whole number, _tokens's), with its graph,
    each node knowing the module that made it (nn.record_module_paths). In eval mode: dropout
    costs no FLOPs, and a model in training mode would otherwise draw its masks from the
    engine's generator, so that printing a summary changed the training that followed."""
    idx = np.zeros((1, T), dtype=np.int64)
    with ta.enable_grad(), nn.record_module_paths(model), eval_mode(model):
        return model(idx) if not hasattr(model, "encode") else model(idx, idx)


def forward_flops_by_part(model: nn.Module, T: int | None = None) -> dict[str, float]:
    """Forward FLOPs per token, by part: attention's projections, attention's own two
    products (which grow with T), the feed-forward network and the head. An attention's
    product with a weight is a projection; one of activations alone (the fused op's, or Q K^T
    written out in an attention of your own) is of the scores."""
    T = _tokens(model, T)
    counts = {"attention projections": 0, "attention scores": 0, "feed-forward": 0, "head": 0}
    for node in _nodes(_forward_graph(model, T)):
        flops = _matmul_flops(node)
        if flops:
            part = _part(node.module_path or "")
            if part == "attention":
                # (the fused op's inputs hold no weight, but a bias may be a Parameter: T5's)
                weighted = node.fn is not Attention and any(isinstance(t, nn.Parameter)
                                                            for t in node.inputs)
                part = "attention projections" if weighted else "attention scores"
            counts[part if part in counts else "head"] += flops
    return {part: flops / T for part, flops in counts.items()}


_NORMS = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm"}
_ACTIVATIONS = {"gelu": "GELU", "relu": "ReLU", "swiglu": "SwiGLU", "relu2": "squared-ReLU"}


def describe_block(model: nn.Module) -> str:
    """The model's block in words, from its config: its norms, feed-forward network,
    attention and positions, and the switches that are on (an untied head among them). For
    GPT-2's defaults: 'pre-norm LayerNorm, GELU feed-forward of width 512, multi-head
    attention (4 heads), learned positions'."""
    c = model.config
    n_head = c["n_head"]
    n_kv_head = c.get("n_kv_head") or n_head
    activation = c["activation"]
    d_ff = c.get("d_ff") or default_d_ff(c["d_model"], activation)
    norm = _NORMS[c.get("normalization", "layernorm")]
    if norm == "RMSNorm" and not c.get("rmsnorm_affine", True):
        norm += " without weights"
    # A head width of its own (Qwen3's d_head 128 at d_model 1024, 16 heads) is said: the
    # words would otherwise tell a reader heads of d_model / n_head, and other parameters.
    d_head = c.get("d_head")
    width = (f", each of width {d_head}" if d_head is not None and d_head * n_head != c["d_model"]
             else "")
    if n_kv_head == n_head:
        attention = f"multi-head attention ({counted(n_head, 'head')}{width})"
    else:
        kind = "multi-query" if n_kv_head == 1 else "grouped-query"
        attention = (f"{kind} attention ({counted(n_head, 'query head')}, "
                     f"{counted(n_kv_head, 'key-value head')}{width})")
    positions = c.get("positions") or "learned"
    words = [f"{c['norm']}-norm {norm}",
             f"{_ACTIVATIONS[activation]} feed-forward of width {d_ff}", attention]
    if c.get("qk_norm"):
        words.append("QK-norm")
    words.append(f"RoPE (theta {c.get('rope_theta', 10000.0):g})" if positions == "rope"
                 else "no positions" if positions == "none" else f"{positions} positions")
    if not c.get("bias", True):
        words.append("no biases")
    if c.get("logit_softcap") is not None:
        words.append(f"logits soft-capped at {c['logit_softcap']:g}")
    # Every model ties its head to the token embedding by default: said when it does not.
    if c.get("share_embeddings"):
        words.append("source and target embeddings shared")
    if not c.get("tie_weights", True):
        words.append("a head of its own (untied)")
    return ", ".join(words)


class Summary(str):
    """summary's text, which a notebook cell ending with `summary(model)` shows as the table it
    is (IPython's pretty printer calls `_repr_pretty_`), not as one quoted line of \\n's."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def summary(model: nn.Module, T: int | None = None) -> str:
    """The block in words, a table of parameters per top-level module and per part, and the
    FLOPs per token (in all and per part) for a sequence of T tokens (the model's context by
    default), as text. TypeError (one line) for another Module, whose block it cannot tell."""
    # The three models, and no other Module, carry the config their block is told from.
    if not isinstance(getattr(model, "config", None), dict):
        raise TypeError(f"summary takes a GPT, BERT or Transformer, got a "
                        f"{type(model).__name__}; print(model) lists any Module's parameters "
                        f"per module")
    rows = list(parameters_by_child(model).items())
    width = max(len(name) for name, _ in rows + [("total", 0)])
    # The words are the config's; a module of the user's own put in place of one it builds
    # (a layer's ffn, say) is named beside them, or the words would describe another model.
    own = modules_of_your_own(model)
    mine = f"; of your own: {', '.join(own)}" if own else ""
    lines = [f"{type(model).__name__}: {describe_block(model)}{mine}", ""]
    lines.append(f"{'module':<{width}}  {'parameters':>12}")
    lines += [f"{name:<{width}}  {count:>12,}" for name, count in rows]
    lines.append(f"{'total':<{width}}  {model.num_parameters():>12,}")
    lines.append("by part: " + ", ".join(f"{part} {count:,}"
                                         for part, count in parameters_by_part(model).items()))
    flops = flops_per_token(model, T)
    # Said, as the gap between 6N and the count is the head's product where it is tied.
    tied = " and the head tied to them" if model.config.get("tie_weights", True) else ""
    # An encoder-decoder's count is per target token and holds its encoder's work on a source
    # of as many tokens: said, or "per token" reads as the cost of any token, source or target,
    # about twice what it is.
    per = (f"target token at T={_tokens(model, T)} (source and target of T tokens each)"
           if hasattr(model, "encode") else f"token at T={_tokens(model, T)}")
    lines.append("")
    lines.append(f"FLOPs per {per}: forward {flops['forward']:,.0f}, "
                 f"training {flops['training']:,.0f} (counted on the graph); "
                 f"6N = {flops['six_n']:,.0f}, N = {flops['n']:,} parameters outside the "
                 f"embeddings{tied}")
    lines.append("forward by part: " + ", ".join(
        f"{part} {count:,.0f}" for part, count in forward_flops_by_part(model, T).items()))
    return Summary("\n".join(lines))


def summary_line(model: nn.Module) -> str:
    """A model's class, parameter count and sizes, in one line. An encoder-decoder's n_layer
    is of each stack (as torch's nn.Transformer has as many of each), said as such: '2 layers'
    read as two in all, where it has four."""
    c = model.config
    layers = counted(c["n_layer"], "layer")
    if hasattr(model, "encode"):                       # the encoder-decoder, as _forward_graph
        layers = f"{c['n_layer']:,} encoder and {counted(c['n_layer'], 'decoder layer')}"
    return (f"{type(model).__name__} with {counted(model.num_parameters(), 'parameter')} "
            f"({layers}, {counted(c['n_head'], 'head')}, "
            f"width {c['d_model']}, context {c['context']})")


# The ops of a forward pass that tinyautograd's compiled loops compute, by the name that
# tinyautograd.kernels.summary gives each: a forward graph holds them as these Functions.
_LOOPED = {ta.functional.LayerNorm: "layer norm", ta.ops.Gelu: "GELU", Attention: "softmax"}


def ops_with_loops(model: nn.Module) -> list[str]:
    """Those of the ops with compiled loops (tinyautograd.kernels.OPS) that a training step of
    `model` runs, for kernels.summary to name: the ones its forward pass records (a model with
    RMSNorm and SwiGLU has no layer norm and no GELU; BERT's head has a GELU whatever its
    blocks' activation), and Adam, the trainer's optimizer. The graph is of one token: the
    ops are the same for any length."""
    ran = {node.fn for node in _nodes(_forward_graph(model, 1))}
    return [name for op, name in _LOOPED.items() if op in ran] + ["Adam"]
