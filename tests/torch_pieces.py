"""Our model's parameters as torch leaves, and the pieces of a Transformer written directly in
torch on them: what tests/test_gpt.py and tests/test_bert.py each build their own model from,
to hold ours to torch's outputs and gradients (`assert_equals_torchs`)."""

import numpy as np
import torch
import torch.nn.functional as TF

import tinyautograd.functional as F


def torch_pieces(model, idx):
    """(params, embedded, linear, norm, heads) for a batch of tokens idx (B, T): every parameter
    of `model` as a torch leaf of its name (float64 where the model is), the tokens' embeddings
    plus their learned positions, and a linear layer, a layer norm and the split into heads,
    each reading the parameters under the prefix it is given."""
    params = {name: torch.tensor(p.data, requires_grad=True)
              for name, p in model.named_parameters()}
    c = model.config
    B, T = idx.shape
    n_head, d_head = c["n_head"], c["d_model"] // c["n_head"]
    embedded = (params["embed.tok.weight"][torch.as_tensor(idx)]
                + params["embed.pos.embedding.weight"][:T])                    # (B, T, C)

    def linear(prefix, x):
        return x @ params[f"{prefix}.weight"] + params[f"{prefix}.bias"]

    def norm(prefix, x):
        return TF.layer_norm(x, (c["d_model"],), params[f"{prefix}.weight"],
                             params[f"{prefix}.bias"])

    def heads(x):
        return x.view(B, T, n_head, d_head).transpose(1, 2)                  # (B, H, T, d)

    return params, embedded, linear, norm, heads


def assert_equals_torchs(model, idx, targets, torch_model):
    """Our logits for idx, and every parameter's gradient of their cross-entropy against
    `targets`, equal to those of `torch_model(model, idx)` (its logits, and its parameters by
    our names) to float64 rounding."""
    logits = model(idx)
    F.cross_entropy(logits, targets).backward()
    theirs, params = torch_model(model, idx)
    TF.cross_entropy(theirs.reshape(-1, theirs.shape[-1]),
                     torch.as_tensor(targets).reshape(-1)).backward()
    np.testing.assert_allclose(logits.data, theirs.detach().numpy(), rtol=1e-7, atol=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-7, atol=1e-12,
                                   err_msg=name)
