"""Conceptual figures: each mechanism drawn before it is computed, from a small seeded example.

One function per figure; each returns (fig, alt_text), the pair that linattn.show.widgets
(render_into, static_slider) and figure_html.show_figure understand. The numbers a figure shows
come from the package (softmax_attention, the kernels, the step functions, the variants), never
typed in, and the alt text repeats them. Matrices are drawn as grids of cells, one cell per
number, with the book's palette for blocks and colour-blind-safe colour maps for values.
"""
import math

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, Rectangle

from .. import (attention_weights, decayed_linear_attention, delta_rule_attention, elu_plus_one, exp_similarity,
                feature_map_similarity, gated_linear_attention, gaussian_similarity, linear_attention_step,
                softmax_attention, softmax_attention_step)
from .plots import PALETTE

VALUES = "cividis"    # values that may be negative
WEIGHTS = "viridis"   # weights and similarities, from 0


# Shared drawing helpers ---------------------------------------------------------------------------

def _check_int(name, value, low=1, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        limit = f" and <= {high}" if high is not None else ""
        raise ValueError(f"{name} must be an int >= {low}{limit}, got {value!r}")


def _canvas(width, height, xlim, ylim):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_axis_off()
    ax.set_aspect("equal")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return fig, ax


def _block(ax, x, y, width, height, color, label=None, gid=None, alpha=0.45, fontsize=8):
    """A rectangle with its lower-left corner at (x, y), its label centred (or below, if it is small)."""
    patch = Rectangle((x, y), width, height, facecolor=color, edgecolor="black", linewidth=0.8, alpha=alpha, gid=gid)
    ax.add_patch(patch)
    if label:
        inside = min(width, height) >= 2.5 * fontsize / 8
        ax.text(x + width / 2, y + height / 2 if inside else y - 0.4, label, ha="center",
                va="center" if inside else "top", fontsize=fontsize)
    return patch


def _matrix(ax, values, x, y, *, cmap=VALUES, vmin=None, vmax=None, numbers=True, fmt="{:.2f}", fontsize=7,
            frame=None, label=None):
    """values (rows x cols) as a grid of unit cells, row 0 on top, lower-left corner at (x, y)."""
    values = values.detach().to(torch.float64).cpu()
    rows, cols = values.shape
    vmin = values.min().item() if vmin is None else vmin
    vmax = values.max().item() if vmax is None else vmax
    ax.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, extent=(x, x + cols, y, y + rows),
              interpolation="nearest", zorder=1)
    if numbers:
        middle = (vmin + vmax) / 2
        for (i, j), value in zip(((i, j) for i in range(rows) for j in range(cols)), values.flatten().tolist()):
            ax.text(x + j + 0.5, y + rows - i - 0.5, fmt.format(value), ha="center", va="center", fontsize=fontsize,
                    color="black" if value > middle else "white", zorder=2)
    ax.add_patch(Rectangle((x, y), cols, rows, fill=False, edgecolor=frame or "black",
                           linewidth=2 if frame else 0.8, zorder=3))
    if label:
        ax.text(x + cols / 2, y - 0.3, label, ha="center", va="top", fontsize=fontsize + 1)


def _arrow(ax, start, end, text=None, fontsize=8):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="0.3", linewidth=1.2))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.35, text, ha="center", va="bottom",
                fontsize=fontsize)


def _symbol(ax, x, y, text, fontsize=12):
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _seeded(seed, *shapes):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen, dtype=torch.float64) for shape in shapes]


def _numbers(values, fmt="{:.2f}"):
    return ", ".join(fmt.format(v) for v in values)


# Chapter 1 ---------------------------------------------------------------------------------------

def weighted_average(*, n_keys=5, d=4, d_v=3, seed=0):
    """One query's softmax weights over the keys as bar widths, and its output as the blend of the values."""
    _check_int("n_keys", n_keys, 1, 12)
    _check_int("d", d)
    _check_int("d_v", d_v, 1, 6)
    q, k, v = _seeded(seed, (1, d), (n_keys, d), (n_keys, d_v))
    weights = attention_weights(q, k, exp_similarity)[0]             # (n_keys,): softmax of q.k / sqrt(d)
    out = softmax_attention(q, k, v)[0]
    low, high = min(v.min().item(), out.min().item()), max(v.max().item(), out.max().item())
    bar, gap = 6.0, 1.0
    fig, ax = _canvas(1.2 + 0.45 * (bar + d_v), 0.5 * (n_keys + 3), (-2.5, bar + gap + d_v + 0.5), (-2.2, n_keys + 1))
    for j in range(n_keys):
        y = n_keys - 1 - j
        ax.text(-0.3, y + 0.5, f"key {j + 1}", ha="right", va="center", fontsize=8)
        _block(ax, 0, y + 0.15, bar * weights[j].item(), 0.7, PALETTE[0], alpha=0.7)
        ax.text(bar * weights[j].item() + 0.1, y + 0.5, f"{weights[j]:.2f}", va="center", fontsize=8)
        _matrix(ax, v[j:j + 1], bar + gap, y, vmin=low, vmax=high)
    ax.text(bar / 2, n_keys + 0.3, "weight of each key (bar width)", ha="center", fontsize=8)
    ax.text(bar + gap + d_v / 2, n_keys + 0.3, "its value", ha="center", fontsize=8)
    ax.plot([0, bar + gap + d_v], [-0.3, -0.3], color="0.3", linewidth=0.8)
    ax.text(bar + gap - 0.3, -1.5 + 0.5, "output = sum of weight x value", ha="right", va="center", fontsize=8)
    _matrix(ax, out.unsqueeze(0), bar + gap, -1.5, vmin=low, vmax=high, frame=PALETTE[3])
    ax.set_title("Attention as a weighted average: one query", fontsize=10)
    best = int(weights.argmax())
    alt = (f"One query attends over {n_keys} keys (d = {d}). Bars show its softmax weights for keys 1 to {n_keys}: "
           f"{_numbers(weights)}; they sum to 1. Beside each bar is that key's value vector of {d_v} numbers. "
           f"The bottom row is the output, the weighted average of the values: ({_numbers(out)}). The largest "
           f"weight, {weights[best]:.2f}, goes to key {best + 1}.")
    return fig, alt


def multi_head(*, n=4, heads=3, head_dim=2, seed=0):
    """Multi-head attention as a batch of independent heads: split the features, attend, concatenate."""
    _check_int("n", n, 1, 8)
    _check_int("heads", heads, 1, 4)
    _check_int("head_dim", head_dim, 1, 4)
    width = heads * head_dim
    x, w_q, w_k, w_v = _seeded(seed, (n, width), (width, width), (width, width), (width, width))
    q, k, v = ((x @ w).view(n, heads, head_dim).transpose(0, 1) for w in (w_q, w_k, w_v))
    weights = attention_weights(q, k, exp_similarity)            # (H, N, N): one matrix per head
    out = softmax_attention(q, k, v)                             # (H, N, d_h): the heads as a batch
    merged = out.transpose(0, 1).reshape(n, width)
    row = n + 1.5
    left_y = (heads - 1) * row / 2 + 0.8
    right = width + n + head_dim + 6
    fig, ax = _canvas(1.6 + 0.42 * (right + width + 1), 0.42 * (heads * row + 1.5),
                      (-0.5, right + width + 0.5), (-1.2, heads * row))
    _matrix(ax, q.transpose(0, 1).reshape(n, width), 0, left_y, fontsize=6,
            label=f"queries Q = X W_Q: {n} tokens x {width}\n(keys and values alike)")
    _matrix(ax, merged, right, left_y, fontsize=6, label="outputs, concatenated")
    for h in range(heads):
        colour, y = PALETTE[h % len(PALETTE)], (heads - 1 - h) * row + 0.8
        for x0 in (h * head_dim, right + h * head_dim):
            ax.add_patch(Rectangle((x0, left_y), head_dim, n, fill=False, edgecolor=colour, linewidth=2.5, zorder=4))
        _arrow(ax, (width + 0.3, left_y + n / 2), (width + 2.2, y + n / 2), "split" if h == 0 else None)
        _matrix(ax, weights[h], width + 2.5, y, cmap=WEIGHTS, vmin=0, vmax=1, frame=colour, fontsize=6,
                label=f"head {h + 1}: its weights")
        _symbol(ax, width + n + 3.25, y + n / 2, f"@ $V_{h + 1}$ =", fontsize=8)
        _matrix(ax, out[h], width + n + 4.2, y, frame=colour, fontsize=6)
        _arrow(ax, (width + n + head_dim + 4.4, y + n / 2), (right - 0.2, left_y + n / 2),
               "concatenate" if h == 0 else None)
    ax.set_title(f"Multi-head attention: {heads} independent heads of {head_dim} features each", fontsize=10)
    favourite = ", ".join(f"token {int(weights[h, 0].argmax()) + 1} in head {h + 1}" for h in range(heads))
    alt = (f"Multi-head attention on {n} tokens with {heads} heads. The queries (and likewise the keys and values), "
           f"{n} x {width}, are split into {heads} slices of {head_dim} columns, one per head; each head computes "
           f"its own {n} x {n} matrix of attention weights (shown; every row sums to 1) and a {n} x {head_dim} "
           f"output, independently of the others, and the outputs are concatenated back into {n} x {width}. The "
           f"heads attend independently: token 1's largest weight goes to {favourite}.")
    return fig, alt


# Chapter 2 ---------------------------------------------------------------------------------------

def kernel_weights(*, query=0.8, n_keys=12, sigma=0.5, seed=0):
    """One query's weights over 1-D keys under three similarities: exp(q k), Gaussian, elu + 1 features."""
    _check_int("n_keys", n_keys, 2, 40)
    if not (isinstance(query, (int, float)) and -3 <= query <= 3) or not 0 < sigma < math.inf:
        raise ValueError(f"query must lie in [-3, 3] and the width sigma be positive; got {query!r}, {sigma!r}")
    gen = torch.Generator().manual_seed(seed)
    keys = (torch.rand(n_keys, generator=gen, dtype=torch.float64) * 6 - 3).sort().values.unsqueeze(-1)
    values = torch.sin(keys) + 0.2 * torch.randn(n_keys, 1, generator=gen, dtype=torch.float64)
    q = torch.tensor([[float(query)]], dtype=torch.float64)
    grid = torch.linspace(-3, 3, 241, dtype=torch.float64).unsqueeze(-1)
    kernels = {"exp(q k)  (softmax)": exp_similarity,
               f"Gaussian, sigma = {sigma:g}": lambda a, b: gaussian_similarity(a, b, bandwidth=sigma),
               "elu + 1 features": feature_map_similarity("elu")}
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.9), sharey=True)
    summary = []
    for ax, colour, (name, sim) in zip(axes, PALETTE, kernels.items()):
        weights = attention_weights(q, keys, sim)[0]
        curve = sim(q, grid)[0] / sim(q, keys)[0].sum()       # the weight a key at each position would get
        output = (weights @ values).item()
        ax.plot(grid[:, 0], curve, color=colour, linewidth=1.2, label="weight of a key at x")
        ax.vlines(keys[:, 0], 0, weights, color=colour, linewidth=2)
        ax.plot(keys[:, 0], weights, "o", color=colour, markersize=4, label="weights of the keys")
        ax.axvline(query, color="black", linestyle="--", linewidth=1, label="query")
        title = name.replace("sigma", r"$\sigma$")
        ax.set(title=f"{title}\noutput {output:.2f}", xlabel="key position x")
        ax.title.set_fontsize(9)
        best = int(weights.argmax())
        nearest = int((keys[:, 0] - query).abs().argmin())
        where = "the key nearest the query" if best == nearest else \
            f"the key at {keys[best, 0]:.1f}, {abs(keys[best, 0] - query):.1f} away from the query"
        summary.append(f"{name.split('  ')[0]}: weights from {weights.min():.2f} to {weights.max():.2f}, the "
                       f"largest on {where}; output {output:.2f}")
    axes[0].set_ylabel("attention weight")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    alt = (f"Three panels, one per similarity, for a query at x = {query:g} and {n_keys} keys between -3 and 3. "
           "Stems are the normalised weights of the keys, the curve the weight a key at each position would get, "
           "the dashed line the query. " + "; ".join(summary) + ".")
    return fig, alt


# Chapter 4 ---------------------------------------------------------------------------------------

def _row_of_blocks(ax, blocks, y_top, gap):
    """Blocks (label, width, height, colour, gid) left to right, their tops at y_top."""
    x = 0.0
    for label, width, height, colour, gid in blocks:
        patch = Rectangle((x, y_top - height), width, height, facecolor=colour, edgecolor="black", linewidth=0.8,
                          alpha=0.55, gid=gid)
        ax.add_patch(patch)
        if width >= 1.2 * gap and height >= 0.5 * gap:      # room inside
            ax.text(x + width / 2, y_top - height / 2, label, ha="center", va="center", fontsize=7)
        else:
            ax.text(x + width / 2, y_top - height - 0.1 * gap, label, ha="center", va="top", fontsize=7)
        x += width + gap


def product_orders(n=64, d=16, *, n_max=None):
    """The two orders of the products as blocks drawn to scale: (phi(Q) phi(K)^T) V builds N x N,
    phi(Q) (phi(K)^T V) builds d x d. n_max fixes the scale, so that a slider over N redraws alike."""
    _check_int("n", n, 1)
    _check_int("d", d, 1)
    n_max = n if n_max is None else n_max
    _check_int("n_max", n_max, n)
    gap = 0.12 * max(n_max, d)          # one element is one unit of length
    width = 2 * max(n_max, d) + 3 * d + 5 * gap
    height = 2 * max(n_max, d) + 5 * gap
    fig, ax = _canvas(7.5, 7.5 * height / width, (-0.2 * gap, width), (0, height))
    q, k, v, out = r"$\phi(Q)$", r"$\phi(K)^\top$", "$V$", "output"
    top = height - gap
    ax.text(0, top + 0.3 * gap, f"quadratic order $(\\phi(Q)\\,\\phi(K)^\\top)\\,V$: an N x N intermediate, "
            f"{n * n:,} numbers", fontsize=8.5, va="bottom")
    _row_of_blocks(ax, ((q, d, n, PALETTE[0], None), (k, n, d, PALETTE[1], None),
                        (f"N x N\n{n * n:,}", n, n, PALETTE[3], "nxn"), (v, d, n, PALETTE[2], None),
                        (out, d, n, "0.7", None)), top, gap)
    bottom = top - max(n_max, d) - 2.5 * gap
    ax.text(0, bottom + 0.3 * gap, f"linear order $\\phi(Q)\\,(\\phi(K)^\\top V)$: a d x d intermediate, "
            f"{d * d:,} numbers", fontsize=8.5, va="bottom")
    _row_of_blocks(ax, ((k, n, d, PALETTE[1], None), (v, d, n, PALETTE[2], None),
                        (f"d x d\n{d * d:,}", d, d, PALETTE[4], "dxd"), (q, d, n, PALETTE[0], None),
                        (out, d, n, "0.7", None)), bottom, gap)
    fig.suptitle(f"The two orders drawn to scale: N = {n}, d = {d}", fontsize=10)
    ratio = n * n / (d * d)
    alt = (f"Matrix blocks drawn to scale for N = {n} and d = {d}. Top row, the quadratic order: phi(Q) (N x d) "
           f"times phi(K) transposed (d x N) gives an N x N = {n} x {n} block of {n * n:,} numbers, which then "
           f"multiplies V (N x d). Bottom row, the linear order: phi(K) transposed times V gives a d x d = {d} x "
           f"{d} block of {d * d:,} numbers, which phi(Q) multiplies. The quadratic order's intermediate is "
           f"{ratio:,.3g} times the linear order's; it grows with N squared while the d x d one does not change "
           "with N.")
    return fig, alt


# Chapter 5 ---------------------------------------------------------------------------------------

def _states(k, v, q=None):
    """S_1 .. S_N of causal linear attention (phi = elu + 1), from linattn.linear_attention_step."""
    state, states = None, []
    for t in range(k.shape[0]):
        _, state = linear_attention_step(state, (k if q is None else q)[t], k[t], v[t])
        states.append(state.kv)
    return torch.stack(states)


def state_write(*, steps=3, d=3, d_v=3, seed=0):
    """The rank-one write S_t = S_{t-1} + phi(k_t) v_t^T, one row per step."""
    _check_int("steps", steps, 1, 6)
    _check_int("d", d, 1, 6)
    _check_int("d_v", d_v, 1, 6)
    k, v = _seeded(seed, (steps, d), (steps, d_v))
    states = _states(k, v)
    features = elu_plus_one(k)
    low, high = min(states.min().item(), v.min().item(), 0.0), max(states.max().item(), v.max().item())
    row = d + 1.8
    fig, ax = _canvas(1.2 + 0.45 * (2 * d_v + 1 + d_v + 10), 0.45 * (steps * row + 1),
                      (-1.0, 3 * d_v + 9), (-0.8, steps * row + 0.6))
    for t in range(steps):
        y = (steps - 1 - t) * row + 0.6
        before = states[t - 1] if t else torch.zeros(d, d_v, dtype=torch.float64)
        _matrix(ax, before, 0, y, vmin=low, vmax=high, label=f"$S_{t}$" if t else "$S_0 = 0$")
        _symbol(ax, d_v + 0.7, y + d / 2, "+")
        _matrix(ax, features[t].unsqueeze(-1), d_v + 1.4, y, cmap=WEIGHTS, vmin=0, label=f"$\\phi(k_{t + 1})$")
        _matrix(ax, v[t].unsqueeze(0), d_v + 2.8, y + d - 1, vmin=low, vmax=high, label=f"$v_{t + 1}^\\top$")
        _symbol(ax, 2 * d_v + 3.6, y + d / 2, "=")
        _matrix(ax, states[t], 2 * d_v + 4.4, y, vmin=low, vmax=high, frame=PALETTE[3], label=f"$S_{t + 1}$")
    ax.set_title("Causal linear attention's state: one rank-one write per token", fontsize=10)
    alt = (f"{steps} steps of the update S_t = S_(t-1) + phi(k_t) v_t^T with D = {d} features and d_v = {d_v}. "
           f"Each row adds the outer product of a column of {d} positive features phi(k_t) and a row of {d_v} "
           f"values v_t to the previous state. The state stays {d} x {d_v} at every step; after step {steps} its "
           f"entries run from {states[-1].min():.2f} to {states[-1].max():.2f}.")
    return fig, alt


def causal_schemes(*, n=8, chunk=4, d=2, seed=0):
    """Four ways to compute causal linear attention, side by side: masked N x N, every prefix state
    (cumsum), one state updated step by step, and chunks with a state carried between them."""
    _check_int("n", n, 2, 16)
    _check_int("chunk", chunk, 1, n)
    _check_int("d", d, 1, 3)
    q, k, v = _seeded(seed, (n, d), (n, d), (n, d))
    sim = (elu_plus_one(q) @ elu_plus_one(k).T).tril()                 # what the masked algorithm builds
    states = _states(k, v, q)                                           # S_1 .. S_N
    upper = torch.ones(n, n, dtype=torch.bool).triu(1)
    blocks = math.ceil(n / chunk)
    same_chunk = (torch.arange(n) // chunk).unsqueeze(1) == (torch.arange(n) // chunk).unsqueeze(0)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1, 1.1, 0.7, 1]})
    vmax = sim.max().item()
    axes[0].imshow(sim.masked_fill(upper, float("nan")).numpy(), cmap=WEIGHTS, vmin=0, vmax=vmax)
    axes[0].set_title(f"masked: the N x N matrix,\n{n * (n + 1) // 2} similarities (future left out)", fontsize=9)
    axes[3].imshow(sim.masked_fill(upper | ~same_chunk, float("nan")).numpy(), cmap=WEIGHTS, vmin=0, vmax=vmax)
    for c in range(1, blocks):        # the earlier chunks of chunk c: summarised by one carried state
        top, size = c * chunk - 0.5, min(chunk, n - c * chunk)
        axes[3].add_patch(Rectangle((-0.5, top), c * chunk, size, facecolor="0.85", edgecolor="0.5", hatch="//"))
        axes[3].text(c * chunk / 2 - 0.5, top + size / 2, f"$S_{{[{c + 1}]}}$", ha="center", va="center", fontsize=9)
    carried = f"{blocks - 1} carried state" + ("s" if blocks > 2 else "")
    axes[3].set_title(f"chunks of {chunk}: masked blocks inside,\n{carried} for the rest", fontsize=9)
    for ax in (axes[0], axes[3]):
        ax.set(xlabel="key j", ylabel="query i")
    _state_grid(axes[1], states, f"cumsum: every prefix state $S_1..S_{{{n}}}$,\n{n * d * d} numbers at once")
    _state_grid(axes[2], states[-1:], f"recurrent: one state, {n} steps,\n{d * d} numbers, updated in place")
    fig.tight_layout()
    alt = (f"Four panels for N = {n} tokens and D = d_v = {d}. Masked: an N x N heat map of the similarities "
           f"phi(q_i) . phi(k_j), lower triangle only ({n * (n + 1) // 2} of {n * n} entries). Cumsum: the {n} "
           f"prefix states S_1 to S_N, {n * d * d} numbers held at once. Recurrent: a single {d} x {d} state "
           f"updated once per token. Chunked, with chunks of {chunk}: only the {blocks} lower-triangular blocks on "
           f"the diagonal are computed as similarities; everything to their left is replaced by the state carried "
           f"in from the earlier chunks (hatched; {carried}).")
    return fig, alt


def _state_grid(ax, states, title, per_row=4):
    """States (T, D, d_v) as small grids, `per_row` to a row."""
    low, high = states.min().item(), states.max().item()
    count, d, d_v = states.shape
    ax.set_axis_off()
    ax.set_aspect("equal")
    rows = math.ceil(count / per_row)
    for t in range(count):
        x, y = (t % per_row) * (d_v + 1), (rows - 1 - t // per_row) * (d + 1.2)
        _matrix(ax, states[t], x, y, vmin=low, vmax=high, numbers=False,
                label=f"$S_{{{t + 1}}}$" if count > 1 else "$S_t$, rewritten at every t", fontsize=7)
    ax.set_xlim(-0.5, per_row * (d_v + 1))
    ax.set_ylim(-1.5, max(rows * (d + 1.2), per_row))
    ax.set_title(title, fontsize=9)


def generation_memory(*, tokens=32, d=8, d_v=8, seed=0):
    """Generation memory against the number of tokens: a KV cache that grows, a state that does not."""
    _check_int("tokens", tokens, 2, 4096)
    _check_int("d", d)
    _check_int("d_v", d_v)
    q, k, v = _seeded(seed, (tokens, d), (tokens, d), (tokens, d_v))
    state = cache = None
    state_bytes, filled, allocated = [], [], []
    for t in range(tokens):
        _, state = linear_attention_step(state, q[t], k[t], v[t])
        _, cache = softmax_attention_step(cache, q[t], k[t], v[t])
        state_bytes.append(state.nbytes)
        filled.append((cache.keys.nelement() + cache.values.nelement()) * cache.keys.element_size())
        allocated.append(cache.nbytes)
    steps = list(range(1, tokens + 1))
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(steps, filled, color=PALETTE[3], linewidth=2, label="KV cache: keys and values so far")
    ax.step(steps, allocated, where="post", color=PALETTE[3], linestyle=":",
            label="KV cache buffer (doubles when full)")
    ax.plot(steps, state_bytes, color=PALETTE[0], linewidth=2, label="linear attention's state S, z")
    larger = next((t for t, c, s in zip(steps, filled, state_bytes) if c > s), None)
    if larger is not None:
        ax.axvline(larger, color="0.5", linestyle="--", linewidth=1)
    ax.set(xlabel="tokens generated t", ylabel="bytes kept (float64)",
           title=f"Memory while generating, one head, d = {d}, d_v = {d_v}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    where = f"the cache is the larger from t = {larger} on" if larger else f"the state stays larger up to t = {tokens}"
    alt = (f"Bytes kept while generating {tokens} tokens with one head (d = {d}, d_v = {d_v}, float64). The KV "
           f"cache grows by {(d + d_v) * 8} bytes per token, to {filled[-1]:,} bytes at t = {tokens} (its buffer, "
           f"doubling when full, holds {allocated[-1]:,}); linear attention's state holds {state_bytes[0]:,} bytes "
           f"at every step; {where}.")
    return fig, alt


# Chapter 8 ---------------------------------------------------------------------------------------

def state_updates(*, d=4, d_v=3, decay=0.8, beta=1.0, seed=0):
    """One step of four recurrences from the same state: the sum rule, a decay, a gate, the delta rule."""
    _check_int("d", d, 2, 6)
    _check_int("d_v", d_v, 1, 6)
    if not 0 < decay <= 1 or not 0 <= beta <= 1:
        raise ValueError(f"decay must lie in (0, 1] and beta in [0, 1]; got {decay!r}, {beta!r}")
    state, k, v = _seeded(seed, (d, d_v), (1, d), (1, d_v))
    k = k / k.norm()
    gate = torch.linspace(0.3, 1.0, d, dtype=torch.float64).unsqueeze(0)      # one number per row of S
    rules = {   # name (for the alt text), label (drawn), the new state
        "sum rule": (r"sum rule: $S + k v^\top$",
                     decayed_linear_attention(k, k, v, 1.0, initial_state=state, return_state=True)[1]),
        "decay": (f"decay: ${decay:g}\\, S + k v^\\top$",
                  decayed_linear_attention(k, k, v, decay, initial_state=state, return_state=True)[1]),
        "gate": (r"gate: $\mathrm{diag}(\alpha)\, S + k v^\top$",
                 gated_linear_attention(k, k, v, gate, initial_state=state, return_state=True)[1]),
        f"delta rule, beta = {beta:g}": (f"delta rule, $\\beta = {beta:g}$:\n"
                                         r"$S + \beta\, k\, (v - S^\top k)^\top$",
                                         delta_rule_attention(k, k, v, beta, initial_state=state,
                                                              return_state=True)[1]),
    }
    everything = torch.stack([state, *(new for _, new in rules.values())])
    low, high = everything.min().item(), everything.max().item()
    column = d_v + 2.2
    fig, ax = _canvas(1.0 + 0.42 * (5 * column + 2), 0.42 * (d + 5.5), (-1.2, 5 * column + 1), (-3.6, d + 1.6))
    _matrix(ax, state, 0, 0, vmin=low, vmax=high, label="$S_{t-1}$")
    _matrix(ax, gate.T, -1.1, 0, cmap=WEIGHTS, vmin=0, vmax=1, fontsize=6)
    ax.text(-0.6, d + 0.2, r"$\alpha$", ha="center", fontsize=8)
    for i, (label, new) in enumerate(rules.values(), 1):
        x = i * column + 0.8
        _matrix(ax, new, x, 0, vmin=low, vmax=high, frame=PALETTE[i - 1])
        ax.text(x + d_v / 2, -0.4, label, ha="center", va="top", fontsize=7)
        recalled = (k @ new)[0]
        ax.text(x + d_v / 2, d + 0.3, r"$S^\top k$ = (" + _numbers(recalled, "{:.1f}") + ")", ha="center",
                fontsize=6)
    ax.text(0, -2.6, f"the token: unit key k = ({_numbers(k[0], '{:.2f}')}), value v = ({_numbers(v[0], '{:.2f}')})",
            fontsize=7)
    ax.set_title("One step from the same state, four update rules", fontsize=10)
    recalls = "; ".join(f"{name}: ({_numbers((k @ new)[0])})" for name, (_, new) in rules.items())
    alt = (f"The same {d} x {d_v} state S_(t-1) updated by one token with a unit key k and value v = "
           f"({_numbers(v[0])}), under four rules, each drawn as the new state. The sum rule adds k v^T; the decay "
           f"first multiplies every entry by {decay:g}; the gate multiplies row i by alpha_i, from "
           f"{gate.min():.1f} to {gate.max():.1f}; the delta rule reads S^T k first and writes only the "
           f"difference to v, scaled by beta = {beta:g}. What each new state returns for k: {recalls}.")
    return fig, alt


FIGURES = {
    "weighted_average": weighted_average, "multi_head": multi_head, "kernel_weights": kernel_weights,
    "product_orders": product_orders, "state_write": state_write, "causal_schemes": causal_schemes,
    "generation_memory": generation_memory, "state_updates": state_updates,
}
