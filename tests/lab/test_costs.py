import math

import pytest
import torch

import linattn
from linattn.lab import costs

# (batch, heads, N queries, M keys, D features, d_v value size)
SHAPES = [(1, 1, 5, 5, 3, 3), (2, 1, 16, 16, 8, 8), (2, 3, 7, 11, 4, 6), (1, 2, 64, 32, 16, 5), (3, 1, 9, 9, 1, 1)]


def feature_inputs(batch, heads, n, m, d, dv, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    qf = torch.rand(batch, heads, n, d, generator=gen, dtype=dtype) + 0.1
    kf = torch.rand(batch, heads, m, d, generator=gen, dtype=dtype) + 0.1
    v = torch.randn(batch, heads, m, dv, generator=gen, dtype=dtype)
    return qf, kf, v


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("normaliser", [True, False])
def test_flop_formulas_match_flop_counter_mode(shape, normaliser):
    batch, heads, n, m, d, dv = shape
    args = feature_inputs(*shape)
    sizes = dict(value_dim=dv, key_len=m, heads=heads, normaliser=normaliser)
    counted_quadratic = costs.count_flops(costs.quadratic_order, *args, normaliser=normaliser)
    counted_linear = costs.count_flops(costs.linear_order, *args, normaliser=normaliser)
    assert counted_quadratic == costs.quadratic_order_flops(batch, n, d, **sizes)
    assert counted_linear == costs.linear_order_flops(batch, n, d, **sizes)


def test_count_flops_of_one_matrix_product():
    a, b = torch.randn(7, 5), torch.randn(5, 3)
    assert costs.count_flops(torch.matmul, a, b) == 2 * 7 * 5 * 3
    assert costs.count_flops(torch.add, a, a) == 0  # element-wise work is not counted


def test_both_orders_agree_with_each_other_and_with_linear_attention():
    q, k, v = torch.randn(3, 2, 4, 12, 8, dtype=torch.float64).unbind(0)
    qf, kf = linattn.elu_plus_one(q), linattn.elu_plus_one(k)
    quadratic, linear = costs.quadratic_order(qf, kf, v), costs.linear_order(qf, kf, v)
    assert torch.allclose(quadratic, linear, rtol=1e-12, atol=1e-12)
    assert torch.allclose(linear, linattn.linear_attention(q, k, v), rtol=1e-10, atol=1e-12)
    unnormalised = costs.linear_order(qf, kf, v, normaliser=False)
    assert torch.allclose(unnormalised, (qf @ kf.transpose(-2, -1)) @ v, rtol=1e-12)
    assert not torch.allclose(unnormalised, linear)


def test_gradients_of_both_orders():
    qf, kf, v = (t.requires_grad_() for t in feature_inputs(1, 2, 5, 6, 3, 4))
    for order in (costs.quadratic_order, costs.linear_order):
        assert torch.autograd.gradcheck(order, (qf, kf, v))
    grads = [torch.autograd.grad(order(qf, kf, v).square().sum(), (qf, kf, v))
             for order in (costs.quadratic_order, costs.linear_order)]
    for g_quadratic, g_linear in zip(*grads):
        assert torch.allclose(g_quadratic, g_linear, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_byte_formulas_match_the_tensors_each_order_creates(shape):
    batch, heads, n, m, d, dv = shape
    qf, kf, v = feature_inputs(*shape, dtype=torch.float32)
    ones = torch.ones(m, 1)
    scores = qf @ kf.transpose(-2, -1)
    numerator, denominator = scores @ v, scores @ ones
    quadratic = (ones, scores, numerator, denominator, numerator / denominator)
    state, key_sum = kf.transpose(-2, -1) @ v, kf.transpose(-2, -1) @ ones
    numerator, denominator = qf @ state, qf @ key_sum
    linear = (ones, state, key_sum, numerator, denominator, numerator / denominator)
    sizes = dict(value_dim=dv, key_len=m, heads=heads)
    assert costs.quadratic_order_bytes(batch, n, d, **sizes) == sum(t.nbytes for t in quadratic)
    assert costs.linear_order_bytes(batch, n, d, **sizes) == sum(t.nbytes for t in linear)
    half = costs.quadratic_order_bytes(batch, n, d, **sizes, dtype=torch.float16)
    assert 2 * half == costs.quadratic_order_bytes(batch, n, d, **sizes)


def test_byte_formulas_match_the_tracked_peak():
    peak_memory = pytest.importorskip("linattn.lab.peak_memory")
    for batch, heads, n, m, d, dv in [(2, 1, 64, 64, 16, 16), (1, 3, 40, 24, 8, 5)]:
        args = feature_inputs(batch, heads, n, m, d, dv, dtype=torch.float32)
        sizes = dict(value_dim=dv, key_len=m, heads=heads)
        assert peak_memory.peak_bytes(costs.quadratic_order, *args) == costs.quadratic_order_bytes(batch, n, d, **sizes)
        assert peak_memory.peak_bytes(costs.linear_order, *args) == costs.linear_order_bytes(batch, n, d, **sizes)


@pytest.mark.parametrize("d, dv", [(1, 1), (16, 16), (64, 64), (64, 32), (256, 64)])
@pytest.mark.parametrize("normaliser", [True, False])
@pytest.mark.parametrize("cost", costs.COSTS)
def test_predicted_crossover_is_where_the_formulas_swap(d, dv, normaliser, cost):
    formulas = {"flops": (costs.quadratic_order_flops, costs.linear_order_flops),
                "bytes": (costs.quadratic_order_bytes, costs.linear_order_bytes)}[cost]
    quadratic, linear = (lambda n, f=f: f(1, n, d, value_dim=dv, normaliser=normaliser) for f in formulas)
    crossover = costs.predicted_crossover(d, value_dim=dv, normaliser=normaliser, cost=cost)
    below, above = math.floor(crossover), math.floor(crossover) + 1
    if below >= 1:
        assert quadratic(below) <= linear(below)
    assert quadratic(above) > linear(above)


def test_predicted_crossover_is_about_d_for_flops():
    for d in (16, 64, 256):
        assert costs.predicted_crossover(d, normaliser=False) == d
        assert d - 1 < costs.predicted_crossover(d) < d + 1


def test_measured_crossover_interpolates_on_log_axes():
    ns = [16, 32, 64, 128]
    # linear/quadratic time ratio 4, 2, 1/2, 1/4: equal halfway between 32 and 64 on a log axis
    quadratic = [1.0, 1.0, 1.0, 1.0]
    linear = [4.0, 2.0, 0.5, 0.25]
    assert costs.measured_crossover(ns, quadratic, linear) == pytest.approx(math.sqrt(32 * 64))
    # a noisy dip before the real crossing is ignored: the last crossing counts
    assert costs.measured_crossover(ns, quadratic, [0.5, 2.0, 0.5, 0.25]) == pytest.approx(math.sqrt(32 * 64))


def test_measured_crossover_outside_the_data_is_none():
    ns = [16, 32, 64]
    assert costs.measured_crossover(ns, [1, 1, 1], [0.5, 0.5, 0.5]) is None   # faster throughout
    assert costs.measured_crossover(ns, [1, 1, 1], [2, 0.5, 1.5]) is None     # slower at the end


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None, "8"])
def test_bad_sizes(bad):
    for formula in (costs.quadratic_order_flops, costs.linear_order_flops,
                    costs.quadratic_order_bytes, costs.linear_order_bytes):
        with pytest.raises(ValueError, match="must be a positive int"):
            formula(bad, 16, 8)
        with pytest.raises(ValueError, match="must be a positive int"):
            formula(1, 16, 8, value_dim=bad if bad is not None else 0)
    with pytest.raises(ValueError, match="must be a positive int"):
        costs.predicted_crossover(bad)


def test_bad_options():
    with pytest.raises(ValueError, match="cost must be one of"):
        costs.predicted_crossover(64, cost="time")
    with pytest.raises(ValueError, match="dtype"):
        costs.quadratic_order_bytes(1, 16, 8, dtype=torch.int32)
    with pytest.raises(ValueError, match="dtype"):
        costs.linear_order_bytes(1, 16, 8, dtype="float32")
    with pytest.raises(ValueError, match="callable"):
        costs.count_flops(42)


def test_bad_measurements():
    with pytest.raises(ValueError, match="matching lengths"):
        costs.measured_crossover([16, 32], [1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="matching lengths"):
        costs.measured_crossover([16], [1.0], [1.0])
    with pytest.raises(ValueError, match="increasing"):
        costs.measured_crossover([32, 16], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive and finite"):
        costs.measured_crossover([16, 32], [1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive and finite"):
        costs.measured_crossover([16, 32], [1.0, float("nan")], [1.0, 1.0])


def test_bad_tensors_name_the_shapes():
    qf, kf, v = feature_inputs(1, 1, 4, 5, 3, 2)
    for order in (costs.quadratic_order, costs.linear_order):
        with pytest.raises(ValueError, match=r"q \(1, 1, 4, 3\), k \(1, 1, 5, 3\), v \(1, 1, 4, 2\)"):
            order(qf, kf, v[..., :4, :])
        with pytest.raises(ValueError, match="eps"):
            order(qf, kf, v, eps=-1.0)
