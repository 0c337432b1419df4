def teacher_forcing_batch(ids, starts, context):
    x = np.stack([ids[s:s + context] for s in starts]).astype(np.int64)
    y = np.stack([ids[s + 1:s + context + 1] for s in starts]).astype(np.int64)
    return x, y


class GPT(nn.Module):
    """Token embedding, learned positions, n_layer Blocks, a final norm, tied unembedding."""

    def __init__(self, vocab_size, context, d_model=32, n_layer=2, n_head=2):
        self.embedding = nn.init.normal_(nn.Parameter(np.zeros((vocab_size, d_model))), std=0.02)
        self.positions = nn.init.normal_(nn.Parameter(np.zeros((context, d_model))), std=0.02)
        self.blocks = nn.ModuleList([Block(d_model, n_head) for _ in range(n_layer)])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, ids):
        x = self.embedding[ids] + self.positions[:ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.embedding.T
