"""How a puzzle is checked: its cases, the run of a reader's function on them, the comparison.

linattn.show.puzzles holds the puzzles themselves and `check(name, fn)`, which calls run_puzzle.
Whatever the reader's function does (raise NotImplementedError, return None or the wrong shape,
fail with any error), run_puzzle prints a "not yet" line with the case and its hint and returns
False; it never lets the error out, so a student's notebook shows no traceback.
"""
import linecache
import math
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from ..lab.costs import count_flops

STARS = {1: "★", 2: "★★", 3: "★★★"}   # minutes, a quarter hour, a project


class PuzzleMistake(Exception):
    """Raised while running a reader's function when it breaks the puzzle's contract (what it must
    return, how often it may call something); check prints the message as it is."""


@dataclass(frozen=True)
class Case:
    """One input to try: `make()` returns fresh arguments (seeded, so every call is alike)."""
    name: str
    make: Callable[[], tuple]
    hint: str
    expected: Optional[Callable[[], object]] = None       # the answer, when not reference(*make())
    max_flops: Optional[Callable[[tuple], float]] = None  # matrix-product FLOPs allowed for these args


@dataclass(frozen=True)
class Puzzle:
    name: str                  # the exercise label, e.g. "ch01-ex-causal"
    stars: int                 # 1, 2 or 3
    function: str              # the name of the function the reader writes
    reference: Callable        # reference(*args) -> what the reader's function should give
    cases: tuple
    rtol: float = 1e-6
    atol: float = 1e-9
    call: Optional[Callable] = None   # call(fn, args) -> result; default fn(*args)

    def __post_init__(self):
        if self.stars not in STARS or not self.cases:
            raise ValueError(f"puzzle {self.name!r} needs 1 to 3 stars and at least one case")

    @property
    def chapter(self):
        return int(self.name[2:4])

    @property
    def difficulty(self):
        return STARS[self.stars]


def run_puzzle(puzzle, fn):
    """Run fn on every case of `puzzle`; print "pass" or the first failing case. Returns a bool."""
    name = puzzle.name
    if not callable(fn):
        print(f"not yet - {name}: pass your function itself, as in check({name!r}, {puzzle.function}); "
              f"got {type(fn).__name__}")
        return False
    title = getattr(fn, "__name__", puzzle.function)
    total = len(puzzle.cases)
    for number, case in enumerate(puzzle.cases, 1):
        try:
            problem = _run_case(puzzle, case, fn)
        except NotImplementedError:
            print(f"not yet - {name}: {title} still raises NotImplementedError. Write its body, then run "
                  "this cell again.")
            return False
        if problem:
            print(f"not yet - {name}, case {number} of {total} ({case.name}): {problem}")
            print(f"  hint: {case.hint}")
            return False
    print(f"pass - {name} {puzzle.difficulty}: {title} agrees with the reference on all {total} cases.")
    return True


def _run_case(puzzle, case, fn):
    """The problem with fn on this case, as a sentence, or None when it is right."""
    expected = case.expected() if case.expected else puzzle.reference(*case.make())
    args = case.make()
    call = puzzle.call or (lambda f, a: f(*a))
    box = []
    try:
        if case.max_flops is None:
            box.append(call(fn, args))
        else:
            flops = count_flops(lambda: box.append(call(fn, args)))
    except NotImplementedError:
        raise
    except PuzzleMistake as mistake:
        return str(mistake)
    except Exception as error:     # the reader's code: report it, never a traceback
        return f"your function raised {describe_error(error)}"
    problem = compare(expected, box[0], rtol=puzzle.rtol, atol=puzzle.atol)
    if problem is None and case.max_flops is not None and flops > case.max_flops(args):
        problem = (f"the values are right, but it ran {flops:,} FLOPs of matrix products where "
                   f"{case.max_flops(args):,.0f} are allowed here: something grows with N x N")
    return problem


_PACKAGE_ROOTS = (str(Path(torch.__file__).parent), str(Path(__file__).parents[1]))


def describe_error(error):
    """'TypeError: message (line 3: scores = q @ k)', the line being the last one in the reader's code."""
    message = (str(error).strip().splitlines() or [""])[0]
    text = f"{type(error).__name__}: {message[:300]}" if message else type(error).__name__
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(_PACKAGE_ROOTS)]
    if frames:
        line = (frames[-1].line or linecache.getline(frames[-1].filename, frames[-1].lineno)).strip()
        if line:
            text += f" (line {frames[-1].lineno}: {line[:120]})"
    return text


def compare(expected, got, *, rtol, atol):
    """None if got matches expected (a tensor, a number, or a tuple of them), else what differs."""
    if got is None:
        return "it returned None: is the `return` missing?"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"it returned {_kind(got)} where a tuple of {len(expected)} items was expected"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(e, g, rtol=rtol, atol=atol)
            if problem:
                return f"item {i}: {problem}"
        return None
    if isinstance(expected, torch.Tensor):
        return _compare_tensors(expected, got, rtol, atol)
    return _compare_numbers(float(expected), got, rtol, atol)


def _kind(value):
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _compare_tensors(expected, got, rtol, atol):
    if not isinstance(got, torch.Tensor):
        return f"it returned {_kind(got)} where a tensor of shape {tuple(expected.shape)} was expected"
    if got.shape != expected.shape:
        return f"it returned shape {tuple(got.shape)} where {tuple(expected.shape)} was expected"
    if not expected.is_floating_point():
        if got.is_floating_point() or got.is_complex():
            return f"it returned {got.dtype} numbers where integers ({expected.dtype}) were expected"
        wrong = got.to(expected.dtype) != expected
        if wrong.any():
            index = tuple(wrong.nonzero()[0].tolist())
            return (f"{int(wrong.sum())} of {wrong.numel()} entries differ; e.g. at index {index} expected "
                    f"{expected[index].item()}, got {got[index].item()}")
        return None
    if not (got.is_floating_point() or got.is_complex()):
        got = got.to(expected.dtype)
    exact, ours = expected.detach().to(torch.float64).cpu(), got.detach().to(torch.float64).cpu()
    broken = ~torch.isfinite(ours) & torch.isfinite(exact)
    if broken.any():
        index = tuple(broken.nonzero()[0].tolist())
        return (f"it returned NaN or inf at {int(broken.sum())} of {broken.numel()} entries (first at index "
                f"{index}, where {exact[index].item():.6g} was expected)")
    allowed = atol + rtol * exact.abs()
    excess = (ours - exact).abs().nan_to_num(nan=math.inf) / allowed
    if (excess > 1).any():
        flat = int(excess.flatten().argmax())
        index = tuple(torch.unravel_index(torch.tensor(flat), excess.shape)) if excess.dim() else ()
        index = tuple(int(i) for i in index)
        difference = (ours[index] - exact[index]).abs().item()
        return (f"the values differ: at index {index} expected {exact[index].item():.6g}, got "
                f"{ours[index].item():.6g} (difference {difference:.3g}, allowed {allowed[index].item():.3g})")
    return None


def _compare_numbers(expected, got, rtol, atol):
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        try:
            got = float(got)   # numpy scalars and the like
        except (TypeError, ValueError):
            return f"it returned {_kind(got)} where a number was expected"
    if not math.isfinite(got) or abs(got - expected) > atol + rtol * abs(expected):
        return f"expected {expected:.6g}, got {got:.6g}"
    return None
