"""A tiny decoder-only transformer whose attention is softmax or linear with any feature map."""
import torch
import torch.nn.functional as F
from torch import nn

from ..attention import linear_attention, softmax_attention
from ..feature_maps import get_feature_map
from ..validation import check_positive_int


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention calling linattn.softmax_attention or linattn.linear_attention."""

    def __init__(self, d_model, n_heads, head_dim, *, attention="softmax", feature_map="elu"):
        super().__init__()
        if attention not in ("softmax", "linear"):
            raise ValueError(f"attention must be 'softmax' or 'linear', got {attention!r}")
        for name, value in (("d_model", d_model), ("n_heads", n_heads), ("head_dim", head_dim)):
            check_positive_int(name, value)
        self.attention, self.n_heads, self.head_dim = attention, n_heads, head_dim
        self.feature_map = get_feature_map(feature_map) if attention == "linear" else None
        self.qkv = nn.Linear(d_model, 3 * n_heads * head_dim, bias=False)
        self.out = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def forward(self, x):
        batch, n, _ = x.shape
        q, k, v = self.qkv(x).view(batch, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.attention == "softmax":
            y = softmax_attention(q, k, v, causal=True)
        else:
            y = linear_attention(q, k, v, feature_map=self.feature_map, causal=True)
        return self.out(y.transpose(1, 2).flatten(2))


class Block(nn.Module):
    """Pre-norm residual block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, d_model, n_heads, head_dim, **attention_kwargs):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, head_dim, **attention_kwargs)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    """Token and position embeddings, `n_layers` blocks, a final norm and a linear read-out.

    With `previous_token=True` each position's input also carries an embedding of the token before it
    (a width-2 convolution over the sequence), so that one attention layer can pair a value with
    the key just before it; without it a second layer has to learn that step.
    """

    def __init__(self, vocab_size, max_len, *, d_model=64, n_layers=1, n_heads=1, head_dim=None,
                 attention="softmax", feature_map="elu", previous_token=True):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("max_len", max_len), ("d_model", d_model),
                            ("n_layers", n_layers), ("n_heads", n_heads)):
            check_positive_int(name, value)
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}), or give head_dim")
            head_dim = d_model // n_heads
        check_positive_int("head_dim", head_dim)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.token = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_len, d_model)
        # Index vocab_size stands for "no previous token" at position 0.
        self.previous = nn.Embedding(vocab_size + 1, d_model) if previous_token else None
        self.blocks = nn.ModuleList(Block(d_model, n_heads, head_dim, attention=attention, feature_map=feature_map)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens):
        """tokens (batch, N) of ints in [0, vocab_size) -> logits (batch, N, vocab_size)."""
        self._check_tokens(tokens)
        n = tokens.shape[1]
        x = self.token(tokens) + self.position(torch.arange(n, device=tokens.device))
        if self.previous is not None:
            x = x + self.previous(F.pad(tokens, (1, -1), value=self.vocab_size))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def _check_tokens(self, tokens):
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
            got = f"{tokens.dtype} tensor of shape {tuple(tokens.shape)}" if isinstance(tokens, torch.Tensor) \
                else type(tokens).__name__
            raise ValueError(f"tokens must be a (batch, N) tensor of int64, got {got}")
        if not 1 <= tokens.shape[1] <= self.max_len:
            raise ValueError(f"sequence length {tokens.shape[1]} is outside 1..max_len={self.max_len}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}); got "
                             f"{tokens.min().item()}..{tokens.max().item()}")
