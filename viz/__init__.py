"""viz: graphviz pictures of computation and backprop graphs, attention maps and loss curves.

Reads graphs through tinyautograd's public API (`Tensor.grad_fn`, and each node's `name`,
`inputs`, `output` and `backward_of`); neither the engine nor the models import it.
"""

from .graph import DotNotFoundError, draw_backward, draw_graph, grad_colour, render, retain_grads

__all__ = ["draw_graph", "draw_backward", "retain_grads", "grad_colour", "render",
           "DotNotFoundError"]
