"""Stored results: JSON files that carry the environment, date and settings beside the numbers."""
import datetime
import json
import re
from pathlib import Path

import torch

from .device import environment, hardware_name

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


def hardware_slug(text):
    """A hardware name as a file-name part: 'AMD EPYC (2 threads)' -> 'amd-epyc-2-threads'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def default_filename(prefix, device):
    """<prefix>_<device type>_<hardware>.json for results measured on `device`."""
    device = torch.device(device)
    return f"{prefix}_{device.type}_{hardware_slug(hardware_name(device))}.json"


def find_stored(folder, prefix):
    """Every <prefix>_*.json in `folder`, loaded, sorted by hardware name: [(path, payload), ...]."""
    found = [(path, load_results(path)) for path in sorted(Path(folder).glob(f"{prefix}_*.json"))]
    return sorted(found, key=lambda item: item[1]["environment"]["hardware"])
