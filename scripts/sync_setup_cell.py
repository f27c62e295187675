"""Copy scripts/setup_cell.py into the first cell of every notebook in book/ (tests/book/test_setup_cell.py
checks they match).

    python scripts/sync_setup_cell.py
"""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL = (ROOT / "scripts" / "setup_cell.py").read_text(encoding="utf8").rstrip("\n")
TAGS = ["hide-input", "hide-output"]


def sync(path):
    """Write the setup cell into the notebook at `path`; returns whether it changed."""
    raw = path.read_text(encoding="utf8")
    notebook = json.loads(raw)
    first = notebook["cells"][0]
    if first["cell_type"] != "code":
        raise ValueError(f"{path.name}: the first cell must be the setup code cell")
    first["source"] = CELL.splitlines(keepends=True)
    first["metadata"]["tags"] = TAGS + [t for t in first["metadata"].get("tags", []) if t not in TAGS]
    new = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    if new != raw:
        path.write_text(new, encoding="utf8")
    return new != raw


if __name__ == "__main__":
    changed = [p.name for p in sorted((ROOT / "book").glob("*.ipynb")) if sync(p)]
    print(f"setup cell updated in {len(changed)} notebooks: {', '.join(changed) or 'none'}")
