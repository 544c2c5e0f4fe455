"""Code you can see at once (issue 12): no function longer than 70 lines and no module
longer than 500 lines outside tests/. Declarative tables are let be: a function of
straight-line code that only builds and returns data, such as a command set's
definitions, reads as a table however long it is."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every Python file of the code base outside tests/: the packages, the leaf limits
# module, the scripts.
CODE = ("actors", "bench", "bot", "metrics", "storage", "scripts", "limits.py")
function_lines_max = 70
module_lines_max = 500


def code_files() -> list[Path]:
    files: list[Path] = []
    for name in CODE:
        path = ROOT / name
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    assert len(files) > 50, f"found only {len(files)} files under {CODE}"
    return files


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def declarative(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``function`` is straight-line code that only names values and returns
    them: no branch, loop, ``with``, ``try`` or nested definition, so it reads as a table."""
    simple = (ast.Assign, ast.AnnAssign, ast.Expr, ast.Return)
    return all(isinstance(statement, simple) for statement in function.body)


def test_no_function_is_longer_than_70_lines() -> None:
    """Every function and method but a declarative table, decorators excluded, fits in
    70 lines."""
    too_long = []
    for path in code_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > function_lines_max and not declarative(node):
                    too_long.append(f"{relative(path)}:{node.lineno} {node.name} ({lines})")
    assert not too_long, f"functions over {function_lines_max} lines: {too_long}"


def test_no_module_is_longer_than_500_lines() -> None:
    """Every module fits in 500 lines."""
    over = []
    for path in code_files():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > module_lines_max:
            over.append(f"{relative(path)} ({lines})")
    assert not over, f"modules over {module_lines_max} lines: {over}"
