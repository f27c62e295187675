"""Beyond linear attention: recurrences that change how the state S_t is updated (Chapter 8).

Chapter 5's causal linear attention adds phi(k_t) v_t^T to a state each step. The families below
keep the state S (..., d_k, d_v) and the read-out o_t = S_t^T q_t, and change the update:

  decayed_linear_attention  S_t = gamma S_{t-1} + k_t v_t^T                   RetNet (fixed decay)
  gated_linear_attention    S_t = diag(alpha_t) S_{t-1} + k_t v_t^T           GLA; Mamba-2 (scalar alpha_t)
  delta_rule_attention      S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
                                                                              DeltaNet (a_t = 1), Gated DeltaNet

Like those models, they apply no feature map and no normaliser: q and k are used as given
(scale q, or map and normalise q and k, before the call). q, k: (..., N, d_k); v: (..., N, d_v);
the output has shape (..., N, d_v). One Python step per token: reference code to read and test,
not fast code. Half-precision inputs run in float32 and the output is cast back.
With return_state=True each function also returns the final state, which can be passed back as
initial_state to continue the sequence.
"""
import torch

from .validation import accumulation_dtype, check_qkv, check_tensor


def _outer(a, b):
    return a.unsqueeze(-1) * b.unsqueeze(-2)       # (..., d_k) x (..., d_v) -> (..., d_k, d_v)


def _read(state, query):
    return (query.unsqueeze(-2) @ state).squeeze(-2)  # S^T q: (..., d_k, d_v), (..., d_k) -> (..., d_v)


def _prepare(q, k, v, initial_state):
    """Validate q, k, v and the initial state; return them in the dtype the state accumulates in."""
    check_qkv(q, k, v, causal=True)
    work = accumulation_dtype(q.dtype)
    state_shape = (*q.shape[:-2], q.shape[-1], v.shape[-1])
    if initial_state is None:
        state = torch.zeros(state_shape, dtype=work, device=q.device)
    else:
        check_tensor("initial_state", initial_state)
        if tuple(initial_state.shape) != state_shape or initial_state.device != q.device:
            raise ValueError(f"initial_state must have shape {state_shape} on {q.device}, like q {tuple(q.shape)} "
                             f"and v {tuple(v.shape)}; got {tuple(initial_state.shape)} on {initial_state.device}")
        state = initial_state.to(work)
    return q.to(work), k.to(work), v.to(work), state


def _per_token(name, value, q, *, allow_vector=False):
    """A number or tensor in [0, 1], one per token (..., N) or, if allowed, one per key feature (..., N, d_k)."""
    shapes = [tuple(q.shape[:-1])] + ([tuple(q.shape)] if allow_vector else [])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = torch.full(shapes[0], float(value), dtype=q.dtype, device=q.device)   # q's precision, not float32
    else:
        check_tensor(name, value, min_dim=1)
        if tuple(value.shape) not in shapes or value.device != q.device:
            raise ValueError(f"{name} must have shape {' or '.join(map(str, shapes))} on {q.device} "
                             f"for q {tuple(q.shape)}; got {tuple(value.shape)} on {value.device}")
    if not bool(((value >= 0) & (value <= 1)).all()):
        raise ValueError(f"{name} must lie in [0, 1] (and not be NaN); got values from "
                         f"{value.min().item():.4g} to {value.max().item():.4g}")
    return value.to(accumulation_dtype(q.dtype))


def _decay(decay, q):
    """A number or tensor in (0, 1] that broadcasts to the leading (batch, head) dimensions of q."""
    lead = tuple(q.shape[:-2])
    if isinstance(decay, (int, float)) and not isinstance(decay, bool):
        decay = torch.tensor(float(decay), dtype=q.dtype, device=q.device)
    elif not isinstance(decay, torch.Tensor) or not decay.is_floating_point() or decay.device != q.device:
        raise ValueError(f"decay must be a number or a floating-point tensor on {q.device}, got {decay!r}")
    try:
        broadcastable = torch.broadcast_shapes(decay.shape, lead) == lead
    except RuntimeError:
        broadcastable = False
    if not broadcastable:
        raise ValueError(f"decay of shape {tuple(decay.shape)} does not broadcast to the leading "
                         f"dimensions {lead} of q {tuple(q.shape)}")
    if not bool(((decay > 0) & (decay <= 1)).all()):
        raise ValueError(f"decay must lie in (0, 1]; got values from {decay.min().item():.4g} "
                         f"to {decay.max().item():.4g}")
    return decay.to(q.dtype)


def _finish(outputs, v, dtype, state, return_state):
    out = torch.stack(outputs, dim=-2) if outputs else torch.zeros_like(v)
    return (out.to(dtype), state) if return_state else out.to(dtype)


def decayed_linear_attention(q, k, v, decay, *, initial_state=None, return_state=False):
    """S_t = decay * S_{t-1} + k_t v_t^T, o_t = S_t^T q_t: retention with a fixed decay (RetNet).

    decay: a number in (0, 1], or a tensor of such numbers broadcastable to the leading dimensions
    of q, e.g. one per head (H,) for q of shape (B, H, N, d_k). decay = 1 is Chapter 5's additive
    state without feature map or normaliser.
    """
    dtype = q.dtype
    q, k, v, state = _prepare(q, k, v, initial_state)
    decay = _decay(decay, q)[..., None, None]   # broadcasts over the (d_k, d_v) state
    outputs = []
    for t in range(q.shape[-2]):
        state = decay * state + _outer(k[..., t, :], v[..., t, :])
        outputs.append(_read(state, q[..., t, :]))
    return _finish(outputs, v, dtype, state, return_state)


def gated_linear_attention(q, k, v, gate, *, initial_state=None, return_state=False):
    """S_t = diag(gate_t) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t: a data-dependent decay (GLA).

    gate: values in [0, 1], one per key feature (..., N, d_k) as in GLA, or one per token (..., N)
    as in Mamba-2. Row i of the state keeps the share gate_t[i] of what it held.
    """
    dtype = q.dtype
    q, k, v, state = _prepare(q, k, v, initial_state)
    gate = _per_token("gate", gate, q, allow_vector=True)
    if gate.shape != q.shape:
        gate = gate.unsqueeze(-1)                  # one number per token: the same for every row
    outputs = []
    for t in range(q.shape[-2]):
        state = gate[..., t, :].unsqueeze(-1) * state + _outer(k[..., t, :], v[..., t, :])
        outputs.append(_read(state, q[..., t, :]))
    return _finish(outputs, v, dtype, state, return_state)


def delta_rule_attention(q, k, v, beta, *, gate=None, initial_state=None, return_state=False):
    """The delta rule (DeltaNet): move what the state returns for k_t a fraction beta_t towards v_t.

    S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T, o_t = S_t^T q_t. With unit-norm keys and
    beta_t = 1 the old value stored under k_t is replaced by v_t. beta: a number or (..., N) tensor
    in [0, 1]. gate: None or (..., N) in [0, 1], decaying the state first (Gated DeltaNet).
    Keys should have unit L2 norm (DeltaNet normalises them); longer keys can make S grow without bound.
    """
    dtype = q.dtype
    q, k, v, state = _prepare(q, k, v, initial_state)
    beta = _per_token("beta", beta, q)
    gate = None if gate is None else _per_token("gate", gate, q)
    outputs = []
    for t in range(q.shape[-2]):
        k_t = k[..., t, :]
        if gate is not None:
            state = gate[..., t, None, None] * state
        error = v[..., t, :] - _read(state, k_t)   # what k_t should return minus what it returns now
        state = state + _outer(k_t, beta[..., t, None] * error)
        outputs.append(_read(state, q[..., t, :]))
    return _finish(outputs, v, dtype, state, return_state)
