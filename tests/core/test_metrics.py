import math

import pytest
import torch

from linattn import attention_entropy, relative_error, total_variation


def random_weights(*shape, seed=0):
    return torch.softmax(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_entropy_of_uniform_and_one_hot_rows():
    uniform = torch.full((3, 8), 1 / 8)
    assert torch.allclose(attention_entropy(uniform), torch.full((3,), math.log(8)))
    one_hot = torch.eye(5)
    assert torch.equal(attention_entropy(one_hot), torch.zeros(5))


def test_entropy_matches_torch_categorical():
    weights = random_weights(2, 4, 7)
    expected = torch.distributions.Categorical(probs=weights).entropy()
    assert torch.allclose(attention_entropy(weights), expected, atol=1e-6)


def test_total_variation():
    p, q = random_weights(4, 6, seed=1), random_weights(4, 6, seed=2)
    assert torch.equal(total_variation(p, p), torch.zeros(4))
    assert torch.allclose(total_variation(p, q), total_variation(q, p))
    assert ((total_variation(p, q) > 0) & (total_variation(p, q) <= 1)).all()
    assert torch.equal(total_variation(torch.eye(3), torch.eye(3).roll(1, dims=1)), torch.ones(3))


def test_relative_error():
    exact = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    assert relative_error(exact, exact) == 0
    assert relative_error(1.1 * exact, exact) == pytest.approx(0.1, rel=1e-5)


@pytest.mark.parametrize("call", [
    lambda: attention_entropy(torch.tensor([[0.5, 0.6]])),                 # rows must sum to one
    lambda: attention_entropy(torch.tensor([[1.5, -0.5]])),                # and be non-negative
    lambda: attention_entropy([[1.0]]),
    lambda: attention_entropy(torch.ones(2, 1, dtype=torch.int64)),
    lambda: total_variation(torch.eye(3), torch.eye(4)),
    lambda: relative_error(torch.ones(3), torch.ones(4)),
    lambda: relative_error(torch.ones(3), torch.zeros(3)),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
