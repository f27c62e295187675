"""Stored results: JSON files that carry the environment, date and settings beside the numbers."""
import datetime
import json
from pathlib import Path

from .device import environment

FORMAT_VERSION = 1


def save_results(path, records, *, settings, device):
    """Write `records` (a list of dicts) with `settings` and the environment of `device` to `path`."""
    if not isinstance(records, list):
        raise ValueError(f"records must be a list of dicts, got {type(records).__name__}")
    payload = {
        "format": FORMAT_VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(device),
        "settings": settings,
        "records": records,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def load_results(path):
    """Read a file written by save_results, checking it has what every stored result must carry."""
    payload = json.loads(Path(path).read_text())
    missing = {"format", "date", "environment", "settings", "records"} - set(payload)
    if missing:
        raise ValueError(f"{path} is not a linattn results file: it lacks {sorted(missing)}")
    return payload
