"""What a model costs: parameters per module, and FLOPs per token, counted exactly from the
graph of a forward pass and set beside the usual 6N approximation.

The exact count walks the recorded graph and adds up the multiply-adds of every matrix
product (2 m k n FLOPs for an (m, k) @ (k, n)), attention's two products included. Elementwise
work (softmax, layer norm, GELU) is left out, as the 6N rule leaves it out: at model sizes it is
a few percent. Training costs about three forwards: the backward does two matrix products for
each one of the forward (one for the gradient of each operand).

The 6N rule (Kaplan et al. 2020): training takes about 6 N FLOPs per token, N the number of
parameters outside the embeddings; what it misses is attention's own products, 2 n_layer T
d_model per token for the forward, which grow with the context T.
"""

from __future__ import annotations

import numpy as np

import tinyautograd as ta
from tinyautograd import Tensor, nn

from .attention import Attention


def _matmul_flops(node):
    """FLOPs of one graph node: matrix products only."""
    if node.fn in (ta.ops.MatMul, ta.ops.Linear):               # Linear: x @ W, then + b
        a = node.inputs[0]
        k = a.shape[-1]
        return 2 * k * node.output.size                           # each output: k multiply-adds
    if node.fn is Attention:
        q, k, v = node.inputs
        scores = np.prod(q.shape[:-1]) * k.shape[-2]              # (..., T_q, T_k)
        return 2 * scores * q.shape[-1] + 2 * scores * v.shape[-1]   # Q K^T, then P V
    return 0


def forward_flops(output: Tensor) -> int:
    """Matrix-product FLOPs of the whole graph that produced `output`."""
    total, seen, todo = 0, set(), [output.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        total += _matmul_flops(node)
        todo.extend(t.grad_fn for t in node.inputs)
    return total


def flops_per_token(model: nn.Module, T: int | None = None) -> dict[str, float]:
    """{'forward', 'training', 'six_n'}: FLOPs per token for a sequence of T tokens (the
    model's context by default), counted on the graph, and 6 N for comparison. For the
    encoder-decoder, the source and the target both have T tokens, and the count is per
    target token."""
    T = T or model.context
    idx = np.zeros((1, T), dtype=np.int64)
    with ta.enable_grad():
        logits = model(idx) if not hasattr(model, "encode") else model(idx, idx)
    forward = forward_flops(logits) / T
    # N leaves out embedding tables (token and learned positions): a lookup costs no FLOPs.
    tables = {id(p): p.size for module in model.modules() if isinstance(module, nn.Embedding)
              for p in module.parameters()}
    n = model.num_parameters() - sum(tables.values())
    return {"forward": forward, "training": 3 * forward, "six_n": 6 * n}


def summary(model: nn.Module, T: int | None = None) -> str:
    """A table of parameters per top-level module and the FLOPs per token, as text."""
    rows = [(name or type(model).__name__, module.num_parameters())
            for name, module in model.named_children()]
    width = max(len(name) for name, _ in rows + [("total", 0)])
    lines = [f"{'module':<{width}}  {'parameters':>12}"]
    lines += [f"{name:<{width}}  {count:>12,}" for name, count in rows]
    lines.append(f"{'total':<{width}}  {model.num_parameters():>12,}")
    flops = flops_per_token(model, T)
    lines.append("")
    lines.append(f"FLOPs per token at T={T or model.context}: forward {flops['forward']:,.0f}, "
                 f"training {flops['training']:,.0f} (counted on the graph); "
                 f"6N = {flops['six_n']:,.0f}")
    return "\n".join(lines)


def summary_line(model: nn.Module) -> str:
    """A model's class, parameter count and sizes, in one line."""
    c = model.config
    return (f"{type(model).__name__} with {model.num_parameters():,} parameters "
            f"({c['n_layer']} layers, {c['n_head']} heads, width {c['d_model']}, "
            f"context {c['context']})")
