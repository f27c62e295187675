"""Synthetic sequence tasks for Chapter 7, generated on the fly from a seeded torch.Generator.

Each task samples (inputs, targets) of shape (batch, seq_len) for next-token prediction: targets[:, t]
is the token that should follow inputs[:, :t + 1], or IGNORE where the position is not scored.
"""
from dataclasses import dataclass

import torch

from ..validation import check_positive_int

IGNORE = -100  # the default ignore_index of torch.nn.functional.cross_entropy


def _check_sample_args(batch_size, generator):
    check_positive_int("batch_size", batch_size)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _shift(sequences, scored):
    """Inputs are the sequences without their last token; targets the next token where `scored`."""
    targets = sequences[:, 1:].masked_fill(~scored[:, 1:], IGNORE)
    return sequences[:, :-1], targets


@dataclass(frozen=True)
class CopyTask:
    """x_1 ... x_L SEP x_1 ... x_L: after the separator, repeat the first half.

    Content tokens are 0 .. num_symbols - 1 and SEP is num_symbols; only the copied half is scored.
    """
    length: int
    num_symbols: int = 16

    def __post_init__(self):
        check_positive_int("length", self.length)
        check_positive_int("num_symbols", self.num_symbols)

    @property
    def vocab_size(self):
        return self.num_symbols + 1

    @property
    def seq_len(self):
        return 2 * self.length  # 2L + 1 tokens, minus the last one as input

    def sample(self, batch_size, generator=None):
        _check_sample_args(batch_size, generator)
        content = torch.randint(self.num_symbols, (batch_size, self.length), generator=generator)
        sep = torch.full((batch_size, 1), self.num_symbols)
        sequences = torch.cat([content, sep, content], dim=1)
        scored = torch.zeros_like(sequences, dtype=torch.bool)
        scored[:, self.length + 1:] = True
        return _shift(sequences, scored)


@dataclass(frozen=True)
class RecallTask:
    """Associative recall: k_1 v_1 ... k_P v_P, then queries k v where each query key is one of the k_i.

    Keys are tokens 0 .. num_keys - 1 (distinct within a sequence), values num_keys .. num_keys +
    num_values - 1. The model is scored on the value that follows each query key, which it can only
    know by recalling the pair from the context.
    """
    num_pairs: int
    num_keys: int = 128
    num_values: int = 64
    num_queries: int = None  # default: every key is queried once, in a random order

    def __post_init__(self):
        for name in ("num_pairs", "num_keys", "num_values"):
            check_positive_int(name, getattr(self, name))
        if self.num_pairs > self.num_keys:
            raise ValueError(f"num_pairs ({self.num_pairs}) cannot exceed num_keys ({self.num_keys}): "
                             "keys are distinct within a sequence")
        if self.num_queries is not None:
            check_positive_int("num_queries", self.num_queries)
            if self.num_queries > self.num_pairs:
                raise ValueError(f"num_queries ({self.num_queries}) cannot exceed num_pairs ({self.num_pairs})")

    @property
    def queries(self):
        return self.num_pairs if self.num_queries is None else self.num_queries

    @property
    def vocab_size(self):
        return self.num_keys + self.num_values

    @property
    def seq_len(self):
        return 2 * (self.num_pairs + self.queries) - 1

    def sample(self, batch_size, generator=None):
        _check_sample_args(batch_size, generator)
        p, q = self.num_pairs, self.queries
        keys = torch.rand(batch_size, self.num_keys, generator=generator).argsort(dim=1)[:, :p]
        values = self.num_keys + torch.randint(self.num_values, (batch_size, p), generator=generator)
        asked = torch.rand(batch_size, p, generator=generator).argsort(dim=1)[:, :q]
        pairs = torch.stack([keys, values], dim=2).flatten(1)
        questions = torch.stack([keys.gather(1, asked), values.gather(1, asked)], dim=2).flatten(1)
        sequences = torch.cat([pairs, questions], dim=1)
        scored = torch.zeros_like(sequences, dtype=torch.bool)
        scored[:, 2 * p + 1::2] = True  # the value after each query key
        return _shift(sequences, scored)


@dataclass(frozen=True)
class TaskMixture:
    """Each batch comes from one of `tasks`, chosen uniformly: e.g. recall with 1 .. P pairs."""
    tasks: tuple

    def __post_init__(self):
        if not isinstance(self.tasks, tuple) or not self.tasks:
            raise ValueError(f"tasks must be a non-empty tuple of tasks, got {self.tasks!r}")
        sizes = {task.vocab_size for task in self.tasks}
        if len(sizes) != 1:
            raise ValueError(f"the tasks of a mixture must share one vocabulary; got sizes {sorted(sizes)}")

    @property
    def vocab_size(self):
        return self.tasks[0].vocab_size

    @property
    def seq_len(self):
        return max(task.seq_len for task in self.tasks)

    def sample(self, batch_size, generator=None):
        _check_sample_args(batch_size, generator)
        choice = torch.randint(len(self.tasks), (1,), generator=generator).item()
        return self.tasks[choice].sample(batch_size, generator)
