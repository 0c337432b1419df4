"""viz: graphviz pictures of computation and backprop graphs, attention maps and loss curves.

Reads graphs through tinyautograd's public API (`Tensor.grad_fn`, and each node's `name`,
`inputs`, `output`, `backward_of` and `module_path`); neither the engine nor the models import
it. `record(model)` (tinyautograd's `nn.record_module_paths`) is re-exported here: run a forward
inside it, and `draw_graph` and `draw_backward` box the graph by module, and collapse it with
`depth=N` and `fold_repeats=True`.

Pages: `graph_page` (or `draw_graph(...).save_html(path)`), `attention_page`, `lens_page` and
`metrics_page` each make one self-contained, interactive HTML file (a `Page`: `.save(path)`;
a notebook shows it inline). viz/html.py says how they are put together. What a model does
with a prompt comes from `attention_maps` (for `attention_page`) and `lens_of_prompt` (for
`lens_page` and `lens_figure`).
"""

from tinyautograd.nn import record_module_paths as record

from .attention import attention_figure, attention_maps, plot_attention
from .attention_page import attention_page
from .graph import DotNotFoundError, draw_backward, draw_graph, grad_colour, render, retain_grads
from .graph_page import graph_page
from .html import Page
from .lens import lens_figure, lens_of_prompt
from .lens_page import lens_page
from .plots import comparison_figure, metrics_figure, plot_metrics
from .report_page import metrics_page

__all__ = ["draw_graph", "draw_backward", "retain_grads", "grad_colour", "render",
           "DotNotFoundError", "record", "metrics_figure", "comparison_figure", "plot_metrics",
           "attention_maps", "attention_figure", "plot_attention", "lens_of_prompt",
           "lens_figure", "graph_page", "attention_page", "lens_page", "metrics_page", "Page"]
