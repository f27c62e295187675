"""The book's puzzles: exercises whose answer is a function, checked by `check(name, fn)`.

Every chapter uses one convention. A puzzle is named by the label of its exercise:

    from linattn.show.puzzles import check

    def causal_attention(q, k, v):
        ...
    check("ch01-ex-causal", causal_attention)

check runs the function on each case of the puzzle (small seeded inputs, at least one an edge
case), compares it with a reference built from the package, and prints "pass" or the first
failing case with a hint. It never raises for anything the function does (it prints "not yet");
it raises ValueError only for an unknown puzzle name. Difficulty: ★ minutes, ★★ a quarter hour,
★★★ a project. The cases below are grouped by chapter; each reference is built from package calls
(Chapter 2's is the log-space formula, which tests/show/test_puzzles.py checks against the package).
"""
import math

import torch

from .. import (LinearAttentionState, PerformerFeatures, decayed_linear_attention, delta_rule_attention,
                elu_plus_one, gated_linear_attention, linear_attention, linear_attention_step, poly2_features,
                relu_features, softmax_attention)
from ..lab import costs
from ..lab.timing import Timing
from .puzzle_check import Case, Puzzle, PuzzleMistake, run_puzzle

PUZZLES = {}


def register(puzzle):
    if puzzle.name in PUZZLES:
        raise ValueError(f"a puzzle named {puzzle.name!r} exists already")
    PUZZLES[puzzle.name] = puzzle


def check(name, fn):
    """Run fn on every case of puzzle `name`; print "pass" or the first failing case with a hint.
    Returns True when every case passes. Never raises for what fn does."""
    if name not in PUZZLES:
        raise ValueError(f"no puzzle named {name!r}; the puzzles are {sorted(PUZZLES)}")
    return run_puzzle(PUZZLES[name], fn)


def _randn(seed, *shapes, scale=1.0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return tuple(scale * torch.randn(*shape, generator=gen, dtype=dtype) for shape in shapes)


def _rand(seed, *shapes, low=0.0, high=1.0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64) for shape in shapes)


def _qkv(seed, lead, n, d, d_v, m=None, scale=1.0, dtype=torch.float64):
    """q (*lead, n, d), k (*lead, m, d), v (*lead, m, d_v)."""
    m = n if m is None else m
    return _randn(seed, (*lead, n, d), (*lead, m, d), (*lead, m, d_v), scale=scale, dtype=dtype)


def _quarter_of_quadratic(n, d, d_v, lead=(), extra=0):
    """A quarter of the FLOPs that the N x N products cost: any O(N) method stays well below."""
    batch = math.prod(lead)
    return lambda args: costs.quadratic_order_flops(batch, n, d, value_dim=d_v) / 4 + extra


# Chapter 1 ---------------------------------------------------------------------------------------

register(Puzzle("ch01-ex-causal", 1, "causal_attention",
                lambda q, k, v: softmax_attention(q, k, v, causal=True), cases=(
    Case("one sequence: N = 6, d = 4, d_v = 3", lambda: _qkv(1, (), 6, 4, 3),
         "Set the scores of later keys (j > i) to -inf before the softmax, so that exp gives them weight 0; "
         "a score of 0 would still weigh exp(0) = 1. Keep the 1/sqrt(d) scale."),
    Case("batch 2, 3 heads, N = 7, d = 8, d_v = 5", lambda: _qkv(2, (2, 3), 7, 8, 5),
         "Act on the last two dimensions only: k.transpose(-2, -1), a mask of size N = q.shape[-2], "
         "softmax over dim=-1."),
    Case("N = 1: a single token sees only itself", lambda: _qkv(3, (), 1, 4, 3),
         "The only weight is 1, so the output is v. Build the mask from this input's length and keep the "
         "diagonal: triu(1) marks the future, triu() would hide the token itself."),
    Case("large scores: entries of q and k around 30", lambda: _qkv(4, (), 5, 4, 3, scale=30.0),
         "exp of a large score overflows to inf, and inf / inf is NaN. torch.softmax subtracts each row's "
         "largest score first (the weights do not change); do the same if you write the exponentials."),
)))


# Chapter 2 ---------------------------------------------------------------------------------------

def _gaussian_weights_reference(x_queries, x_keys, sigma):
    """softmax_j(-|q_i - k_j|^2 / 2 sigma^2): the Gaussian kernel's weights, normalised in log space."""
    squared = (x_queries.unsqueeze(-2) - x_keys.unsqueeze(-3)).square().sum(-1)
    return torch.softmax(-squared / (2 * sigma ** 2), dim=-1)


def _points(seed, n, m, d, key_range=(0.0, 2 * math.pi)):
    gen = torch.Generator().manual_seed(seed)
    queries = torch.rand(n, d, generator=gen, dtype=torch.float64) * 2 * math.pi
    low, high = key_range
    return queries, low + (high - low) * torch.rand(m, d, generator=gen, dtype=torch.float64)


register(Puzzle("ch02-ex-log-weights", 2, "gaussian_weights", _gaussian_weights_reference, cases=(
    Case("1-D positions: 7 queries, 9 keys, sigma = 1", lambda: (*_points(1, 7, 9, 1), 1.0),
         "Row i holds exp(-|q_i - k_j|^2 / 2 sigma^2) for every key j, divided by the row's sum: shape (N, M)."),
    Case("3-D points, sigma = 0.5", lambda: (*_points(2, 5, 6, 3), 0.5),
         "Sum the squared differences over the last dimension (the coordinates of a point)."),
    Case("one key (M = 1): every weight is 1", lambda: (*_points(3, 4, 1, 2), 0.7),
         "With one key each row has a single weight, which must be exactly 1."),
    Case("sigma = 0.01 and a query far from every key",
         lambda: (*_points(4, 3, 8, 1, key_range=(7.0, 8.0)), 0.01),
         "Far from every key each exp(-|q - k|^2 / 2 sigma^2) underflows to 0 and the row becomes 0 / 0. "
         "Normalise in log space: torch.softmax(-squared / (2 * sigma ** 2), dim=-1) subtracts the row's largest "
         "log-weight first, so the nearest key gets weight 1."),
)))


# Chapter 3 ---------------------------------------------------------------------------------------

def _performer_case(seed, lead, n, m_keys, d, d_v, sigma, dtype, num_features=32):
    q, k, v = _qkv(seed, lead, n, d, d_v, m=m_keys, scale=sigma, dtype=dtype)
    return q, k, v, PerformerFeatures(d, num_features, seed=seed).weight.to(dtype)


def _performer_reference(q, k, v, w):
    """The unshifted estimator in float64, where nothing underflows for these inputs (eps = 0)."""
    features = PerformerFeatures(w.shape[1], w.shape[0])
    features.weight = w.to(torch.float64)
    out = linear_attention(q.double(), k.double(), v.double(), feature_map=features, eps=0)
    return out.to(q.dtype)


register(Puzzle("ch03-ex-stable-features", 2, "performer_attention", _performer_reference, rtol=2e-3, atol=1e-6,
                cases=(
    Case("moderate inputs in float64 (standard deviation 0.5), d = 8, m = 32 features",
         lambda: _performer_case(1, (), 6, 7, 8, 3, 0.5, torch.float64),
         "phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m) with x' = x / d^(1/4). Shift each query's log-features by "
         "its own maximum (it cancels in the division), but all keys by one shared constant: a shift per key "
         "changes that key's weight."),
    Case("batch 2, 2 heads, float32", lambda: _performer_case(2, (2, 2), 5, 5, 8, 4, 1.0, torch.float32),
         "Keep every leading dimension: the key shift is one constant per sequence (the max over its keys "
         "and features), the query shift one per row."),
    Case("one query, five keys", lambda: _performer_case(3, (), 1, 5, 8, 3, 1.0, torch.float64),
         "The output has one row per query: shape (..., N, d_v)."),
    Case("long inputs in float32 (standard deviation 10): unshifted features underflow to 0",
         lambda: _performer_case(4, (), 6, 6, 8, 3, 10.0, torch.float32),
         "exp(w . x' - |x'|^2 / 2) is below 1e-45 for every feature of a long row, so float32 returns 0 and "
         "the output 0 / 0. Subtract the largest log-feature before exp: per row for queries, one constant "
         "for all keys; then divide without an epsilon."),
)))


# Chapter 4 ---------------------------------------------------------------------------------------

def _reorder_case(seed, phi, lead, n, m, d, d_v, negative_query=False):
    q, k, v = _qkv(seed, lead, n, d, d_v, m=m)
    if negative_query:
        q[..., 0, :] = -q[..., 0, :].abs() - 0.1      # relu(q_0) = 0: a query with no features
    return q, k, v, phi


register(Puzzle("ch04-ex-reorder", 1, "reordered_attention",
                lambda q, k, v, phi: linear_attention(q, k, v, feature_map=phi, eps=1e-6), cases=(
    Case("elu + 1, batch 2, N = 9, d = 4, d_v = 3", lambda: _reorder_case(1, elu_plus_one, (2,), 9, 9, 4, 3),
         "phi(Q) (phi(K)^T V) divided row by row by phi(Q) (phi(K)^T 1) + eps: S = phi(K)^T V is (..., D, d_v), "
         "z = phi(K)^T 1 is (..., D)."),
    Case("more keys than queries: N = 5, M = 11", lambda: _reorder_case(2, elu_plus_one, (), 5, 11, 4, 3),
         "Sum over the keys (dimension -2 of phi(K)); the output has one row per query."),
    Case("poly2 features: D = d^2 = 16 from d = 4", lambda: _reorder_case(3, poly2_features, (), 6, 6, 4, 2),
         "Use phi(q) and phi(k) everywhere, whose size D may differ from d."),
    Case("ReLU features and a query with no positive entry: phi(q) = 0",
         lambda: _reorder_case(4, relu_features, (), 5, 5, 4, 3, negative_query=True),
         "That query's numerator and denominator are both 0: add eps = 1e-6 to the denominator, so the "
         "output is 0 rather than NaN."),
    Case("N = M = 512, d = 4: no N x N matrix (matrix-product FLOPs counted)",
         lambda: _reorder_case(5, elu_plus_one, (), 512, 512, 4, 4),
         "Multiply phi(K)^T by V first: that costs about 4 N d d_v, where phi(Q) phi(K)^T costs 2 N^2 d.",
         max_flops=_quarter_of_quadratic(512, 4, 4)),
)))


register(Puzzle("ch04-ex-causal", 2, "causal_linear_attention",
                lambda q, k, v: linear_attention(q, k, v, causal=True), cases=(
    Case("one sequence: N = 8, d = 4, d_v = 3", lambda: _qkv(1, (), 8, 4, 3),
         "Output i uses only the keys j <= i: S_i = sum_{j<=i} phi(k_j) v_j^T and z_i = sum_{j<=i} phi(k_j), "
         "prefix sums that torch.cumsum computes; phi = elu + 1 and eps = 1e-6 in the denominator."),
    Case("batch 2, 2 heads, N = 10, d = 4, d_v = 5", lambda: _qkv(2, (2, 2), 10, 4, 5),
         "Take the prefix sums over the sequence dimension: -3 for the states (..., N, D, d_v), -2 for z."),
    Case("N = 1", lambda: _qkv(3, (), 1, 4, 3),
         "One token: the output is phi(q) . phi(k) v / (phi(q) . phi(k) + eps)."),
    Case("N = 1024, d = 4: linear time, no N x N matrix (matrix-product FLOPs counted)",
         lambda: _qkv(4, (), 1024, 4, 4),
         "Masking the N x N matrix is right but quadratic; prefix sums (or a loop over a running state) "
         "cost O(N d d_v).", max_flops=_quarter_of_quadratic(1024, 4, 4)),
)))


# Chapter 5 ---------------------------------------------------------------------------------------

def _decayed_reference(qf, kf, v, gamma, eps=1e-6):
    numerator = decayed_linear_attention(qf, kf, v, gamma)
    denominator = decayed_linear_attention(qf, kf, torch.ones_like(v[..., :1]), gamma)
    return numerator / (denominator + eps)


def _positive_case(seed, lead, n, d, d_v, gamma):
    qf, kf = _rand(seed, (*lead, n, d), (*lead, n, d), low=0.05)
    return qf, kf, _randn(seed + 100, (*lead, n, d_v))[0], gamma


register(Puzzle("ch05-ex-decay", 2, "decayed_masked", _decayed_reference, cases=(
    Case("N = 8, D = 4, d_v = 3, gamma = 0.9", lambda: _positive_case(1, (), 8, 4, 3, 0.9),
         "Replace the causal mask of ones by L_ij = gamma^(i - j) for j <= i and 0 above the diagonal; "
         "normalise by the row sums of the masked similarities, plus eps = 1e-6."),
    Case("gamma = 1: no decay", lambda: _positive_case(2, (), 7, 3, 2, 1.0),
         "With gamma = 1 the mask is the plain lower triangle of ones of Chapter 5's masked algorithm."),
    Case("batch 2, 2 heads, gamma = 0.5", lambda: _positive_case(3, (2, 2), 6, 4, 3, 0.5),
         "Build the N x N mask once from N = qf.shape[-2]; it broadcasts over the leading dimensions."),
    Case("N = 1", lambda: _positive_case(4, (), 1, 4, 3, 0.9), "A 1 x 1 mask holding gamma^0 = 1."),
    Case("gamma = 0.01 over N = 200 tokens", lambda: _positive_case(5, (), 200, 3, 2, 0.01),
         "Above the diagonal gamma^(i - j) has a negative exponent: 0.01^(-199) overflows to inf, and "
         "inf * 0 is NaN. Clamp i - j at 0 (or use torch.where) before raising gamma to it, then zero the "
         "upper triangle."),
)))


def _favor_case(seed, lead, n, d, d_v, chunk_size, sigma=0.7, dtype=torch.float64, num_features=16):
    q, k, v = _qkv(seed, lead, n, d, d_v, scale=sigma, dtype=dtype)
    return q, k, v, PerformerFeatures(d, num_features, seed=seed).weight.to(dtype), chunk_size


def _favor_reference(q, k, v, w, chunk_size):
    """Chapter 3's estimator under the causal mask, unshifted, in float64 (eps = 0)."""
    features = PerformerFeatures(w.shape[1], w.shape[0])
    features.weight = w.to(torch.float64)
    out = linear_attention(q.double(), k.double(), v.double(), feature_map=features, causal=True, eps=0)
    return out.to(q.dtype)


def _favor_flops(n, d, d_v, num_features):
    features = 2 * 2 * n * d * num_features    # phi(q) and phi(k): x W^T
    return _quarter_of_quadratic(n, num_features, d_v, extra=features)


register(Puzzle("ch05-ex-favor-causal", 3, "causal_favor", _favor_reference, rtol=2e-3, atol=1e-6, cases=(
    Case("N = 20 in chunks of 8 (the last one short), d = 4, m = 16 features, float64",
         lambda: _favor_case(1, (), 20, 4, 3, 8),
         "phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), x' = x / d^(1/4). For chunk c: phi(Q_c) S_[c] (the "
         "chunks before) plus (L * phi(Q_c) phi(K_c)^T) V_c (inside; L lower triangular), with a column of "
         "ones appended to V for the denominators; divide without an epsilon. Pad the last chunk with zeros."),
    Case("batch 2, 2 heads, N = 33 in chunks of 16", lambda: _favor_case(2, (2, 2), 33, 4, 5, 16),
         "Chunk along the sequence dimension (-2) only; S_[c] is an exclusive prefix sum over the chunks of "
         "phi(K_c)^T [V_c 1]."),
    Case("N = 1", lambda: _favor_case(3, (), 1, 4, 3, 8), "One token in one padded chunk; cut the padding off."),
    Case("a chunk longer than the sequence: N = 10, chunk_size = 64", lambda: _favor_case(4, (), 10, 4, 3, 64),
         "A single chunk: the result is the masked form on N tokens."),
    Case("chunk_size = 1: every token its own chunk", lambda: _favor_case(5, (), 9, 4, 3, 1),
         "With C = 1 the inside term is phi(q_i) . phi(k_i) v_i, and S_[c] must hold every earlier token but "
         "not the token itself."),
    Case("long inputs in float32 (standard deviation 8): unshifted features underflow to 0",
         lambda: _favor_case(10, (), 24, 4, 3, 8, sigma=8.0, dtype=torch.float32),
         "Shift the log-features before exp, as in Chapter 3: per row for queries, one constant for all keys "
         "of the sequence (it cancels in every prefix); then divide without an epsilon."),
    Case("N = 512 in chunks of 16: no N x N matrix (matrix-product FLOPs counted)",
         lambda: _favor_case(7, (), 512, 4, 4, 16),
         "Only C x C blocks inside the chunks and m x (d_v + 1) states between them: O(N C) similarities.",
         max_flops=_favor_flops(512, 4, 4, 16)),
)))


def _prefill_case(seed, lead, prompt, extra, d, d_v, chunk_size):
    q, k, v = _qkv(seed, lead, prompt + extra, d, d_v)
    return q, k, v, prompt, chunk_size


def _continue_from_prefill(prefill, args):
    """Run the reader's prefill on the prompt, then generate the rest with linattn.linear_attention_step."""
    q, k, v, prompt, chunk_size = args
    result = prefill(q[..., :prompt, :], k[..., :prompt, :], v[..., :prompt, :], chunk_size=chunk_size)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise PuzzleMistake("prefill must return a pair (outputs, state); it returned "
                            f"{type(result).__name__}")
    outputs, state = result
    expected_shape = (*v.shape[:-2], prompt, v.shape[-1])
    if not isinstance(outputs, torch.Tensor) or tuple(outputs.shape) != expected_shape:
        got = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise PuzzleMistake(f"the prompt's outputs must have shape {expected_shape}; got {got}")
    if not isinstance(state, LinearAttentionState):
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise PuzzleMistake("the state must be a linattn.LinearAttentionState or a pair (S, z)")
        state = LinearAttentionState(*state)
    generated = []
    for t in range(prompt, q.shape[-2]):
        try:
            out, state = linear_attention_step(state, q[..., t, :], k[..., t, :], v[..., t, :])
        except ValueError as error:
            raise PuzzleMistake(f"generating from your state failed: {error}") from None
        generated.append(out.unsqueeze(-2))
    return torch.cat([outputs.to(v.dtype), *generated], dim=-2)


register(Puzzle("ch05-ex-prefill", 3, "prefill", lambda q, k, v, prompt, chunk_size: linear_attention(
                q, k, v, causal=True), call=_continue_from_prefill, cases=(
    Case("a prompt of 12 tokens in chunks of 8, then 5 generated tokens; d = 4, d_v = 3",
         lambda: _prefill_case(1, (), 12, 5, 4, 3, 8),
         "Return (outputs of the prompt, state): the outputs by the chunked form (phi = elu + 1, eps = 1e-6), "
         "the state as S = phi(K)^T V (..., D, d_v) and z = phi(K)^T 1 (..., D) over the whole prompt."),
    Case("batch 2, 2 heads, a prompt of 33 tokens in chunks of 16, then 6 generated",
         lambda: _prefill_case(2, (2, 2), 33, 6, 4, 5, 16),
         "The state sums over every prompt token, the padded tail chunk included (its zero keys add nothing)."),
    Case("a one-token prompt", lambda: _prefill_case(3, (), 1, 4, 4, 3, 8),
         "S = phi(k_1) v_1^T and z = phi(k_1) after one token."),
    Case("a prompt shorter than a chunk: 5 tokens, chunks of 16", lambda: _prefill_case(4, (), 5, 3, 4, 3, 16),
         "One padded chunk; cut the outputs back to the prompt's length."),
    Case("a prompt of 512 tokens in chunks of 32: no N x N matrix (matrix-product FLOPs counted)",
         lambda: _prefill_case(5, (), 512, 2, 4, 4, 32),
         "Inside each chunk a C x C block, between chunks a D x (d_v + 1) state: O(N C) work.",
         max_flops=_quarter_of_quadratic(512, 4, 4)),
)))


# Chapter 6 ---------------------------------------------------------------------------------------

class FakeClock:
    """A clock that advances only when the fake work below runs: timing without waiting or noise."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeWork:
    """A function whose calls take the given durations on the fake clock, one after the other."""

    def __init__(self, clock, durations):
        self.clock, self.durations, self.calls = clock, durations, 0

    def __call__(self):
        if self.calls == len(self.durations):
            raise PuzzleMistake(f"fn was called more than warmup + repeats = {len(self.durations)} times")
        self.clock.now += self.durations[self.calls]
        self.calls += 1


def _time_on_fake_clock(median_time, args):
    durations, warmup = args
    clock = FakeClock()
    work = FakeWork(clock, durations)
    result = median_time(work, clock, repeats=len(durations) - warmup, warmup=warmup)
    if work.calls != len(durations):
        raise PuzzleMistake(f"fn ran {work.calls} times; it should run warmup + repeats = {len(durations)} times")
    return result


register(Puzzle("ch06-ex-median", 1, "median_time",
                lambda durations, warmup: Timing(tuple(durations[warmup:])).median,
                call=_time_on_fake_clock, cases=(
    Case("warmup = 1 and 5 repeats; the warm-up call takes 10 s", lambda: ((10.0, 1.0, 2.0, 3.0, 4.0, 5.0), 1),
         "Call fn `warmup` times without timing it; then read the clock before and after each of the "
         "`repeats` calls and keep each difference."),
    Case("an outlier: one call of 50 s among calls of about 1 s", lambda: ((1.0, 1.1, 50.0, 0.9, 1.2), 0),
         "Return the median of the per-call times (statistics.median), not their mean: one slow call must not "
         "move it."),
    Case("an even number of repeats", lambda: ((5.0, 4.0, 1.0, 3.0, 2.0), 1),
         "With an even number of samples the median is the mean of the middle two."),
    Case("repeats = 1 after two warm-up calls", lambda: ((9.0, 9.0, 0.5), 2),
         "One timed call: its time is the median."),
)))


# Chapter 7 ---------------------------------------------------------------------------------------

def _heads_reference(qkv, n_heads):
    """Each head on its own slice of the projection, one linattn call per head, concatenated."""
    q, k, v = qkv.chunk(3, dim=-1)                      # (B, N, H d) each, head h at [h d, (h + 1) d)
    size = q.shape[-1] // n_heads
    heads = [linear_attention(*(x[..., h * size:(h + 1) * size] for x in (q, k, v)), causal=True)
             for h in range(n_heads)]
    return torch.cat(heads, dim=-1)


def _heads_case(seed, batch, n, n_heads, head_dim):
    return _randn(seed, (batch, n, 3 * n_heads * head_dim))[0], n_heads


register(Puzzle("ch07-ex-heads", 2, "multi_head_causal", _heads_reference, cases=(
    Case("batch 2, N = 6, 3 heads of size 4", lambda: _heads_case(1, 2, 6, 3, 4),
         "The last dimension is [q of every head | k of every head | v of every head], each block head after "
         "head: qkv.view(B, N, 3, H, d) then permute to (3, B, H, N, d). Merge back with "
         "y.transpose(1, 2).flatten(2)."),
    Case("one head", lambda: _heads_case(2, 1, 5, 1, 4),
         "With one head the result is causal linear attention on q, k, v = qkv.chunk(3, dim=-1)."),
    Case("N = 1", lambda: _heads_case(3, 2, 1, 2, 3), "One token: every head returns its own v."),
    Case("8 heads of size 2, N = 10", lambda: _heads_case(4, 1, 10, 8, 2),
         "Heads must not mix features: head h of q is features h d to (h + 1) d of the q block."),
)))


# Chapter 8 ---------------------------------------------------------------------------------------

def _delta_step_reference(state, k_t, v_t, beta):
    if isinstance(beta, torch.Tensor):
        beta = beta.unsqueeze(-1)                       # one beta per token: (..., N = 1)
    one = [x.unsqueeze(-2) for x in (k_t, k_t, v_t)]  # a sequence of one token, its key as the query
    return delta_rule_attention(*one, beta, initial_state=state, return_state=True)[1]


def _delta_case(seed, lead, d_k, d_v, beta, overwrite=False):
    state, k_t, v_t = _randn(seed, (*lead, d_k, d_v), (*lead, d_k), (*lead, d_v))
    k_t = k_t / k_t.norm(dim=-1, keepdim=True)
    if not overwrite:
        state = torch.zeros_like(state)
    return state, k_t, v_t, beta


register(Puzzle("ch08-ex-delta-step", 1, "delta_step", _delta_step_reference, cases=(
    Case("an empty state, d_k = 4, d_v = 3, beta = 1", lambda: _delta_case(1, (), 4, 3, 1.0),
         "S + beta k_t (v_t - S^T k_t)^T, with S of shape (..., d_k, d_v): torch.outer or "
         "k_t.unsqueeze(-1) * error.unsqueeze(-2)."),
    Case("a state that already holds something under k_t; beta = 1, unit key",
         lambda: _delta_case(2, (), 4, 3, 1.0, overwrite=True),
         "The delta rule first reads what the state returns for the key, S^T k_t, and writes only the "
         "correction v_t - S^T k_t: afterwards S^T k_t equals v_t. Adding k_t v_t^T is the sum rule."),
    Case("beta = 0: nothing changes", lambda: _delta_case(3, (), 4, 3, 0.0, overwrite=True),
         "beta scales the whole write."),
    Case("2 x 3 heads, one beta per head (a tensor of shape (2, 3))",
         lambda: _delta_case(4, (2, 3), 4, 2, torch.linspace(0.1, 0.9, 6, dtype=torch.float64).view(2, 3),
                             overwrite=True),
         "Read with (k_t.unsqueeze(-2) @ S).squeeze(-2) and broadcast beta as beta[..., None, None] (a plain "
         "number works as it is)."),
)))


def _gla_case(seed, lead, n, d_k, d_v, chunk_size, low=0.8, high=1.0):
    q, k, v = _qkv(seed, lead, n, d_k, d_v)
    gate = _rand(seed + 100, (*lead, n, d_k), low=low, high=high)[0]
    return q, k, v, gate, chunk_size


register(Puzzle("ch08-ex-gla-chunks", 3, "gla_chunkwise",
                lambda q, k, v, gate, chunk_size: gated_linear_attention(q, k, v, gate), rtol=1e-6, atol=1e-8,
                cases=(
    Case("N = 20 in chunks of 8, d_k = 4, d_v = 3, gates between 0.8 and 1", lambda: _gla_case(1, (), 20, 4, 3, 8),
         "Inside chunk c, with b the cumulative product of the gates from the chunk's start: "
         "O_c = (Q_c * b) S_[c] + tril((Q_c * b)(K_c / b)^T) V_c, then S_[c+1] = b_last * S_[c] "
         "+ (K_c * b_last / b)^T V_c (b_last multiplies the rows of S)."),
    Case("batch 2, 2 heads, N = 37 in chunks of 16", lambda: _gla_case(2, (2, 2), 37, 4, 5, 16),
         "Pad the last chunk with gates of 1 and keys of 0, then cut the outputs back to N."),
    Case("N = 1", lambda: _gla_case(3, (), 1, 4, 3, 8), "o_1 = (q_1 . k_1) v_1: the gate acts on the empty state."),
    Case("chunk_size = 1", lambda: _gla_case(4, (), 9, 4, 3, 1),
         "With C = 1 everything happens in the state: S_t = diag(alpha_t) S_{t-1} + k_t v_t^T."),
    Case("small gates (0.05 to 0.2) over N = 400 tokens", lambda: _gla_case(5, (), 400, 4, 3, 16, 0.05, 0.2),
         "The product of all gates from the start underflows (0.1^400 = 0) and K / b becomes inf. Take the "
         "cumulative products within each chunk only, relative to its start."),
    Case("N = 512 in chunks of 16: no N x N matrix (matrix-product FLOPs counted)",
         lambda: _gla_case(6, (), 512, 4, 4, 16),
         "Only C x C blocks inside the chunks and d_k x d_v states between them.",
         max_flops=_quarter_of_quadratic(512, 4, 4)),
)))
