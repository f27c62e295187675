"""Generation one token at a time: linear attention's fixed-size state against softmax's growing KV cache.

linear_attention_step  carries S = sum phi(k) v^T (D x d_v) and z = sum phi(k) (D): the same memory at
                       every position, and the same work per token however long the context is.
softmax_attention_step keeps every key and value seen so far (a KV cache): memory and work per token
                       grow with the context.
Both take one token, q_t and k_t of shape (..., d) and v_t of shape (..., d_v), and return
(out_t, new_state); pass state=None for the first token.
"""
from typing import NamedTuple

import torch

from .feature_maps import apply_feature_map, trusted_feature_map
from .validation import accumulation_dtype, check_eps, check_scale, check_tensor, describe


def _check_token(q_t, k_t, v_t):
    for name, t in (("q_t", q_t), ("k_t", k_t), ("v_t", v_t)):
        check_tensor(name, t, min_dim=1)
    if q_t.shape[-1] != k_t.shape[-1]:
        raise ValueError(f"q_t and k_t need the same feature size d; got {describe(q_t=q_t, k_t=k_t, v_t=v_t)}")
    if not (q_t.shape[:-1] == k_t.shape[:-1] == v_t.shape[:-1]):
        raise ValueError("q_t, k_t and v_t need the same leading (batch, head) dimensions; "
                         f"got {describe(q_t=q_t, k_t=k_t, v_t=v_t)}")
    if not (q_t.dtype == k_t.dtype == v_t.dtype) or not (q_t.device == k_t.device == v_t.device):
        raise ValueError(f"q_t, k_t and v_t need one dtype and device; got {q_t.dtype}/{q_t.device}, "
                         f"{k_t.dtype}/{k_t.device}, {v_t.dtype}/{v_t.device} "
                         f"for {describe(q_t=q_t, k_t=k_t, v_t=v_t)}")


def _nbytes(*tensors):
    return sum(t.nelement() * t.element_size() for t in tensors)


class LinearAttentionState(NamedTuple):
    """The recurrent state of causal linear attention (float32 for half-precision inputs)."""
    kv: torch.Tensor      # S = sum_j phi(k_j) v_j^T: (..., D, d_v)
    k_sum: torch.Tensor   # z = sum_j phi(k_j): (..., D)

    @property
    def nbytes(self):
        return _nbytes(self.kv, self.k_sum)

    def joined(self):
        """[S | z]: (..., D, d_v + 1), z as the state of one more value column, all ones."""
        return torch.cat([self.kv, self.k_sum.unsqueeze(-1)], dim=-1)

    @classmethod
    def from_joined(cls, joined):
        """The state from [S | z] (..., D, d_v + 1)."""
        return cls(joined[..., :-1], joined[..., -1])

    @classmethod
    def from_prefix(cls, k, v, *, feature_map="elu"):
        """The state after reading keys k (..., N, d) and values v (..., N, d_v): a prefill."""
        check_tensor("k", k)
        check_tensor("v", v)
        if k.shape[:-1] != v.shape[:-1] or k.dtype != v.dtype or k.device != v.device:
            raise ValueError(f"k and v need the same (..., N) dimensions, dtype and device; got {describe(k=k, v=v)}")
        work = accumulation_dtype(k.dtype)
        kf = apply_feature_map(trusted_feature_map(feature_map), k.to(work), "k")
        return cls(kf.transpose(-2, -1) @ v.to(work), kf.sum(dim=-2))


def check_linear_state(state, *, lead, features, d_v, dtype, device, name="state", needs="this token"):
    """state must be a LinearAttentionState with kv (*lead, features, d_v) and k_sum (*lead, features),
    of `dtype` on `device`; `name` and `needs` say whose state and what it is for, in the messages."""
    if not isinstance(state, LinearAttentionState) or not all(isinstance(t, torch.Tensor) for t in state):
        raise ValueError(f"{name} must be None or a LinearAttentionState of two tensors, got {type(state).__name__}")
    expected_kv, expected_sum = (*lead, features, d_v), (*lead, features)
    if tuple(state.kv.shape) != expected_kv or tuple(state.k_sum.shape) != expected_sum:
        raise ValueError(f"{name} holds kv {tuple(state.kv.shape)} and k_sum {tuple(state.k_sum.shape)}, "
                         f"but {needs} needs kv {expected_kv} and k_sum {expected_sum}")
    if {state.kv.dtype, state.k_sum.dtype} != {dtype} or {state.kv.device, state.k_sum.device} != {device}:
        raise ValueError(f"{name} is {state.kv.dtype} on {state.kv.device} (k_sum {state.k_sum.dtype} on "
                         f"{state.k_sum.device}); {needs} needs {dtype} on {device}")


def linear_attention_step(state, q_t, k_t, v_t, *, feature_map="elu", eps=1e-6):
    """One token of causal linear attention: S += phi(k_t) v_t^T, z += phi(k_t), then read with phi(q_t).

    Stepping through a sequence reproduces linear_attention(q, k, v, causal=True) row by row.
    """
    _check_token(q_t, k_t, v_t)
    check_eps(eps)
    phi = trusted_feature_map(feature_map)
    work = accumulation_dtype(q_t.dtype)
    # Feature maps act on (..., N, d); a single token is N = 1.
    qf = apply_feature_map(phi, q_t.to(work).unsqueeze(-2), "q_t").squeeze(-2)
    kf = apply_feature_map(phi, k_t.to(work).unsqueeze(-2), "k_t").squeeze(-2)
    v = v_t.to(work)
    if state is None:
        state = LinearAttentionState(kf.new_zeros(*kf.shape, v.shape[-1]), torch.zeros_like(kf))
    check_linear_state(state, lead=kf.shape[:-1], features=kf.shape[-1], d_v=v.shape[-1], dtype=kf.dtype,
                       device=kf.device)
    kv = state.kv + kf.unsqueeze(-1) * v.unsqueeze(-2)
    k_sum = state.k_sum + kf
    numerator = (qf.unsqueeze(-2) @ kv).squeeze(-2)
    denominator = (qf * k_sum).sum(dim=-1, keepdim=True)
    return (numerator / (denominator + eps)).to(q_t.dtype), LinearAttentionState(kv, k_sum)


def _with_capacity(buffer, capacity):
    """A larger buffer along the sequence dimension, starting with the contents of `buffer`."""
    grown = buffer.new_empty(*buffer.shape[:-2], capacity, buffer.shape[-1])
    grown[..., :buffer.shape[-2], :] = buffer
    return grown


class KVCache:
    """Every key and value seen so far, for inference. Built from a prefix k (..., N, d), v (..., N, d_v).

    The buffers double when full, so an append costs O(1) on average; `keys` and `values` are views
    of the filled part.
    """

    def __init__(self, k, v):
        check_tensor("k", k)
        check_tensor("v", v)
        if k.shape[:-1] != v.shape[:-1] or k.dtype != v.dtype or k.device != v.device:
            raise ValueError(f"k and v need the same (..., N) dimensions, dtype and device; got {describe(k=k, v=v)}")
        self._keys, self._values = k.clone(), v.clone()
        self.length = k.shape[-2]

    @classmethod
    def _empty_for(cls, k_t, v_t):
        """An empty cache shaped for tokens k_t (..., d), v_t (..., d_v) that the caller has checked."""
        cache = cls.__new__(cls)
        cache._keys, cache._values = k_t.unsqueeze(-2)[..., :0, :].clone(), v_t.unsqueeze(-2)[..., :0, :].clone()
        cache.length = 0
        return cache

    @property
    def keys(self):
        return self._keys[..., :self.length, :]

    @property
    def values(self):
        return self._values[..., :self.length, :]

    @property
    def nbytes(self):
        """Bytes the buffers hold (their capacity, not only the filled part)."""
        return _nbytes(self._keys, self._values)

    def append(self, k_t, v_t):
        if self.length == self._keys.shape[-2]:
            capacity = max(1, 2 * self.length)
            self._keys = _with_capacity(self._keys, capacity)
            self._values = _with_capacity(self._values, capacity)
        self._keys[..., self.length, :] = k_t
        self._values[..., self.length, :] = v_t
        self.length += 1


def softmax_attention_step(cache, q_t, k_t, v_t, *, scale=None):
    """One token of causal softmax attention with a KV cache: append k_t, v_t, then attend over all.

    The cache is updated in place and returned as the new state. Work and memory grow with its length.
    """
    _check_token(q_t, k_t, v_t)
    if scale is None:
        scale = q_t.shape[-1] ** -0.5
    else:
        check_scale(scale)
    if cache is None:
        cache = KVCache._empty_for(k_t, v_t)
    if not isinstance(cache, KVCache):
        raise ValueError(f"cache must be None or a KVCache, got {type(cache).__name__}")
    keys, values = cache.keys, cache.values
    if (keys.shape[:-2] != k_t.shape[:-1] or keys.shape[-1] != k_t.shape[-1] or values.shape[-1] != v_t.shape[-1]
            or keys.dtype != k_t.dtype or keys.device != k_t.device):
        raise ValueError(f"cache holds keys {tuple(keys.shape)} and values {tuple(values.shape)} "
                         f"({keys.dtype} on {keys.device}); this token has {describe(k_t=k_t, v_t=v_t)} "
                         f"({k_t.dtype} on {k_t.device})")
    cache.append(k_t, v_t)
    work = accumulation_dtype(q_t.dtype)     # half precision: scores in float32, as softmax_attention
    scores = (cache.keys.to(work) @ (q_t.to(work) * scale).unsqueeze(-1)).squeeze(-1)   # (..., length)
    weights = torch.softmax(scores, dim=-1)
    out = (weights.unsqueeze(-2) @ cache.values.to(work)).squeeze(-2)
    return out.to(v_t.dtype), cache
