import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from linattn.learn.model import TinyTransformer
from linattn.learn.tasks import CopyTask, RecallTask
from linattn.learn.training import AdamW, evaluate, learning_rate, sequence_loss, torch_threads, train


def small_model(task, attention="softmax", seed=0):
    torch.manual_seed(seed)
    return TinyTransformer(task.vocab_size, task.seq_len, d_model=32, head_dim=8, attention=attention)


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_a_few_steps_reduce_the_loss(attention):
    task = CopyTask(length=4, num_symbols=6)
    run = train(small_model(task, attention), task, steps=40, batch_size=16, lr=1e-2)
    assert len(run.losses) == 40 and run.seconds > 0
    first, last = sum(run.losses[:5]) / 5, sum(run.losses[-5:]) / 5
    assert first > math.log(6) - 0.3          # starts near chance over 6 symbols (7 tokens)
    assert last < 0.8 * first


def test_training_is_reproducible_from_the_seeds():
    task = RecallTask(2, num_keys=8, num_values=8)
    a = train(small_model(task), task, steps=5, batch_size=4, seed=3).losses
    b = train(small_model(task), task, steps=5, batch_size=4, seed=3).losses
    c = train(small_model(task), task, steps=5, batch_size=4, seed=4).losses
    assert a == b and a != c


class CopyOracle(nn.Module):
    """Predicts a copy task perfectly from the inputs alone: after SEP, token t + 1 is input t - L + 1."""

    def __init__(self, task, wrong=False):
        super().__init__()
        self.task, self.wrong = task, wrong

    def forward(self, inputs):
        length, vocab = self.task.length, self.task.vocab_size
        guess = torch.zeros_like(inputs)
        guess[:, length:] = inputs[:, :length]
        if self.wrong:
            guess = (guess + 1) % self.task.num_symbols
        return nn.functional.one_hot(guess, vocab).float()


def test_evaluate_scores_only_the_scored_positions():
    task = CopyTask(length=5, num_symbols=4)
    assert evaluate(CopyOracle(task), task, batch_size=8) == 1.0
    assert evaluate(CopyOracle(task, wrong=True), task, batch_size=8) == 0.0
    inputs, targets = task.sample(2)
    assert sequence_loss(CopyOracle(task), inputs, targets) < sequence_loss(CopyOracle(task, True), inputs, targets)


def test_untrained_model_is_near_chance():
    task = RecallTask(4, num_keys=16, num_values=16)
    assert evaluate(small_model(task), task, batch_size=64) < 0.3


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    rates = [learning_rate(s, 100, 1.0, 0.1) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and max(rates) == pytest.approx(1.0) == rates[9]
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"steps": 2.0}, {"batch_size": 0}, {"lr": -1e-3},
                                    {"lr": float("nan")}, {"warmup": 1.0}, {"warmup": -0.1}])
def test_bad_training_settings_raise(kwargs):
    task = CopyTask(2)
    settings = {"steps": 2, **kwargs}
    with pytest.raises(ValueError):
        train(small_model(task), task, **settings)


def test_bad_evaluation_batch_raises():
    task = CopyTask(2)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(small_model(task), task, batch_size=0)


def test_adamw_matches_torch_optim():
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3))
    reference = nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3))
    reference.load_state_dict(ours.state_dict())
    optimisers = [AdamW(ours.parameters(), lr=1e-2, weight_decay=0.1),
                  torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)]
    x = torch.randn(16, 5)
    for _ in range(20):
        for model, optimiser in zip((ours, reference), optimisers):
            optimiser.zero_grad()
            model(x).pow(2).mean().backward()
            optimiser.step()
    for p, q in zip(ours.parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert not torch.allclose(ours[0].weight, nn.Linear(5, 7).weight)  # it moved


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            with torch_threads(bad):
                pass


def test_training_runs_where_tqdm_is_missing():
    """linattn installed with --no-deps may find no tqdm: learn must import and train without it."""
    script = """
import sys
class NoTqdm:
    def find_spec(self, name, path=None, target=None):
        if name == "tqdm" or name.startswith("tqdm."):
            raise ImportError("no tqdm here")
sys.meta_path.insert(0, NoTqdm())
from linattn.learn import experiments
from linattn.learn.model import TinyTransformer
from linattn.learn.tasks import CopyTask
from linattn.learn.training import train
task = CopyTask(length=3, num_symbols=4)
model = TinyTransformer(task.vocab_size, task.seq_len, d_model=8, head_dim=4)
run = train(model, task, steps=2, batch_size=2, progress=True)
assert len(run.losses) == 2 and "tqdm" not in sys.modules
print("trained without tqdm")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained without tqdm" in proc.stdout
