"""The book's answers to its puzzles, as the puzzle cells hold them, plus a subtly wrong one for each.

Each answer is written as a reader would write it (torch, F, math, statistics and linattn, the names
the chapters import), independently of the references in linattn.show.puzzles. tests/show/test_puzzles.py
checks every answer passes and every wrong one fails where it should; the cell drafts for the notebooks
are generated from this file, so what the book shows is what the tests ran.
"""
import math
import statistics

import torch
import torch.nn.functional as F

import linattn


# ch01-ex-causal
def causal_attention(q, k, v):
    """Softmax attention in which query i sees only the keys j <= i: q, k (..., N, d), v (..., N, d_v)."""
    n = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)   # True where j > i
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


# ch02-ex-log-weights
def gaussian_weights(x_queries, x_keys, sigma):
    """Weights exp(-|q_i - k_j|^2 / 2 sigma^2), normalised over the keys: (N, d), (M, d) -> (N, M), never 0 / 0."""
    log_weights = -torch.cdist(x_queries, x_keys) ** 2 / (2 * sigma ** 2)
    return torch.softmax(log_weights, dim=-1)       # subtracts each row's largest log-weight first


# ch03-ex-stable-features
def performer_attention(q, k, v, w):
    """Attention with positive random features phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), x' = x / d^(1/4),
    shifted so that no row underflows: q (..., N, d), k (..., M, d), v (..., M, d_v), w (m, d)."""
    scale, w = q.shape[-1] ** -0.25, w.to(q.dtype)

    def log_features(x):                 # log phi(x), without the -log(m)/2 that cancels anyway
        x = x * scale
        return x @ w.T - (x * x).sum(-1, keepdim=True) / 2

    log_q, log_k = log_features(q), log_features(k)
    qf = torch.exp(log_q - log_q.amax(dim=-1, keepdim=True))           # one shift per query: cancels
    kf = torch.exp(log_k - log_k.amax(dim=(-2, -1), keepdim=True))     # one shift for all keys
    return (qf @ (kf.transpose(-2, -1) @ v)) / (qf @ kf.sum(dim=-2).unsqueeze(-1))


# ch04-ex-reorder
def reordered_attention(q, k, v, phi, eps=1e-6):
    """phi(Q) (phi(K)^T V) / phi(Q) (phi(K)^T 1) for any feature map phi: never an N x M matrix."""
    qf, kf = phi(q), phi(k)
    state = kf.transpose(-2, -1) @ v             # S: (..., D, d_v)
    key_sum = kf.sum(dim=-2)                     # z: (..., D)
    return (qf @ state) / (qf @ key_sum.unsqueeze(-1) + eps)


# ch04-ex-causal
def causal_linear_attention(q, k, v, eps=1e-6):
    """Causal linear attention with phi = elu + 1, by prefix sums: q, k (..., N, d), v (..., N, d_v)."""
    qf, kf = F.elu(q) + 1, F.elu(k) + 1
    states = torch.cumsum(kf.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)  # (..., N, d, d_v): S_i
    key_sums = torch.cumsum(kf, dim=-2)                                 # (..., N, d):      z_i
    numerator = (qf.unsqueeze(-2) @ states).squeeze(-2)
    denominator = (qf * key_sums).sum(-1, keepdim=True)
    return numerator / (denominator + eps)


# ch05-ex-decay
def decayed_masked(qf, kf, v, gamma, eps=1e-6):
    """The masked quadratic form of a state that forgets: the mask holds gamma^(i - j) for j <= i."""
    n = qf.shape[-2]
    i, j = torch.arange(n).unsqueeze(1), torch.arange(n).unsqueeze(0)
    mask = (gamma ** (i - j).clamp(min=0).to(qf.dtype)).tril()      # gamma^(i - j) for j <= i, else 0
    sim = (qf @ kf.transpose(-2, -1)) * mask
    return (sim @ v) / (sim.sum(-1, keepdim=True) + eps)


# ch05-ex-favor-causal
def causal_favor(q, k, v, w, chunk_size=16):
    """Causal attention with Chapter 3's positive random features, chunk by chunk, stable in float32."""
    n, d_v, scale, w = q.shape[-2], v.shape[-1], q.shape[-1] ** -0.25, w.to(q.dtype)

    def log_features(x):
        x = x * scale
        return x @ w.T - (x * x).sum(-1, keepdim=True) / 2

    log_q, log_k = log_features(q), log_features(k)
    qf = torch.exp(log_q - log_q.amax(dim=-1, keepdim=True))           # per query row: cancels
    kf = torch.exp(log_k - log_k.amax(dim=(-2, -1), keepdim=True))     # one constant for all keys
    v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)           # the ones column: denominators
    pad = -n % chunk_size
    qc, kc, vc = (F.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, chunk_size)) for x in (qf, kf, v1))
    chunk_states = kc.transpose(-2, -1) @ vc                           # phi(K_c)^T [V_c 1]
    before = F.pad(chunk_states.cumsum(dim=-3)[..., :-1, :, :], (0, 0, 0, 0, 1, 0))   # S_[c], shifted
    inside = (qc @ kc.transpose(-2, -1)).tril() @ vc                   # (L * phi(Q_c) phi(K_c)^T) [V_c 1]
    out = (qc @ before + inside).flatten(-3, -2)[..., :n, :]
    return out[..., :d_v] / out[..., d_v:]


# ch05-ex-prefill
def prefill(q, k, v, chunk_size=16, eps=1e-6):
    """The prompt's outputs by the chunked form (phi = elu + 1) and the state (S, z) it leaves, in one pass."""
    n, d_v = q.shape[-2], v.shape[-1]
    qf, kf = F.elu(q) + 1, F.elu(k) + 1
    v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    pad = -n % chunk_size
    qc, kc, vc = (F.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, chunk_size)) for x in (qf, kf, v1))
    chunk_states = kc.transpose(-2, -1) @ vc                 # (..., chunks, D, d_v + 1)
    totals = chunk_states.cumsum(dim=-3)
    inside = (qc @ kc.transpose(-2, -1)).tril() @ vc
    out = (qc @ (totals - chunk_states) + inside).flatten(-3, -2)[..., :n, :]
    final = totals[..., -1, :, :]                             # [S z] after the whole prompt
    state = linattn.LinearAttentionState(final[..., :d_v], final[..., d_v])
    return out[..., :d_v] / (out[..., d_v:] + eps), state


# ch06-ex-median
def median_time(fn, clock, *, repeats, warmup):
    """Seconds per call of fn(): `warmup` untimed calls, then the median of `repeats` timed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


# ch07-ex-heads
def multi_head_causal(qkv, n_heads):
    """Split a (B, N, 3 H d) projection into H heads, run causal linear attention, merge to (B, N, H d)."""
    batch, n, width = qkv.shape
    head_dim = width // (3 * n_heads)
    q, k, v = qkv.view(batch, n, 3, n_heads, head_dim).permute(2, 0, 3, 1, 4)   # each (B, H, N, d)
    y = linattn.linear_attention(q, k, v, causal=True)
    return y.transpose(1, 2).flatten(2)


# ch08-ex-delta-step
def delta_step(state, k_t, v_t, beta):
    """One delta-rule write: S + beta k_t (v_t - S^T k_t)^T, for S (..., d_k, d_v), k_t (..., d_k), v_t (..., d_v)."""
    if isinstance(beta, torch.Tensor):
        beta = beta[..., None, None]
    recalled = (k_t.unsqueeze(-2) @ state).squeeze(-2)          # S^T k_t: what the state returns now
    return state + beta * k_t.unsqueeze(-1) * (v_t - recalled).unsqueeze(-2)


# ch08-ex-gla-chunks
def gla_chunkwise(q, k, v, gate, chunk_size=16):
    """Gated linear attention chunk by chunk: C x C blocks inside a chunk, the decayed state between."""
    n = q.shape[-2]
    pad = -n % chunk_size

    def chunks(x, fill=0.0):                          # (..., N, e) -> (..., N/C, C, e), padded
        return F.pad(x, (0, 0, 0, pad), value=fill).unflatten(-2, (-1, chunk_size))

    b = chunks(gate, 1.0).cumprod(dim=-2)             # decay since each chunk's start: no long products
    qs, ks, vs = chunks(q) * b, chunks(k) / b, chunks(v)
    state = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])     # S before the first chunk
    outputs = []
    for c in range(qs.shape[-3]):
        q_c, k_c, v_c, last = qs[..., c, :, :], ks[..., c, :, :], vs[..., c, :, :], b[..., c, -1, :]
        outputs.append(q_c @ state + (q_c @ k_c.transpose(-2, -1)).tril() @ v_c)
        state = last.unsqueeze(-1) * state + (k_c * last.unsqueeze(-2)).transpose(-2, -1) @ v_c
    return torch.cat(outputs, dim=-2)[..., :n, :]


ANSWERS = {
    "ch01-ex-causal": causal_attention, "ch02-ex-log-weights": gaussian_weights,
    "ch03-ex-stable-features": performer_attention, "ch04-ex-reorder": reordered_attention,
    "ch04-ex-causal": causal_linear_attention, "ch05-ex-decay": decayed_masked,
    "ch05-ex-favor-causal": causal_favor, "ch05-ex-prefill": prefill, "ch06-ex-median": median_time,
    "ch07-ex-heads": multi_head_causal, "ch08-ex-delta-step": delta_step, "ch08-ex-gla-chunks": gla_chunkwise,
}


# Subtly wrong answers: (function, the number of the first case it must fail).

def _zero_masked_attention(q, k, v):               # masks with 0 instead of -inf
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).tril()
    return torch.softmax(scores, dim=-1) @ v


def _direct_gaussian_weights(x_queries, x_keys, sigma):   # exp first: 0 / 0 far from the keys
    sim = torch.exp(-torch.cdist(x_queries, x_keys) ** 2 / (2 * sigma ** 2))
    return sim / sim.sum(-1, keepdim=True)


def _unshifted_performer_attention(q, k, v, w):
    def phi(x):
        x = x * q.shape[-1] ** -0.25
        return torch.exp(x @ w.to(x.dtype).T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(w.shape[0])
    qf, kf = phi(q), phi(k)
    return (qf @ (kf.transpose(-2, -1) @ v)) / (qf @ kf.sum(dim=-2).unsqueeze(-1))


def _quadratic_order(q, k, v, phi, eps=1e-6):      # right values, N x M matrix
    sim = phi(q) @ phi(k).transpose(-2, -1)
    return (sim @ v) / (sim.sum(-1, keepdim=True) + eps)


def _noncausal_linear_attention(q, k, v, eps=1e-6):
    return linattn.linear_attention(q, k, v, eps=eps)


def _decay_times_mask(qf, kf, v, gamma, eps=1e-6):  # gamma ** (i - j) overflows above the diagonal
    n = qf.shape[-2]
    i, j = torch.arange(n).unsqueeze(1), torch.arange(n).unsqueeze(0)
    mask = gamma ** (i - j).to(qf.dtype) * (i >= j)
    sim = (qf @ kf.transpose(-2, -1)) * mask
    return (sim @ v) / (sim.sum(-1, keepdim=True) + eps)


def _unshifted_causal_favor(q, k, v, w, chunk_size=16):   # right in float64, NaN for long float32 inputs
    features = linattn.PerformerFeatures(w.shape[1], w.shape[0])
    features.weight = w.double()
    qf, kf = features(q), features(k)
    return linattn.chunked_causal_linear_attention(qf, kf, v, chunk_size=chunk_size, eps=0)


def _prefill_forgetting_z(q, k, v, chunk_size=16, eps=1e-6):     # z summed over raw keys, not phi(k)
    out, state = prefill(q, k, v, chunk_size, eps)
    return out, (state.kv, k.sum(dim=-2))


def _mean_time(fn, clock, *, repeats, warmup):      # one clock reading around all calls: the mean
    for _ in range(warmup):
        fn()
    start = clock()
    for _ in range(repeats):
        fn()
    return (clock() - start) / repeats


def _heads_mixing_features(qkv, n_heads):           # views the projection as (B, N, H, 3, d)
    batch, n, width = qkv.shape
    q, k, v = qkv.view(batch, n, n_heads, 3, width // (3 * n_heads)).permute(3, 0, 2, 1, 4)
    return linattn.linear_attention(q, k, v, causal=True).transpose(1, 2).flatten(2)


def _sum_rule_step(state, k_t, v_t, beta):          # adds k v^T whatever the state holds
    if isinstance(beta, torch.Tensor):
        beta = beta[..., None, None]
    return state + beta * k_t.unsqueeze(-1) * v_t.unsqueeze(-2)


def _gla_global_products(q, k, v, gate, chunk_size=16):   # the parallel form of Chapter 8, whole sequence
    lam = torch.cumprod(gate, dim=-2)
    return ((q * lam) @ (k / lam).transpose(-2, -1)).tril() @ v


WRONG = {
    "ch01-ex-causal": (_zero_masked_attention, 1),
    "ch02-ex-log-weights": (_direct_gaussian_weights, 4),
    "ch03-ex-stable-features": (_unshifted_performer_attention, 4),
    "ch04-ex-reorder": (_quadratic_order, 5),
    "ch04-ex-causal": (_noncausal_linear_attention, 1),
    "ch05-ex-decay": (_decay_times_mask, 5),
    "ch05-ex-favor-causal": (_unshifted_causal_favor, 6),
    "ch05-ex-prefill": (_prefill_forgetting_z, 1),
    "ch06-ex-median": (_mean_time, 2),
    "ch07-ex-heads": (_heads_mixing_features, 1),
    "ch08-ex-delta-step": (_sum_rule_step, 2),
    "ch08-ex-gla-chunks": (_gla_global_products, 5),
}
