import pytest
import torch

from linattn.learn.tasks import IGNORE, CopyTask, RecallTask, TaskMixture


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_copy_shapes_separator_and_scored_half():
    task = CopyTask(length=5, num_symbols=7)
    inputs, targets = task.sample(3, gen())
    assert inputs.shape == targets.shape == (3, task.seq_len) == (3, 10)
    assert inputs.dtype == targets.dtype == torch.long
    assert torch.all(inputs[:, 5] == 7)                          # SEP = num_symbols
    assert torch.all(inputs[:, :5] < 7) and task.vocab_size == 8
    assert torch.all(targets[:, :5] == IGNORE)
    assert torch.equal(targets[:, 5:], inputs[:, :5])            # after SEP: the first half again


def test_recall_targets_are_the_values_paired_with_the_query_keys():
    task = RecallTask(num_pairs=6, num_keys=10, num_values=5, num_queries=4)
    inputs, targets = task.sample(8, gen(1))
    assert inputs.shape == targets.shape == (8, task.seq_len) == (8, 19)
    for row_in, row_t in zip(inputs.tolist(), targets.tolist()):
        keys, values = row_in[0:12:2], row_in[1:12:2]
        assert len(set(keys)) == 6 and all(0 <= k < 10 for k in keys)
        assert all(10 <= v < 15 for v in values)
        memory = dict(zip(keys, values))
        scored = [(t, row_in[t]) for t, y in enumerate(row_t) if y != IGNORE]
        assert [t for t, _ in scored] == [12, 14, 16, 18]         # positions holding a query key
        asked = [key for _, key in scored]
        assert len(set(asked)) == 4 and set(asked) <= set(keys)
        assert [row_t[t] for t, _ in scored] == [memory[k] for k in asked]


def test_recall_queries_every_key_by_default():
    task = RecallTask(num_pairs=3, num_keys=3, num_values=4)
    inputs, targets = task.sample(5, gen())
    assert task.queries == 3 and (targets != IGNORE).sum(dim=1).tolist() == [3] * 5
    asked = inputs[:, 6::2].sort(dim=1).values
    assert torch.equal(asked, torch.arange(3).expand(5, 3))


def test_sampling_is_reproducible_and_seed_dependent():
    task = RecallTask(num_pairs=4)
    a, b, c = (task.sample(4, gen(s))[0] for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mixture_draws_from_all_tasks_and_pads_nothing():
    mixture = TaskMixture(tuple(RecallTask(p, num_keys=8, num_values=8) for p in (1, 2, 4)))
    assert mixture.vocab_size == 16 and mixture.seq_len == RecallTask(4, num_keys=8, num_values=8).seq_len
    g = gen()
    lengths = {mixture.sample(2, g)[0].shape[1] for _ in range(40)}
    assert lengths == {t.seq_len for t in mixture.tasks}


@pytest.mark.parametrize("make", [
    lambda: CopyTask(0), lambda: CopyTask(3, num_symbols=0), lambda: CopyTask(2.5),
    lambda: RecallTask(0), lambda: RecallTask(True), lambda: RecallTask(9, num_keys=8),
    lambda: RecallTask(4, num_queries=5), lambda: RecallTask(4, num_values=0),
    lambda: TaskMixture(()), lambda: TaskMixture([RecallTask(2)]),
    lambda: TaskMixture((RecallTask(2, num_keys=8), RecallTask(2, num_keys=9))),
])
def test_bad_task_settings_raise(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("task", [CopyTask(3), RecallTask(2), TaskMixture((RecallTask(1), RecallTask(2)))])
def test_bad_sample_arguments_raise(task):
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(0)
    with pytest.raises(ValueError, match="generator"):
        task.sample(2, generator=0)
