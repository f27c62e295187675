"""Input checks shared by every attention function: fail loudly, naming the shapes."""
import torch


def describe(**tensors):
    """'q (2, 8, 16), k (2, 8, 16)' - the shapes, for error messages."""
    return ", ".join(f"{name} {tuple(t.shape)}" for name, t in tensors.items())


def check_tensor(name, t, min_dim=2):
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() < min_dim:
        raise ValueError(f"{name} must have shape (..., N, d); got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype} with shape {tuple(t.shape)}")


def check_qkv(q, k, v, *, causal=False):
    """Check q (..., N, d), k (..., M, d), v (..., M, d_v) belong together."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t)
    shapes = describe(q=q, k=k, v=v)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k need the same feature size d; got {shapes}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v need the same sequence length; got {shapes}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(f"q, k and v need the same leading (batch, head) dimensions; got {shapes}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal attention needs as many queries as keys; got {shapes}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v need one dtype; got {q.dtype}, {k.dtype}, {v.dtype} for {shapes}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v need one device; got {q.device}, {k.device}, {v.device} for {shapes}")


def check_key_padding_mask(mask, k):
    """None, or a bool (..., M) tensor on k's device for keys k (..., M, d): True where a key is real.
    A leading dimension may be 1 and then holds for all (e.g. (B, 1, M) for every head of (B, H, M, d))."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = f"{mask.dtype} with shape {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"key_padding_mask must be a bool tensor, True where a key is real; got {got}")
    expected = tuple(k.shape[:-1])
    fits = (mask.dim() == len(expected) and mask.shape[-1:] == expected[-1:]
            and all(size in (1, wanted) for size, wanted in zip(mask.shape[:-1], expected[:-1])))
    if not fits:
        raise ValueError(f"key_padding_mask must have shape {expected} (a leading dimension may be 1) for "
                         f"k {tuple(k.shape)}; got {tuple(mask.shape)}")
    if mask.device != k.device:
        raise ValueError(f"key_padding_mask {tuple(mask.shape)} is on {mask.device}, k {tuple(k.shape)} on {k.device}")


def check_state_options(initial_state, return_state, causal):
    """initial_state and return_state belong to causal attention; return_state is a bool."""
    if not isinstance(return_state, bool):
        raise ValueError(f"return_state must be True or False, got {return_state!r}")
    if not causal and (initial_state is not None or return_state):
        raise ValueError("initial_state and return_state need causal=True: a state carries a causal sequence on")


def check_positive_int(name, value, *, allow_none=False):
    """An int >= 1 (bools are not sizes), or None where allow_none."""
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")


def check_scale(scale):
    """A finite positive number (bools are not scales)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        raise ValueError(f"scale must be a finite positive number, got {scale!r}")


def check_eps(eps):
    if not isinstance(eps, (int, float)) or not eps >= 0 or eps == float("inf"):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def accumulation_dtype(dtype):
    """Half precision accumulates in float32 (running sums overflow float16); others keep theirs."""
    return torch.promote_types(dtype, torch.float32)
