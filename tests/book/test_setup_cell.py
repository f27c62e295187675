"""The notebooks' first cell (scripts/setup_cell.py): the same in every notebook, and what it does on a
machine without linattn, with a failing git, with a stale install and with an up-to-date one.

Each scenario runs the cell in an IPython shell in a fresh process, as Jupyter and Colab run it, with a
fake `git` (and, where the cell installs, a fake `pip`) first on the path, so nothing leaves this machine.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CELL = (ROOT / "scripts" / "setup_cell.py").read_text(encoding="utf8")
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
NEEDS = next(line.split('"')[1] for line in CELL.splitlines() if line.startswith("NEEDS_LINATTN"))

RUN_CELL = """
import os, sys
sys.path[:] = [p for p in sys.path if os.path.realpath(p) != os.path.realpath({src!r})]   # hide this checkout
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
result = shell.run_cell(open({cell!r}, encoding="utf8").read())
print("STOPPED" if result.error_in_exec is not None else "DONE", "CWD=" + os.getcwd(),
      "PROFILE=" + os.environ.get("LINATTN_PROFILE", ""))
"""

FAKE_GIT = """#!/bin/sh
echo "git $*" >> "{log}"
{body}
"""

FAKE_PIP = """
import shutil, sys
from pathlib import Path
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write("pip " + " ".join(args) + "\\n")
source = Path(args[-1]) / "src" / "linattn"
if source.is_dir():   # "install" the clone: copy its package where the fake site puts packages
    shutil.copytree(source, Path({site!r}) / "linattn", dirs_exist_ok=True)
"""


def linattn_package(folder, version):
    (folder / "linattn").mkdir(parents=True, exist_ok=True)
    (folder / "linattn" / "__init__.py").write_text(f'__version__ = "{version}"\n')


def run_setup(tmp_path, *, git_body="exit 0", installed=None, clone_version=None, profile=None):
    """Run the cell; returns (stdout + stderr, the calls made to git and pip)."""
    bin_dir, site, work = tmp_path / "bin", tmp_path / "site", tmp_path / "work"
    for folder in (bin_dir, site, work):
        folder.mkdir()
    log = tmp_path / "calls.log"
    log.touch()
    (bin_dir / "git").write_text(FAKE_GIT.format(log=log, body=git_body))
    (bin_dir / "git").chmod(0o755)
    (site / "pip").mkdir()
    (site / "pip" / "__main__.py").write_text(FAKE_PIP.format(log=str(log), site=str(site)))
    (site / "pip" / "__init__.py").write_text("")
    if installed:
        linattn_package(site, installed)
    clone = tmp_path / "clone"
    if clone_version:
        linattn_package(clone / "src", clone_version)
        (clone / "book").mkdir()
    cell = tmp_path / "cell.py"
    source = CELL if profile is None else CELL.replace('PROFILE = "auto"', f'PROFILE = "{profile}"')
    cell.write_text(source)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(site),
               LINATTN_CLONE=str(clone))
    env.pop("LINATTN_PROFILE", None)
    script = RUN_CELL.format(src=str(ROOT / "src"), cell=str(cell))
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)
    return proc.stdout + proc.stderr, log.read_text().splitlines()


def test_every_notebook_starts_with_the_setup_cell():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        first = json.loads(path.read_text(encoding="utf8"))["cells"][0]
        assert first["cell_type"] == "code", path.name
        assert "".join(first["source"]) == CELL.rstrip("\n"), \
            f"{path.name}: run `python scripts/sync_setup_cell.py` to copy scripts/setup_cell.py into it"
        assert {"hide-input", "hide-output"} <= set(first["metadata"].get("tags", [])), path.name


def test_a_failing_clone_stops_with_one_clear_message(tmp_path):
    output, calls = run_setup(tmp_path, git_body='echo "fatal: unable to access the repository" >&2; exit 128')
    assert "STOPPED" in output
    assert "Setup could not clone" in output and "fatal: unable to access the repository" in output
    assert 'pip install --no-deps "git+https://github.com/' in output
    assert "Traceback" not in output and "CalledProcessError" not in output
    assert [c.split()[:2] for c in calls] == [["git", "clone"]], "nothing is installed after a failed clone"


def test_a_stale_install_is_updated_from_the_clone(tmp_path):
    output, calls = run_setup(tmp_path, installed="0.0.1", clone_version=NEEDS)
    assert "DONE" in output, output
    assert calls[0].startswith("git -C") and "pull" in calls[0]
    assert any(c.startswith("pip install") and "--no-deps" in c for c in calls)
    assert f"CWD={tmp_path / 'clone' / 'book'}" in output   # data/... paths work as in the book


def test_a_clone_that_stays_stale_is_reported(tmp_path):
    output, calls = run_setup(tmp_path, installed="0.0.1", clone_version="0.0.2")
    assert "STOPPED" in output and f"older than this notebook needs ({NEEDS})" in output
    assert "Traceback" not in output


def test_an_up_to_date_install_does_nothing_but_pick_the_profile(tmp_path):
    output, calls = run_setup(tmp_path, installed=NEEDS, profile="ci")
    assert "DONE" in output and calls == []
    assert f"CWD={tmp_path / 'work'}" in output and "PROFILE=ci" in output


def test_the_version_the_notebooks_need_is_the_package_version():
    import linattn
    assert NEEDS == linattn.__version__


@pytest.mark.parametrize("version, than, expected", [("0.1.9", "0.2.0", True), ("0.2.0", "0.2.0", False),
                                                     ("0.10.0", "0.2.0", False), ("0.2.0rc1", "0.2.0", False),
                                                     ("1", "0.2.0", False)])
def test_versions_compare_as_numbers(version, than, expected):
    namespace = {"re": re}
    exec("def older" + CELL.split("def older", 1)[1].split("\n\n\n")[0], namespace)
    assert namespace["older"](version, than) is expected
