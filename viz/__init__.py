"""viz: graphviz pictures of computation and backprop graphs, attention maps and loss curves.

Reads graphs through tinyautograd's public API (`Tensor.grad_fn`, and each node's `name`,
`inputs` and `output`); neither the engine nor the models import it.
"""

from .graph import DotNotFoundError, draw_graph, render

__all__ = ["draw_graph", "render", "DotNotFoundError"]
