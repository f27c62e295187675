"""The slider helpers under ipywidgets 8 (this environment) and 7.7 (what Colab has long shipped)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("widget_probe.py")
IPYWIDGETS7 = ROOT / ".cache" / "ipywidgets7"


@pytest.fixture(scope="module")
def ipywidgets7_path():
    """ipywidgets 7.7 in a folder of its own, put in front of this environment's packages."""
    if not (IPYWIDGETS7 / "ipywidgets").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(IPYWIDGETS7),
                        "ipywidgets==7.7.5", "ipython_genutils==0.2.0"], check=True)
    return IPYWIDGETS7


def run_probe(extra_path=None):
    env = dict(os.environ, MPLBACKEND="Agg")
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_common(summary):
    assert summary["children"] == 3
    assert summary["rendered"][:3] == [16, 32, 64]       # one precomputed view per option
    assert summary["rendered"][3:] == [1, 2]             # live: first value, then the new one
    assert ["index", "selected_index"] in summary["links"]
    assert summary["slider_options"] == ["16", "32", "64"]


def test_ipywidgets_8_uses_a_stack():
    summary = run_probe()
    assert summary["version"].startswith("8.")
    assert summary["pages"] == "Stack"
    check_common(summary)


def test_ipywidgets_7_falls_back_to_tabs(ipywidgets7_path):
    summary = run_probe(ipywidgets7_path)
    assert summary["version"].startswith("7.7")
    assert summary["pages"] == "Tab"
    check_common(summary)


def test_empty_options_are_a_value_error():
    from linattn.show.widgets import static_slider
    with pytest.raises(ValueError, match="at least one"):
        static_slider([], lambda n: None)

