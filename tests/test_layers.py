"""The import layers (DEVELOPERS' guide, issue #22): data flows one way.

    data_recipes  <-  eval
    data_recipes  <-  contrastive  <-  grounding

A package may import the ones to its left and nothing else of earmark's: no module of
data_recipes imports eval, contrastive or grounding; eval imports neither contrastive nor
grounding; contrastive never imports grounding. Imports inside functions count too: a lazy import
is still a dependency. Plugins cross the layers through entry points (``earmark.predictors``,
``earmark.taggers``), not imports.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data_recipes", "eval", "contrastive", "grounding")
FORBIDDEN = {
    "data_recipes": {"eval", "contrastive", "grounding"},
    "eval": {"contrastive", "grounding"},
    "contrastive": {"grounding"},
    "grounding": set(),
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level earmark package) of every absolute import in one file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in PACKAGES]
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_against_the_layers(package):
    bad = [f"{f.relative_to(ROOT)}:{line}: imports {dep}"
           for f in sorted((ROOT / package).rglob("*.py"))
           for line, dep in imported_packages(f) if dep in FORBIDDEN[package]]
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_and_dotted_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom .x import y\n\ndef g():\n    import grounding.api\n    from eval.metrics import iou\n")
    assert imported_packages(f) == [(5, "grounding"), (6, "eval")]
