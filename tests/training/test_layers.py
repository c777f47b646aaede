"""Training and scoring never import the evaluation tool (``anyref_ros/evaluation``):
what both use lives one floor down, in ``anyref_ros/scoring``."""

from __future__ import annotations

import ast
from pathlib import Path

import anyref_ros

PACKAGE = Path(anyref_ros.__file__).parent


def _imports(folder: str):
    """(file, imported module) of every import under ``folder``, relative ones resolved."""
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        parts = ["anyref_ros", *path.relative_to(PACKAGE).with_suffix("").parts]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                yield from ((path.name, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = parts[:len(parts) - node.level] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                yield from ((path.name, f"{module}.{a.name}" if not node.module else module) for a in node.names)


def test_training_and_scoring_do_not_import_evaluation():
    for folder in ("training", "scoring"):
        found = [(f, m) for f, m in _imports(folder) if m.startswith("anyref_ros.evaluation")]
        assert not found, (folder, found)
    assert ("trainer.py", "anyref_ros.scoring.runner") in set(_imports("training"))


def test_scoring_imports_neither_tool():
    found = [(f, m) for f, m in _imports("scoring") if m.startswith(("anyref_ros.training", "anyref_ros.nodes"))]
    assert not found
