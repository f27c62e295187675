#@title Setup: install `linattn` where it is missing (Colab) and pick a size profile
# Where linattn is installed already (a local clone, the book build) this only checks its version.
# On Colab it clones the book's repository, installs the companion package without its dependencies
# (Colab's own torch, matplotlib and ipywidgets stay as they are) and moves into book/, so that
# paths such as data/... work as they do locally.
import importlib, importlib.util, os, re, subprocess, sys
REPOSITORY_URL = "https://github.com/linear-attention-hands-on/linear-attention-hands-on"
NEEDS_LINATTN = "0.2.0"   # the linattn version this notebook was written for
PROFILE = "auto"  # @param ["auto", "ci", "cpu", "gpu"]
CLONE = os.environ.get("LINATTN_CLONE") or (
    "/content/linear-attention-hands-on" if os.path.isdir("/content")   # Colab: shown in its file browser
    else os.path.expanduser("~/linear-attention-hands-on"))
MANUAL = f'pip install --no-deps "git+{REPOSITORY_URL}"  (then restart the runtime and run all again)'


class SetupFailed(Exception):
    def _render_traceback_(self):   # Jupyter shows this message alone, not a traceback
        return [str(self)]


def run_step(what, command):
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1]
        raise SetupFailed(f"Setup could not {what}: {last}\nInstall linattn by hand instead: {MANUAL}")


def linattn_version():
    """The version of the linattn that `import linattn` would load, read without importing it."""
    spec = importlib.util.find_spec("linattn")
    if spec is None or not spec.origin:
        return None
    found = re.search(r'__version__ = "([^"]+)"', open(spec.origin, encoding="utf8").read())
    return found.group(1) if found else "0"


def older(version, than):
    def parts(v):
        return tuple(int(re.match(r"\d*", p).group() or 0) for p in v.split(".")[:3])
    return parts(version) < parts(than)


def install_linattn():
    if os.path.isdir(CLONE):
        run_step("update " + CLONE, ["git", "-C", CLONE, "pull", "--quiet", "--ff-only"])
    else:
        run_step("clone " + REPOSITORY_URL, ["git", "clone", "--quiet", "--depth", "1", REPOSITORY_URL, CLONE])
    run_step("install linattn", [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", CLONE])
    for light in ("numpy", "tqdm"):   # small dependencies only: never torch, matplotlib or ipywidgets
        if importlib.util.find_spec(light) is None:
            run_step("install " + light, [sys.executable, "-m", "pip", "install", "--quiet", light])
    importlib.invalidate_caches()


found = linattn_version()
if found is None or older(found, NEEDS_LINATTN):
    install_linattn()
    found = linattn_version()
    if found is None or older(found, NEEDS_LINATTN):
        raise SetupFailed(f"linattn {found} is older than this notebook needs ({NEEDS_LINATTN}).\n"
                          f"Install linattn by hand instead: {MANUAL}")
    if "linattn" in sys.modules:
        raise SetupFailed(f"Updated linattn to {found}: restart the runtime, then run all again.")
if os.path.isdir(CLONE) and not os.path.exists("references.bib"):
    os.chdir(os.path.join(CLONE, "book"))
if PROFILE != "auto":
    os.environ["LINATTN_PROFILE"] = PROFILE
