"""Train and evaluate a model on a task from linattn.learn.tasks: fresh seeded batches, AdamW, cosine schedule."""
import contextlib
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

try:
    from tqdm.auto import tqdm
except ImportError:   # linattn installed with --no-deps where tqdm is missing: no progress bars
    def tqdm(iterable, **_):
        return iterable

from .tasks import IGNORE
from ..validation import check_positive_int


@dataclass
class TrainingRun:
    """What train() returns: the loss at each step, the wall-clock seconds and the settings."""
    losses: list
    seconds: float
    steps: int
    batch_size: int
    lr: float
    seed: int


@contextlib.contextmanager
def torch_threads(threads):
    """Run the block with `threads` intra-op threads (None: leave torch's setting), then restore it.

    A model this small gains little from several threads, and on shared cores loses badly: each
    small operation waits for its slowest thread.
    """
    check_positive_int("threads", threads, allow_none=True)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class AdamW:
    """Adam with decoupled weight decay, as torch.optim.AdamW computes it (the tests compare the two).

    Written out because torch.optim's optimisers import the torch._dynamo compiler on first use,
    which takes seconds: longer than the small training runs of Chapter 7 themselves.
    """

    def __init__(self, params, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        self.steps = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.steps += 1
        beta1, beta2 = self.betas
        correction1, correction2 = 1 - beta1 ** self.steps, 1 - beta2 ** self.steps
        for p, (mean, square) in zip(self.params, self.moments):
            if p.grad is None:
                continue
            p.mul_(1 - self.lr * self.weight_decay)
            mean.lerp_(p.grad, 1 - beta1)
            square.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denominator = (square.sqrt() / math.sqrt(correction2)).add_(self.eps)
            p.addcdiv_(mean, denominator, value=-self.lr / correction1)


def sequence_loss(model, inputs, targets):
    """Mean cross-entropy over the scored positions (targets != IGNORE)."""
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def _check_training_args(steps, batch_size, lr, warmup):
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        check_positive_int(name, value)
    if not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"lr must be a finite positive number, got {lr!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}")


def learning_rate(step, steps, lr, warmup):
    """Linear warm-up over the first `warmup` share of the steps, then cosine decay to 10 % of lr."""
    warm = max(1, round(warmup * steps))
    if step < warm:
        return lr * (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model, task, *, steps, batch_size=32, lr=1e-2, seed=0, warmup=0.1, weight_decay=0.01,
          device="cpu", threads=1, progress=False):
    """Train `model` in place for `steps` steps on fresh batches of `task` drawn from a generator seeded by `seed`."""
    _check_training_args(steps, batch_size, lr, warmup)
    model.to(device).train()
    optimiser = AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    start = time.perf_counter()
    with torch_threads(threads):
        for step in tqdm(range(steps), disable=not progress, leave=False):
            optimiser.lr = learning_rate(step, steps, lr, warmup)
            inputs, targets = (t.to(device) for t in task.sample(batch_size, generator))
            loss = sequence_loss(model, inputs, targets)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            losses.append(loss.item())
    return TrainingRun(losses, time.perf_counter() - start, steps, batch_size, lr, seed)


@torch.no_grad()
def evaluate(model, task, *, batch_size=256, seed=12345, device="cpu", threads=1):
    """Share of scored positions where the most likely next token is the right one, on a held-out batch."""
    check_positive_int("batch_size", batch_size)
    model.to(device).eval()
    inputs, targets = (t.to(device) for t in task.sample(batch_size, torch.Generator().manual_seed(seed)))
    scored = targets != IGNORE
    with torch_threads(threads):
        predictions = model(inputs).argmax(dim=-1)
    return (predictions[scored] == targets[scored]).float().mean().item()
