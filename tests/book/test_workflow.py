"""Publishing: the GitHub Actions workflow (which cannot run here, so its structure is checked),
the parts of _config.yml a published book needs, and the licence files."""
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@pytest.fixture(scope="module")
def workflow():
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf8"))


def triggers(workflow):
    # YAML 1.1 reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    return {on: None} if isinstance(on, str) else dict.fromkeys(on) if isinstance(on, list) else on


def steps_running(job, command):
    """Indices of the job's steps whose shell script runs `command` as a command of its own."""
    pattern = re.compile(rf"(^|[;&|]\s*){re.escape(command)}\s*($|[;&|#])", re.M)
    return [i for i, step in enumerate(job["steps"]) if pattern.search(step.get("run", ""))]


def job_running(workflow, command):
    jobs = [name for name, job in workflow["jobs"].items() if steps_running(job, command)]
    assert len(jobs) == 1, f"expected exactly one job running `{command}`, found {jobs}"
    return jobs[0], workflow["jobs"][jobs[0]]


def resolve(text, env):
    """Expand ${VAR}, $VAR and ${{ env.VAR }} from the workflow's env."""
    text = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: str(env.get(m.group(1), m.group(0))), text)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: str(env.get(m.group(1), m.group(0))), text)


def readme_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    return set(re.findall(r"^(make \w+)", readme, re.M))


def test_runs_on_pushes_and_pull_requests(workflow):
    on = triggers(workflow)
    assert "push" in on and "pull_request" in on
    push = on["push"] or {}
    assert not push.get("branches") or "main" in push["branches"]


def test_the_readme_commands_are_the_ones_ci_runs(workflow):
    commands = readme_commands()
    assert {"make test", "make book"} <= commands, f"README.md names {sorted(commands)}"
    makefile = (ROOT / "Makefile").read_text(encoding="utf8")
    for command in ("make test", "make book"):
        job_running(workflow, command)
        target = command.split()[1]
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no `{target}` target"


def test_tests_run_on_the_cpu_build_of_pytorch(workflow):
    _, job = job_running(workflow, "make test")
    env = {**workflow.get("env", {}), **job.get("env", {})}
    scripts = [resolve(step.get("run", ""), env) for step in job["steps"]]
    installs = [i for i, script in enumerate(scripts)
                if re.search(rf'pip install .*torch.*--index-url[ =]"?{re.escape(CPU_INDEX)}"?(\s|$)', script)]
    assert installs, f"no step installs torch with --index-url {CPU_INDEX}"
    assert installs[0] < steps_running(job, "make test")[0], "torch must be installed before `make test`"
    # The Makefile must take TORCH_SPEC from the environment (`?=`), and CI must pin the same torch
    # as .ci/run, the project's own CI entry point.
    assert re.search(r"^TORCH_SPEC\s*\?=", (ROOT / "Makefile").read_text(encoding="utf8"), re.M)
    ci_run = re.search(r'TORCH_SPEC="?([^"\s]+)', (ROOT / ".ci" / "run").read_text(encoding="utf8"))
    assert ci_run and env.get("TORCH_SPEC") == ci_run.group(1)
    assert f'pip install "{env["TORCH_SPEC"]}"' in scripts[installs[0]]


def test_pip_downloads_are_cached(workflow):
    for command in ("make test", "make book"):
        _, job = job_running(workflow, command)
        setups = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert setups and setups[0]["with"].get("cache") == "pip", f"the `{command}` job caches no pip downloads"
        paths = setups[0]["with"].get("cache-dependency-path", "")
        assert "requirements.txt" in paths and "pyproject.toml" in paths


def test_python_version_satisfies_the_package(workflow):
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf8")   # (tomllib needs Python 3.11)
    minimum = tuple(int(x) for x in re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)', pyproject).groups())
    version = tuple(int(x) for x in str(workflow["env"]["PYTHON_VERSION"]).split("."))
    assert version >= minimum


def test_the_book_is_built_after_the_tests_and_deployed_from_main_only(workflow):
    jobs = workflow["jobs"]
    test_job, _ = job_running(workflow, "make test")
    book_name, book = job_running(workflow, "make book")
    assert test_job in ([book["needs"]] if isinstance(book["needs"], str) else book["needs"])
    upload = [s for s in book["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert len(upload) == 1 and upload[0]["with"]["path"].rstrip("/") == "_build/html"
    assert "_build/html" in (ROOT / "Makefile").read_text(encoding="utf8"), "make book must write _build/html"

    deploys = [name for name, job in jobs.items()
               if any(s.get("uses", "").startswith("actions/deploy-pages@") for s in job["steps"])]
    assert len(deploys) == 1
    deploy = jobs[deploys[0]]
    assert deploy["needs"] == book_name or book_name in deploy["needs"]
    condition = deploy.get("if", "")
    assert "github.ref == 'refs/heads/main'" in condition and "github.event_name == 'push'" in condition
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"


def test_only_the_deploy_job_may_write(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        writes = {k for k, v in (job.get("permissions") or {}).items() if v == "write"}
        uses_deploy = any(s.get("uses", "").startswith("actions/deploy-pages@") for s in job["steps"])
        assert not writes or uses_deploy, f"job {name} asks for write access: {writes}"


def test_actions_are_pinned_to_a_major_version(workflow):
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]


# --- _config.yml and licences -----------------------------------------------------------------

@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))


def test_config_has_what_a_published_book_needs(config):
    assert config["title"] and config["author"]
    for path in (config["logo"], config["html"]["favicon"]):
        image = ROOT / path
        assert image.is_file(), f"{path} is missing"
        assert image.suffix != ".svg" or "<svg" in image.read_text(encoding="utf8")
    for button in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
        assert config["html"].get(button) is True, f"html.{button} is not on"
    launch = config["launch_buttons"]
    assert launch["colab_url"] == "https://colab.research.google.com"
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert config["repository"]["url"].startswith("https://github.com/")


def test_licences():
    mit = (ROOT / "LICENSE").read_text(encoding="utf8")
    assert mit.startswith("MIT License") and "Permission is hereby granted, free of charge" in mit
    text_licences = sorted(ROOT.glob("LICENSE-*.md"))
    assert text_licences, "no licence file for the text (LICENSE-CC-BY-4.0.md)"
    cc = text_licences[0].read_text(encoding="utf8")
    assert "Creative Commons Attribution 4.0 International Public License" in cc
    assert "Section 8 – Interpretation" in cc                 # the whole legal code, not a summary
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf8")
    assert re.search(r'^license\s*=.*"MIT"', pyproject, re.M), "pyproject.toml must declare the MIT licence"
