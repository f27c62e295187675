"""Shared fixtures: the CI size profile, and one build of the whole book per test session."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LINATTN_PROFILE", "ci")

SPHINX_WARNING = re.compile(r"(WARNING|ERROR|CRITICAL):")


class BuiltBook:
    def __init__(self, html, log, returncode):
        self.html, self.log, self.returncode = html, log, returncode

    @property
    def warnings(self):
        return [line for line in self.log.splitlines() if SPHINX_WARNING.search(line)]


@pytest.fixture(scope="session")
def built_book():
    """The book as `make book` builds it (-W -n --keep-going), under the ci profile, in .cache/ci-book.

    With $LINATTN_BUILT_BOOK set to the --path-output folder of a build made that way, the tests
    read that build (its log in build.log there, if any) instead of building again."""
    if os.environ.get("LINATTN_BUILT_BOOK"):
        out = Path(os.environ["LINATTN_BUILT_BOOK"])
        if not (out / "build.log").is_file():
            pytest.fail(f"$LINATTN_BUILT_BOOK is {out}, which has no build.log (the build's output, saved there)")
        log = (out / "build.log").read_text()
        return BuiltBook(out / "_build" / "html", log, 0 if "build succeeded" in log else 1)
    out = ROOT / ".cache" / "ci-book"
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    env = dict(os.environ, LINATTN_PROFILE="ci")
    env.pop("MPLBACKEND", None)  # the kernels must use the inline backend to record figures
    proc = subprocess.run([str(jupyter_book), "build", str(ROOT), "--all", "-W", "-n", "--keep-going",
                           "--path-output", str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(log)
    return BuiltBook(out / "_build" / "html", log, proc.returncode)


@pytest.fixture
def one_thread():
    """Run the test on one torch thread (tiny sizes gain nothing from threads, and on a busy machine each
    threaded operation can wait), then restore the count; tests on several cores set their own."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
