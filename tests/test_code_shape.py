"""The code reads in screens: no function in framecast/ runs over 80 lines."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "framecast"
MAX_LINES = 80


def long_functions(root: Path = ROOT, max_lines: int = MAX_LINES) -> list[str]:
    """'path:line name (n lines)' for every function or method longer than `max_lines`, decorators
    and docstring included."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = node.end_lineno - first + 1
                if n > max_lines:
                    found.append(f"framecast/{rel}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_over_80_lines():
    found = long_functions()
    assert not found, "functions over 80 lines:\n" + "\n".join(found)
