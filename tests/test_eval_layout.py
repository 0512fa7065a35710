"""The package layering: the command line sits on top, nothing below it imports it, golden imports
neither the evaluation nor the command line, and the evaluation's modules import each other without
cycles (read from the source with ``ast``, so function-level imports count too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Packages below the command line.
LOWER = ("golden", "evaluation", "kernels", "rtl_gen", "hw", "sim", "formal")


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_no_lower_layer_imports_the_command_line():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in LOWER
        for path in sources(package)
        for name in imports_of(path)
        if name == "sdialect" or name.startswith("sdialect.")
    ]
    assert not offenders, offenders


def test_golden_does_not_import_the_evaluation():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources("golden")
        for name in imports_of(path)
        if name == "evaluation" or name.startswith("evaluation.")
    ]
    assert not offenders, offenders


def test_evaluation_modules_have_no_import_cycle():
    modules = {f"evaluation.{p.stem}": p for p in sources("evaluation") if p.stem != "__init__"}
    graph = {m: {n for n in imports_of(p) if n in modules and n != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, "import cycle: " + " -> ".join(trail + [module])
        state[module] = 1
        for dep in sorted(graph[module]):
            visit(dep, trail + [module])
        state[module] = 2

    for module in sorted(modules):
        visit(module, [])
    assert "evaluation.card" in graph["evaluation.train"]  # train writes the card: the edge this test guards
