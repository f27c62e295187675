"""The paper's constant-memory gradient of causal linear attention (§3.3.1, eqs. 13-15, Algorithm 1).

Autograd through the chunked form keeps what every operation of the forward pass made (the chunks'
states, their masked blocks, copies of the features) until the backward pass has used it. This Function
keeps, like the inputs of Algorithm 1's backward, phi(Q), phi(K) and V, with the output and its
denominators (one number per token); its backward pass recomputes the states, chunk after chunk, as the
forward pass made them. With W = [V | 1] (the normaliser z is the state of the ones column) and
H = [G / den | -(G . out) / den], the gradient with respect to [numerator | denominator] when G is the
gradient with respect to the output, for chunk c of C tokens (L masks the future inside it):

  forward     O_c       = (L * phi(Q_c) phi(K_c)^T) W_c + phi(Q_c) [S | z],   then [S | z] += phi(K_c)^T W_c
  eq. 13      dphi(Q_c) = (L * H_c W_c^T) phi(K_c) + H_c [S | z]^T,           then [S | z] += phi(K_c)^T W_c
  eqs. 14-15  dphi(K_c) = (L * H_c W_c^T)^T phi(Q_c) + W_c R^T
              dW_c      = (L * phi(Q_c) phi(K_c)^T)^T H_c + phi(K_c) R,       then R += phi(Q_c)^T H_c

R is the sum of phi(Q_j) H_j^T over the tokens after the chunk. The backward pass first sweeps backward
through the chunks: it makes H, every part from inside the chunks (the masked products, L * H_c W_c^T
shared by eqs. 13 and 14) and the parts of eqs. 14-15 that go through R. Then it sweeps forward for
eq. 13's part through [S | z], reusing H. The masked C x C products of a block of chunks run as one
batched product; only the products with the states go chunk after chunk. Through phi = elu + 1 the
derivative (exp(x) for x < 0, 1 for x >= 0) is min(phi(x), 1).

phi(Q), phi(K) and H are kept chunk-major, (chunks, sequences, C, width) for each group of sequences
that one core walks, so that the chunks of a block are one batch of matrices. Beside them, V, the output
and the gradients, each pass holds a few buffers of about BLOCK_ELEMENTS numbers per group and states of
D x (d_v + 1): nothing else grows with N. Half precision is computed and accumulated in float32 (its
output is kept in float32 too) and cast back. Internal: the caller (linattn.fast.causal) has checked the
arguments.
"""
import math

import torch
from torch.autograd.function import once_differentiable

from ..validation import accumulation_dtype
from .cores import run_on_cores
from .phi import elu_plus_one_

MAX_CHUNK_SIZE = 64         # tokens per chunk, at most: for d = 64 as fast as 32, with half the steps
BLOCK_ELEMENTS = 1 << 18    # numbers per buffer (1 MiB in float32): a block's buffers stay in cache


def default_chunk_size(d):
    """About d, between 16 and MAX_CHUNK_SIZE: per token, the masked C x C products cost about C (d + d_v)
    operations and the state products d d_v, so C near d balances them."""
    return min(MAX_CHUNK_SIZE, max(16, 1 << (d - 1).bit_length()))


def causal_elu_linear_attention(q, k, v, eps=1e-6, chunk_size=None):
    """linear_attention(q, k, v, causal=True) with phi = elu + 1, with the paper's constant-memory
    backward. q, k: (..., N, d), v: (..., N, d_v); the caller has checked them."""
    return CausalEluLinearAttention.apply(q, k, v, eps, chunk_size or default_chunk_size(q.shape[-1]))


class CausalEluLinearAttention(torch.autograd.Function):
    """apply(q, k, v, eps, chunk_size): saves phi(Q), phi(K), V, the output (in float32 for half
    precision inputs) and the denominators."""

    @staticmethod
    def forward(ctx, q, k, v, eps, chunk_size):
        *lead, n, d = q.shape
        q_, k_, v_ = _flat(q, k, v)
        batch, d_v = q_.shape[0], v.shape[-1]
        work = accumulation_dtype(q.dtype)
        out = q.new_empty(batch, n, d_v)
        den = q.new_empty(batch, n, dtype=work)
        exact = out if work == q.dtype else torch.empty_like(out, dtype=work)   # the backward's copy of it
        walks = _walks(batch, n, d, d_v, chunk_size, work, q.device)
        features = [walk.features() for walk in walks]    # [phi(Q); phi(K)] of each group, chunk-major

        def forward_group(i):
            seqs = walks[i].seqs
            _forward(walks[i], q_[seqs], k_[seqs], v_[seqs], exact[seqs], den[seqs], features[i], eps)
            if exact is not out:
                out[seqs] = exact[seqs]

        run_on_cores(forward_group, range(len(walks)))
        out = out.view(*lead, n, d_v)
        ctx.save_for_backward(v, out if exact is out else exact, den, *features)
        ctx.walks, ctx.shapes = walks, (q.shape, k.shape)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        v, out, den, *features = ctx.saved_tensors
        v_, out_, grad_ = _flat(v, out, grad_out)
        want_q, want_k, want_v = ctx.needs_input_grad[:3]
        (batch, n, d_v), work = v_.shape, den.dtype
        dk, dq = (v_.new_empty(batch, n, shape[-1]) if wanted else None
                  for shape, wanted in zip(ctx.shapes[::-1], (want_k, want_q)))
        dv = torch.empty_like(v_) if want_v else None
        # dphi(Q) has two parts, one from each sweep: they add up in float32.
        grad_q = dq if dq is None or dq.dtype == work else dq.new_empty(dq.shape, dtype=work)

        def backward_group(i):
            walk, seqs = ctx.walks[i], ctx.walks[i].seqs
            h = walk.store(d_v + 1)    # H, made by the reverse sweep, used again by the query sweep
            part = (lambda x: None if x is None else x[seqs])
            _reverse_sweep(walk, v_[seqs], out_[seqs], grad_[seqs], den[seqs], features[i], h,
                           part(dk), part(dv), part(grad_q))
            if want_q:
                _query_sweep(walk, v_[seqs], features[i], h, grad_q[seqs])

        run_on_cores(backward_group, range(len(ctx.walks)))
        if grad_q is not dq:
            dq.copy_(grad_q)
        q_shape, k_shape = ctx.shapes
        return (dq.view(q_shape) if want_q else None, dk.view(k_shape) if want_k else None,
                dv.view(v.shape) if want_v else None, None, None)


def _flat(*tensors):
    """(..., N, e) -> (B, N, e), without autograd history (the Function's own passes need none)."""
    return [x.detach().reshape(math.prod(x.shape[:-2]), *x.shape[-2:]) for x in tensors]


class _Walk:
    """One core's group of sequences: its slice of the batch, its blocks of chunks and its buffers,
    chunk-major, (chunks, sequences, C, width), so that chunk c of every sequence is one contiguous
    batch of matrices and a block's chunks together are one batch too."""

    def __init__(self, seqs, size, n, d, chunk_size, block_chunks, dtype, device):
        self.seqs, self.size, self.n, self.d, self.chunk_size = seqs, size, n, d, chunk_size
        self.chunks = -(-n // chunk_size)
        self.block_chunks, self.dtype, self.device = block_chunks, dtype, device
        self._buffers = {}

    def features(self):
        """Room for phi(Q) and phi(K) of the whole sequences: (2, chunks, sequences, C, D)."""
        return torch.empty(2, self.chunks, self.size, self.chunk_size, self.d, dtype=self.dtype, device=self.device)

    def store(self, width):
        """Room for the whole sequences, chunk-major: (chunks, sequences, C, width)."""
        return torch.empty(self.chunks, self.size, self.chunk_size, width, dtype=self.dtype, device=self.device)

    def blocks(self):
        """(tokens, chunks) for every block: the slice of the sequence, the slice of chunk indices."""
        block = self.block_chunks * self.chunk_size
        for start in range(0, self.n, block):
            tokens = slice(start, min(start + block, self.n))
            yield tokens, slice(start // self.chunk_size, -(-tokens.stop // self.chunk_size))

    def buffer(self, name, chunks, width):
        """The buffer `name` as (chunks, sequences, C, width), reused block after block."""
        per_chunk = self.size * self.chunk_size * width
        if name not in self._buffers or self._buffers[name].numel() < chunks * per_chunk:
            self._buffers[name] = torch.empty(self.block_chunks * per_chunk, dtype=self.dtype, device=self.device)
        return self._buffers[name][:chunks * per_chunk].view(chunks, self.size, self.chunk_size, width)

    def state(self, width):
        return torch.zeros(self.size, self.d, width, dtype=self.dtype, device=self.device)

    def release(self):
        self._buffers.clear()


def _walks(batch, n, d, d_v, chunk_size, dtype, device):
    """Split the batch into groups, one or more per core, each walking blocks of about BLOCK_ELEMENTS."""
    if batch == 0 or n == 0:
        return []
    width = max(d, d_v + 1)
    per_group = max(1, min(BLOCK_ELEMENTS // (chunk_size * width), batch // torch.get_num_threads()))
    walks = []
    for first in range(0, batch, per_group):
        size = min(per_group, batch - first)
        # A block holds at most a quarter of the sequence, so that its buffers stay small beside the rest.
        block_chunks = max(1, min(BLOCK_ELEMENTS // (size * width * chunk_size), n // (4 * chunk_size)))
        walks.append(_Walk(slice(first, first + size), size, n, d, chunk_size, block_chunks, dtype, device))
    return walks


def _pieces(x, tokens, chunk_size):
    """The block's tokens of x (B, N, ...) as views that match a chunk-major buffer's pieces:
    [(view of x, index into the buffer)], the whole chunks first, then the partial last one."""
    full, rest = divmod(tokens.stop - tokens.start, chunk_size)
    middle = tokens.start + full * chunk_size
    pieces = []
    if full:
        pieces.append((x[:, tokens.start:middle].unflatten(1, (full, chunk_size)).transpose(0, 1), slice(0, full)))
    if rest:
        pieces.append((x[:, middle:tokens.stop], (full, slice(None), slice(0, rest))))
    return pieces


def _zero_padding(buffer, tokens):
    """Zero the rows after the sequence's end in the block's last chunk."""
    rest = (tokens.stop - tokens.start) % buffer.shape[2]
    if rest:
        buffer[-1, :, rest:].zero_()


def _store(op, buffer, other, target, tokens):
    """target[:, tokens] = op(buffer, other) (torch.mul or torch.div; None copies), computed in the
    buffer's dtype and cast to the target's on the way."""
    for view, index in _pieces(target, tokens, buffer.shape[2]):
        if op is None:
            view.copy_(buffer[index])
        elif view.dtype == buffer.dtype:
            op(buffer[index], other[index], out=view)
        else:
            view.copy_(op(buffer[index], other[index], out=buffer[index]))


def _features(walk, x, tokens, out):
    """phi(x) = elu + 1 of the block's tokens into `out`; padding rows are zero (no key, no query)."""
    scratch = walk.buffer("scratch", out.shape[0], x.shape[-1])
    for source, index in _pieces(x, tokens, walk.chunk_size):
        elu_plus_one_(source, out[index], scratch[index])
    _zero_padding(out, tokens)


def _values(walk, v, tokens, chunks):
    """W = [V | 1] for the block; padding rows are zero."""
    d_v = v.shape[-1]
    w = walk.buffer("values", chunks, d_v + 1)
    for source, index in _pieces(v, tokens, walk.chunk_size):
        w[index][..., :d_v] = source
    w[..., d_v] = 1
    _zero_padding(w, tokens)
    return w


def _output_grad(walk, out, grad_out, den, tokens, h):
    """H = [G / den | -(G . out) / den] into h: the gradient through out = numerator / den, for the block."""
    d_v = out.shape[-1]
    g, dot = h[..., :d_v], h[..., d_v]
    products = walk.buffer("scratch", h.shape[0], d_v)
    inverse = walk.buffer("inverse", h.shape[0], 1)
    for (grad, index), (output, _), (denominator, _) in zip(*(_pieces(x, tokens, walk.chunk_size)
                                                               for x in (grad_out, out, den))):
        torch.reciprocal(denominator.unsqueeze(-1), out=inverse[index])
        torch.mul(grad, inverse[index], out=g[index])              # float32 from here on
        torch.mul(g[index], output, out=products[index])
    torch.sum(products, dim=-1, out=dot).neg_()
    _zero_padding(h, tokens)   # also clears what the padding rows' uninitialised numbers made
    return h


def _flat_chunks(x):
    """(chunks, sequences, C, w) -> (chunks * sequences, C, w): one batch of matrices."""
    return x.flatten(0, 1)


def _masked_products(walk, left, right):
    """L * left_c right_c^T for every chunk of the block at once: (chunks * sequences, C, C)."""
    sim = _flat_chunks(walk.buffer("sim", left.shape[0], walk.chunk_size))
    return torch.bmm(_flat_chunks(left), _flat_chunks(right).transpose(1, 2), out=sim).tril_()


def _forward(walk, q, k, v, out, den, features, eps):
    """O_c = (L * phi(Q_c) phi(K_c)^T) W_c + phi(Q_c) [S | z], then [S | z] += phi(K_c)^T W_c."""
    d_v = v.shape[-1]
    state = walk.state(d_v + 1)                                                     # [S | z]
    for tokens, chunks in walk.blocks():
        qf, kf = features[0, chunks], features[1, chunks]
        _features(walk, q, tokens, qf)
        _features(walk, k, tokens, kf)
        w = _values(walk, v, tokens, qf.shape[0])
        both = walk.buffer("both", qf.shape[0], d_v + 1)
        torch.bmm(_masked_products(walk, qf, kf), _flat_chunks(w), out=_flat_chunks(both))
        for both_c, q_c, k_t, w_c in zip(both.unbind(), qf.unbind(), kf.transpose(2, 3).unbind(), w.unbind()):
            both_c.baddbmm_(q_c, state)
            state.baddbmm_(k_t, w_c)
        denominator = both[..., d_v:].add_(eps)
        _store(None, denominator[..., 0], None, den, tokens)
        _store(torch.div, both[..., :d_v], denominator, out, tokens)
    walk.release()


def _reverse_sweep(walk, v, out, grad_out, den, features, h_store, dk, dv, grad_q):
    """Eqs. 14-15, backward through the chunks, carrying R = sum over later tokens of phi(Q_j) H_j^T;
    and eq. 13's part from inside the chunks, (L * H_c W_c^T) phi(K_c), which shares L * H_c W_c^T."""
    d, d_v = walk.d, v.shape[-1]
    state = walk.state(d_v + 1).transpose(1, 2).contiguous()     # R^T: (d_v + 1) x D, so products end in D
    state_v = state[:, :d_v].transpose(1, 2)                     # R's value columns
    keys_and_values = dk is not None or dv is not None
    for tokens, chunks in reversed(list(walk.blocks())):
        qf, kf = features[0, chunks], features[1, chunks]
        m = qf.shape[0]
        w = _values(walk, v, tokens, m)
        h = _output_grad(walk, out, grad_out, den, tokens, h_store[chunks])
        masked = _masked_products(walk, h, w)                                       # L * H_c W_c^T
        if grad_q is not None:
            grad = walk.buffer("grad", m, d)
            torch.bmm(masked, _flat_chunks(kf), out=_flat_chunks(grad))
            _store(torch.mul, grad, _slope(walk, qf), grad_q, tokens)
        if not keys_and_values:
            continue
        grad_k, grad_v = walk.buffer("grad", m, d), walk.buffer("grad_v", m, d_v)
        torch.bmm(masked.transpose(1, 2), _flat_chunks(qf), out=_flat_chunks(grad_k))
        torch.bmm(_masked_products(walk, qf, kf).transpose(1, 2), _flat_chunks(h)[..., :d_v],
                  out=_flat_chunks(grad_v))
        chunk_views = zip(grad_k.unbind(), grad_v.unbind(), kf.unbind(), w.unbind(), qf.unbind(),
                          h.transpose(2, 3).unbind())
        for grad_k_c, grad_v_c, k_c, w_c, q_c, h_t in reversed(list(chunk_views)):   # from the later chunks
            grad_k_c.baddbmm_(w_c, state)
            grad_v_c.baddbmm_(k_c, state_v)
            state.baddbmm_(h_t, q_c)
        if dv is not None:
            _store(None, grad_v, None, dv, tokens)
        if dk is not None:
            _store(torch.mul, grad_k, _slope(walk, kf), dk, tokens)
    walk.release()


def _query_sweep(walk, v, features, h_store, grad_q):
    """Eq. 13's part from the earlier chunks, forward through them: H_c [S | z]^T, added to grad_q."""
    d_v = v.shape[-1]
    state = walk.state(d_v + 1).transpose(1, 2).contiguous()     # [S | z]^T: (d_v + 1) x D, products end in D
    for tokens, chunks in walk.blocks():
        qf, kf, h = features[0, chunks], features[1, chunks], h_store[chunks]
        m = qf.shape[0]
        w = _values(walk, v, tokens, m)
        grad = walk.buffer("grad", m, walk.d)
        for grad_c, h_c, k_c, w_t in zip(grad.unbind(), h.unbind(), kf.unbind(), w.transpose(2, 3).unbind()):
            torch.bmm(h_c, state, out=grad_c)
            state.baddbmm_(w_t, k_c)
        slope = _slope(walk, qf)
        for view, index in _pieces(grad_q, tokens, walk.chunk_size):
            view.addcmul_(grad[index], slope[index])
    walk.release()


def _slope(walk, features):
    """d phi / dx = min(phi(x), 1), from the features of the block."""
    return torch.clamp(features, max=1, out=walk.buffer("scratch", features.shape[0], walk.d))
