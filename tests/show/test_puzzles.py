"""linattn.show.puzzles: every puzzle accepts the book's answer, refuses a subtly wrong one on the
stated case with its hint, and answers an unfinished function with "not yet", never a traceback."""
import re
import sys
from pathlib import Path

import pytest
import torch

import linattn
from linattn.show import puzzles
from linattn.show.puzzle_check import Case, Puzzle, compare, describe_error, run_puzzle
from linattn.show.puzzles import PUZZLES, check

sys.path.insert(0, str(Path(__file__).parent))
import puzzle_answers  # noqa: E402  (the book's answers, next to this file)

NAMES = sorted(PUZZLES)


def run(capsys, name, fn):
    result = check(name, fn)
    out = capsys.readouterr().out
    assert "Traceback" not in out and "File \"" not in out
    return result, out


def test_every_chapter_has_a_puzzle_and_the_three_projects_are_there():
    assert {puzzle.chapter for puzzle in PUZZLES.values()} == set(range(1, 9))
    projects = {name for name, puzzle in PUZZLES.items() if puzzle.stars == 3}
    assert projects == {"ch05-ex-favor-causal", "ch08-ex-gla-chunks", "ch05-ex-prefill"}
    assert all(re.fullmatch(r"ch0\d-ex-[a-z0-9-]+", name) for name in NAMES)
    assert all(len(puzzle.cases) >= 4 for puzzle in PUZZLES.values())


def test_every_puzzle_has_an_answer_and_a_wrong_answer():
    assert set(puzzle_answers.ANSWERS) == set(PUZZLES) == set(puzzle_answers.WRONG)
    for name, answer in puzzle_answers.ANSWERS.items():
        assert answer.__name__ == PUZZLES[name].function, f"{name}: the book's function must be called so"


@pytest.mark.parametrize("name", NAMES)
def test_the_books_answer_passes(capsys, name):
    passed, out = run(capsys, name, puzzle_answers.ANSWERS[name])
    assert passed, out
    assert out.startswith(f"pass - {name}") and f"all {len(PUZZLES[name].cases)} cases" in out


@pytest.mark.parametrize("name", NAMES)
def test_a_stub_gets_a_polite_not_yet(capsys, name):
    def stub(*args, **kwargs):
        """What the student edition holds."""
        raise NotImplementedError
    stub.__name__ = PUZZLES[name].function
    passed, out = run(capsys, name, stub)
    assert passed is False
    assert out.startswith(f"not yet - {name}") and "NotImplementedError" in out
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize("name", NAMES)
def test_a_subtly_wrong_answer_fails_on_its_case_with_that_cases_hint(capsys, name):
    wrong, number = puzzle_answers.WRONG[name]
    case = PUZZLES[name].cases[number - 1]
    passed, out = run(capsys, name, wrong)
    assert passed is False
    assert f"not yet - {name}, case {number} of {len(PUZZLES[name].cases)} ({case.name})" in out, out
    assert f"hint: {case.hint}" in out


@pytest.mark.parametrize("name", NAMES)
def test_cases_are_seeded(name):
    for case in PUZZLES[name].cases:
        first, second = case.make(), case.make()
        same = [a is b if callable(a) else compare(a, b, rtol=0, atol=0) is None for a, b in zip(first, second)]
        assert all(same), f"{name}: {case.name} is not reproducible"


@pytest.mark.parametrize("result, words", [
    (None, "return"),
    (torch.zeros(3), "shape (3,)"),
    ("a string", "str"),
    (torch.full((6, 3), float("nan")), "NaN"),
])
def test_wrong_results_are_named(capsys, result, words):
    passed, out = run(capsys, "ch01-ex-causal", lambda q, k, v: result)
    assert passed is False and out.startswith("not yet") and words in out and "hint:" in out


def test_an_error_in_the_readers_code_is_reported_with_its_line(capsys):
    def causal_attention(q, k, v):
        scores = q @ k.T @ k   # wrong shapes for batched inputs
        return scores / 0 @ v.unsqueeze(0).unsqueeze(0).unsqueeze(0)
    passed, out = run(capsys, "ch01-ex-causal", causal_attention)
    assert passed is False
    assert re.search(r"raised RuntimeError: .*\(line \d+: return scores / 0 @ v", out), out


def test_anything_that_is_not_a_function_gets_not_yet(capsys):
    passed, out = run(capsys, "ch01-ex-causal", None)
    assert passed is False and out.startswith("not yet") and "check('ch01-ex-causal', causal_attention)" in out


def test_an_unknown_puzzle_is_a_value_error():
    with pytest.raises(ValueError, match="no puzzle named 'ch01-ex-nope'"):
        check("ch01-ex-nope", print)


def test_a_puzzle_needs_stars_and_cases():
    case = Case("c", lambda: (), "h")
    with pytest.raises(ValueError, match="1 to 3 stars"):
        Puzzle("ch01-ex-x", 4, "f", print, cases=(case,))
    with pytest.raises(ValueError, match="at least one case"):
        Puzzle("ch01-ex-x", 1, "f", print, cases=())
    with pytest.raises(ValueError, match="exists already"):
        puzzles.register(PUZZLES["ch01-ex-causal"])


def test_run_puzzle_counts_flops_only_where_a_case_asks():
    calls = []
    puzzle = Puzzle("ch09-ex-toy", 1, "f", lambda x: x @ x, cases=(
        Case("small", lambda: (torch.eye(3),), "h"),
        Case("counted", lambda: (torch.eye(4),), "use fewer FLOPs", max_flops=lambda args: 10),
    ))
    assert run_puzzle(puzzle, lambda x: calls.append(x) or x @ x) is False   # 4x4 @ 4x4 = 128 FLOPs > 10
    assert len(calls) == 2


def test_compare_handles_integers_numbers_and_tuples():
    assert compare(torch.tensor([1, 2]), torch.tensor([1, 3]), rtol=0, atol=0).startswith("1 of 2 entries differ")
    assert "integers" in compare(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]), rtol=0, atol=0)
    assert compare(2.5, torch.tensor(2.5), rtol=0, atol=0) is None
    assert compare(2.5, 2.6, rtol=0, atol=0.01) == "expected 2.5, got 2.6"
    assert compare(1.0, "1", rtol=0, atol=0) is None and "number" in compare(1.0, [1], rtol=0, atol=0)
    assert compare((torch.ones(2), 1.0), (torch.ones(2),), rtol=0, atol=0).startswith("it returned a tuple")
    assert compare((torch.ones(2), 1.0), (torch.ones(2), 2.0), rtol=0, atol=0).startswith("item 1:")


def test_describe_error_points_at_the_readers_line():
    try:
        torch.ones(2) @ torch.ones(3)
    except RuntimeError as error:
        text = describe_error(error)
    assert text.startswith("RuntimeError: ") and "(line " in text and "torch.ones(2) @ torch.ones(3)" in text


# The references are built from the package; where one is not a single package call, check it.

def test_gaussian_reference_matches_the_package_where_nothing_underflows():
    for case in PUZZLES["ch02-ex-log-weights"].cases[:3]:
        q, k, h = case.make()
        package = linattn.attention_weights(q, k, lambda a, b: linattn.gaussian_similarity(a, b, bandwidth=h))
        torch.testing.assert_close(PUZZLES["ch02-ex-log-weights"].reference(q, k, h), package)
    q, k, h = PUZZLES["ch02-ex-log-weights"].cases[3].make()
    with pytest.raises(ValueError, match="sum to zero"):      # the edge case the package refuses
        linattn.attention_weights(q, k, lambda a, b: linattn.gaussian_similarity(a, b, bandwidth=h))


@pytest.mark.parametrize("name", ["ch03-ex-stable-features", "ch05-ex-favor-causal"])
def test_random_feature_references_use_the_weights_they_are_given(name):
    puzzle = PUZZLES[name]
    q, k, v, w, *rest = puzzle.cases[0].make()
    features = linattn.PerformerFeatures(q.shape[-1], w.shape[0], seed=1)
    assert torch.equal(features.weight, w)
    causal = name == "ch05-ex-favor-causal"
    qf, kf = features(q), features(k)
    sim = qf @ kf.transpose(-2, -1)
    if causal:
        sim = sim.tril()
    torch.testing.assert_close(puzzle.reference(q, k, v, w, *rest), (sim @ v) / sim.sum(-1, keepdim=True))


def test_decayed_reference_without_decay_is_chapter_5s_masked_algorithm():
    qf, kf, v, gamma = PUZZLES["ch05-ex-decay"].cases[1].make()
    assert gamma == 1.0
    torch.testing.assert_close(PUZZLES["ch05-ex-decay"].reference(qf, kf, v, gamma),
                               linattn.masked_causal_linear_attention(qf, kf, v))


def test_heads_reference_is_the_layout_of_chapter_7s_model():
    from linattn.learn.model import CausalSelfAttention
    torch.manual_seed(0)
    layer = CausalSelfAttention(12, 3, 4, attention="linear").double()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    heads = PUZZLES["ch07-ex-heads"].reference(layer.qkv(x), 3)
    torch.testing.assert_close(layer.out(heads), layer(x))


def test_the_median_puzzle_is_timed_on_a_fake_clock():
    clock = puzzles.FakeClock()
    work = puzzles.FakeWork(clock, (2.0, 3.0))
    work()
    assert clock() == 2.0
    work()
    assert clock() == 5.0
    with pytest.raises(puzzles.PuzzleMistake, match="more than"):
        work()


def test_prefill_must_return_outputs_and_a_state(capsys):
    passed, out = run(capsys, "ch05-ex-prefill", lambda q, k, v, chunk_size: linattn.linear_attention(q, k, v))
    assert passed is False and "must return a pair (outputs, state)" in out
    passed, out = run(capsys, "ch05-ex-prefill", lambda q, k, v, chunk_size: (v, "state"))
    assert passed is False and "LinearAttentionState or a pair" in out


@pytest.mark.parametrize("name, features", [("ch04-ex-reorder", 4), ("ch04-ex-causal", 4),
                                            ("ch05-ex-favor-causal", 16), ("ch05-ex-prefill", 4),
                                            ("ch08-ex-gla-chunks", 4)])
def test_flop_limits_sit_between_the_answer_and_the_n_by_n_products(name, features):
    from linattn.lab.costs import count_flops, quadratic_order_flops
    puzzle = PUZZLES[name]
    case = next(case for case in puzzle.cases if case.max_flops is not None)
    args = case.make()
    call = puzzle.call or (lambda f, a: f(*a))
    used = count_flops(lambda: call(puzzle_answers.ANSWERS[name], args))
    n = args[3] if name == "ch05-ex-prefill" else args[0].shape[-2]
    n_by_n = quadratic_order_flops(1, n, features, value_dim=4, normaliser=False)   # phi(Q) phi(K)^T and its V
    assert used < case.max_flops(args) < n_by_n
