"""The package's layers: import-linter's contracts hold, and every core module is under contract."""
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import linattn
ROOT = Path(__file__).resolve().parents[1]

CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
SUBPACKAGES = {"fast", "lab", "learn", "show"}


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken" in proc.stdout


def test_every_module_of_the_core_is_under_the_core_contract():
    top_level = {m.name for m in pkgutil.iter_modules(linattn.__path__)}
    assert SUBPACKAGES <= top_level
    core_contract = next(c for c in CONTRACTS if c["name"].startswith("The core imports no layer"))
    listed = {name.removeprefix("linattn.") for name in core_contract["source_modules"]}
    assert listed == top_level - SUBPACKAGES, "a new core module must join the core contract in pyproject.toml"
