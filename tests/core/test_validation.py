"""Argument checks: the positive-int check the package shares, and every argument checked once per call."""
import functools
import sys

import pytest
import torch

import linattn
from linattn import fast, validation
from linattn.validation import check_positive_int


def test_positive_ints_pass():
    for value in (1, 7, 10 ** 9):
        check_positive_int("size", value)
    check_positive_int("size", None, allow_none=True)


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_anything_else_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"size must be a positive int, got"):
        check_positive_int("size", value)


def test_the_message_says_when_none_is_allowed():
    with pytest.raises(ValueError, match=r"threads must be a positive int or None, got 0"):
        check_positive_int("threads", 0, allow_none=True)


# ---- arguments are checked once, at the public boundary ------------------------------------------

CHECKS = {name: getattr(validation, name).__code__
          for name in ("check_qkv", "check_eps", "check_tensor", "check_positive_int", "check_scale",
                       "check_key_padding_mask", "check_state_options")}
CHECKS["check_linear_state"] = linattn.generation.check_linear_state.__code__
ONCE = ("check_scale", "check_key_padding_mask", "check_state_options", "check_linear_state")   # at most once


def checks_made(call):
    """Every check call made while call() runs: (check name, ids of its tensor or value arguments)."""
    made = []
    codes = {code: name for name, code in CHECKS.items()}

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            values = [frame.f_locals[v] for v in frame.f_code.co_varnames[:frame.f_code.co_argcount]]
            made.append((codes[frame.f_code], tuple(id(v) if isinstance(v, torch.Tensor) else repr(v)
                                                    for v in values)))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return made


def qkv(n=8, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, n, 4, generator=g, requires_grad=requires_grad) for _ in range(3)]


def mask(k):
    return (torch.arange(k.shape[-2]) < k.shape[-2] - 2).expand(k.shape[:-1])


def prefix_state(k, v, feature_map="elu"):
    return linattn.LinearAttentionState.from_prefix(k.detach(), v.detach(), feature_map=feature_map)


PUBLIC_CALLS = {
    "softmax": lambda q, k, v: linattn.softmax_attention(q, k, v),
    "softmax scaled": lambda q, k, v: linattn.softmax_attention(q, k, v, scale=0.5),
    "softmax causal": lambda q, k, v: linattn.softmax_attention(q, k, v, causal=True),
    "linear": lambda q, k, v: linattn.linear_attention(q, k, v),
    "linear causal": lambda q, k, v: linattn.linear_attention(q, k, v, causal=True),
    "linear relu": lambda q, k, v: linattn.linear_attention(q, k, v, feature_map="relu"),
    "linear relu causal": lambda q, k, v: linattn.linear_attention(q, k, v, feature_map="relu", causal=True),
    "linear poly2": lambda q, k, v: linattn.linear_attention(q, k, v, feature_map="poly2"),
    "linear scaled and masked": lambda q, k, v: linattn.linear_attention(q, k, v, scale=0.5, key_padding_mask=mask(k)),
    "linear causal, every option": lambda q, k, v: linattn.linear_attention(
        q, k, v, causal=True, scale=0.5, key_padding_mask=mask(k), initial_state=prefix_state(k, v), return_state=True),
    "linear relu causal, every option": lambda q, k, v: linattn.linear_attention(
        q, k, v, feature_map="relu", causal=True, scale=0.5, key_padding_mask=mask(k),
        initial_state=prefix_state(k, v, "relu"), return_state=True),
    "fast": lambda q, k, v: linattn.fast_linear_attention(q, k, v),
    "einsum": lambda q, k, v: linattn.einsum_linear_attention(q, k, v),
    "fast causal": lambda q, k, v: fast.fast_causal_linear_attention(q, k, v),
    "chunk loop": lambda q, k, v: fast.chunk_loop_causal_linear_attention(q.exp(), k.exp(), v),
    **{f"{name} algorithm": (lambda f: lambda q, k, v: f(q.exp(), k.exp(), v))(f)
       for name, f in linattn.CAUSAL_ALGORITHMS.items()},
}


@pytest.mark.parametrize("requires_grad", [False, True], ids=["no grad", "grad"])
@pytest.mark.parametrize("name", PUBLIC_CALLS)
def test_no_argument_is_checked_twice_on_one_call(name, requires_grad):
    q, k, v = qkv(requires_grad=requires_grad)
    made = checks_made(lambda: PUBLIC_CALLS[name](q, k, v))
    names = [check for check, _ in made]
    assert names.count("check_qkv") == 1 and names.count("check_eps") <= 1, names
    assert all(names.count(check) <= 1 for check in ONCE), names
    tensors = [ids[1] for check, ids in made if check == "check_tensor"]   # (name, tensor, ...)
    assert len(tensors) == len(set(tensors)), f"a tensor was checked more than once: {made}"


def test_the_probe_sees_a_repeated_check():
    q, k, v = qkv()
    made = checks_made(lambda: (validation.check_qkv(q, k, v), linattn.relu_features(q)))
    assert [ids[1] for check, ids in made if check == "check_tensor"].count(id(q)) == 2


SMOOTHER_CALLS = {
    "weights, exp": lambda q, k, v: linattn.attention_weights(q, k, linattn.exp_similarity),
    "weights, gaussian with a bandwidth": lambda q, k, v: linattn.attention_weights(
        q, k, functools.partial(linattn.gaussian_similarity, bandwidth=2.0)),
    "smoother, polynomial": lambda q, k, v: linattn.kernel_smoother(q, k, v, linattn.polynomial_similarity),
    "smoother, a feature map": lambda q, k, v: linattn.kernel_smoother(q, k, v, linattn.feature_map_similarity("elu")),
    "softmax step on an empty cache": lambda q, k, v: linattn.softmax_attention_step(
        None, q[..., 0, :], k[..., 0, :], v[..., 0, :]),
}


@pytest.mark.parametrize("name", SMOOTHER_CALLS)
def test_kernel_smoothers_and_steps_check_each_tensor_once(name):
    q, k, v = qkv()
    made = checks_made(lambda: SMOOTHER_CALLS[name](q, k, v))
    tensors = [ids[1] for check, ids in made if check == "check_tensor"]   # slices count as new tensors
    assert tensors and len(tensors) == len(set(tensors)) <= 3, f"more checks than tensors passed in: {made}"


def test_a_similarity_called_alone_still_checks_its_arguments():
    q, k, _ = qkv()
    with pytest.raises(ValueError, match="same leading dimensions"):
        linattn.exp_similarity(q, k[..., :3])
    with pytest.raises(ValueError, match="same leading dimensions"):
        linattn.feature_map_similarity("elu")(q, k[..., :3])
