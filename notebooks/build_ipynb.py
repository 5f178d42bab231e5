"""Write ``figN.ipynb`` from the jupytext percent-format ``figN.py`` next to it (no jupytext needed).

Usage: ``python notebooks/build_ipynb.py [--check]``. The ``.py`` files are the source; the
notebooks are nbformat 4 JSON with the same cells (``# %%`` code cells, ``# %% [markdown]``
markdown cells with the leading ``# `` removed), no outputs. ``--check`` exits 1 if a committed
``.ipynb`` differs from what the ``.py`` gives (tests/test_notebooks.py runs the same check).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def _source(lines):
    """Cell text as nbformat's list of lines (newlines kept, last line without)."""
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return [ln + "\n" for ln in lines[:-1]] + lines[-1:]


def cells_from_percent(text):
    """Parse a percent-format script into ``[(cell_type, [lines])]`` (the jupytext header is skipped)."""
    lines = text.splitlines()
    if lines and lines[0] == "# ---":
        end = lines.index("# ---", 1)
        lines = lines[end + 1:]
    cells, kind, buf = [], None, []
    for ln in lines + ["# %%"]:
        if ln.startswith("# %%"):
            if kind is not None:
                if kind == "markdown":
                    buf = [b[2:] if b.startswith("# ") else b.lstrip("#") for b in buf]
                cells.append((kind, _source(buf)))
            kind, buf = ("markdown" if "[markdown]" in ln else "code"), []
        elif kind is not None:
            buf.append(ln)
    return cells


def notebook(text):
    """nbformat-4 notebook dict for a percent-format script."""
    cells = []
    for kind, src in cells_from_percent(text):
        cell = {"cell_type": kind, "metadata": {}, "source": src}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    meta = {"jupytext": {"formats": "ipynb,py:percent"}, "kernelspec": KERNELSPEC,
            "language_info": {"name": "python"}}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 4}


def render(text):
    """The ``.ipynb`` file content for a percent-format script."""
    return json.dumps(notebook(text), indent=1, ensure_ascii=False) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for py in sorted(HERE.glob("*.py")):
        if py.name == Path(__file__).name:
            continue
        target, content = py.with_suffix(".ipynb"), render(py.read_text())
        if check:
            if not target.exists() or target.read_text() != content:
                stale.append(target.name)
        else:
            target.write_text(content)
            print(f"wrote {target}")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python notebooks/build_ipynb.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
