"""nanoGPT's model in PyTorch, for the benchmarks that set our engine beside PyTorch eager.

TorchGPT is nanoGPT's GPT minus dropout (the Shakespeare recipe has none): learned positions,
pre-norm blocks with one fused q/k/v matrix and F.scaled_dot_product_attention, a tanh-GELU
MLP, a final LayerNorm and a head tied to the token embedding. `copy_weights` loads one of our
GPTs into it, so that both engines start from the same function; `torch_adamw` and `torch_step`
train it as our trainer trains ours; `torch_generate` decodes greedily with a KV cache, written
as one writes it in eager PyTorch.

Only benchmarks import this (PyTorch is never a dependency of the package).
"""

import torch
import torch.nn as tnn
import torch.nn.functional as TF


class CausalSelfAttention(tnn.Module):
    def __init__(self, d_model, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = tnn.Linear(d_model, 3 * d_model)   # q, k and v in one matrix, as nanoGPT
        self.c_proj = tnn.Linear(d_model, d_model)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, d_head): each head attends on its own slice of C.
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)   # softmax(qk^T/sqrt(d))v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(tnn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.c_fc = tnn.Linear(d_model, d_ff)
        self.c_proj = tnn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.c_proj(TF.gelu(self.c_fc(x), approximate="tanh"))


class Block(tnn.Module):
    """Pre-norm: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, d_model, n_head, d_ff):
        super().__init__()
        self.ln_1 = tnn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.ln_2 = tnn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_ff)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(tnn.Module):
    def __init__(self, vocab_size, context, n_layer, n_head, d_model, d_ff):
        super().__init__()
        self.wte = tnn.Embedding(vocab_size, d_model)    # token embedding
        self.wpe = tnn.Embedding(context, d_model)       # learned positions
        self.h = tnn.ModuleList(Block(d_model, n_head, d_ff) for _ in range(n_layer))
        self.ln_f = tnn.LayerNorm(d_model)
        self.lm_head = tnn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight            # tied: one matrix, used at both ends

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))                # (B, T, vocab)


def copy_weights(ours, theirs):
    """Load our GPT's parameters into TorchGPT. Our Linear stores W as (in, out) and computes
    x @ W; torch's stores (out, in) and computes x @ W^T, so every Linear weight is transposed.
    Our q, k and v projections are stacked into nanoGPT's single c_attn."""
    p = {name: torch.from_numpy(t.data.copy()) for name, t in ours.named_parameters()}
    weights = {"wte.weight": p["embed.tok.weight"], "wpe.weight": p["embed.pos.embedding.weight"],
               "ln_f.weight": p["decoder.final_norm.weight"],
               "ln_f.bias": p["decoder.final_norm.bias"]}
    for i in range(ours.config["n_layer"]):
        o, t = f"decoder.layers.{i}", f"h.{i}"
        attn = f"{o}.attn"
        weights.update({
            f"{t}.ln_1.weight": p[f"{o}.attn_norm.weight"],
            f"{t}.ln_1.bias": p[f"{o}.attn_norm.bias"],
            f"{t}.attn.c_attn.weight": torch.cat([p[f"{attn}.{n}.weight"].T for n in "qkv"]),
            f"{t}.attn.c_attn.bias": torch.cat([p[f"{attn}.{n}.bias"] for n in "qkv"]),
            f"{t}.attn.c_proj.weight": p[f"{attn}.out.weight"].T,
            f"{t}.attn.c_proj.bias": p[f"{attn}.out.bias"],
            f"{t}.ln_2.weight": p[f"{o}.ffn_norm.weight"],
            f"{t}.ln_2.bias": p[f"{o}.ffn_norm.bias"],
            f"{t}.mlp.c_fc.weight": p[f"{o}.ffn.fc1.weight"].T,
            f"{t}.mlp.c_fc.bias": p[f"{o}.ffn.fc1.bias"],
            f"{t}.mlp.c_proj.weight": p[f"{o}.ffn.fc2.weight"].T,
            f"{t}.mlp.c_proj.bias": p[f"{o}.ffn.fc2.bias"],
        })
    # strict: every torch parameter must get a value (lm_head.weight is wte.weight, tied).
    weights["lm_head.weight"] = weights["wte.weight"]
    theirs.load_state_dict({k: v.contiguous() for k, v in weights.items()}, strict=True)
    assert theirs.lm_head.weight is theirs.wte.weight, "loading must keep the head tied"


def torch_adamw(model, lr, betas, weight_decay):
    """nanoGPT's AdamW, as our trainer's (weight_decay_groups): weight decay on the matrices
    (dim >= 2), none on biases and norms' gains."""
    params = list(model.parameters())                # the tied matrix appears once
    return torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=lr, betas=betas, eps=1e-8)


def torch_step(model, optimizer, x, y, clip):
    """One training step on the batch x, y (B, T) tensors, in our trainer's order: the
    cross-entropy, its gradients, clipped to norm `clip`, and the optimizer's update. Returns
    the loss."""
    loss = TF.cross_entropy(model(x).flatten(0, 1), y.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def torch_generate(model, idx, new_tokens):
    """Greedy decoding with a KV cache, in eager PyTorch. idx (B, T) -> (B, T + new_tokens)."""
    caches = [None] * len(model.h)             # per layer: (keys, values), each (B, H, t, d)

    def forward(tokens, start):
        """Logits of the last position, for `tokens` (B, n) at positions start..start+n-1."""
        B, n = tokens.shape
        x = model.wte(tokens) + model.wpe(torch.arange(start, start + n))
        for i, block in enumerate(model.h):
            attn = block.attn
            C = x.shape[-1]
            q, k, v = attn.c_attn(block.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, n, attn.n_head, C // attn.n_head).transpose(1, 2)
                       for t in (q, k, v))
            if caches[i] is not None:
                k = torch.cat([caches[i][0], k], dim=2)
                v = torch.cat([caches[i][1], v], dim=2)
            caches[i] = (k, v)
            # The prompt attends causally; one new position attends to everything cached.
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=n > 1)
            x = x + attn.c_proj(y.transpose(1, 2).reshape(B, n, C))
            x = x + block.mlp(block.ln_2(x))
        return model.lm_head(model.ln_f(x[:, -1]))          # (B, vocab)

    logits = forward(idx, 0)
    out = [idx]
    for step in range(new_tokens):
        next_token = logits.argmax(dim=-1, keepdim=True)     # (B, 1)
        out.append(next_token)
        if step + 1 < new_tokens:
            logits = forward(next_token, idx.shape[1] + step)
    return torch.cat(out, dim=1)
