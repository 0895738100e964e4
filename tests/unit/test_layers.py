"""The package's folders are its layers: a module imports only from its own layer or lower ones."""

import ast

from ..conftest import ROOT

PACKAGE = ROOT / "splitnet"
# Inside out. errors.py is importable everywhere; cli.py sits on top.
LAYERS = ["config", "plan", "learning", "telemetry", "transport", "runtime", "node",
          "ops", "bench", "cli"]
RANK = {name: rank for rank, name in enumerate(LAYERS)}
RANK["bench"] = RANK["ops"]  # ops and bench are one layer
MAX_MODULE_LINES = 300
MAX_CLASS_LINES = 200


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "generated" not in path.parts:
            yield path


def _layer(parts: list[str]) -> str | None:
    """Return the layer of a module path inside the package, e.g. ['plan', 'rules'] -> 'plan'."""
    if not parts:
        return None
    return parts[0] if parts[0] in RANK else None


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def test_every_module_imports_only_its_own_layer_or_lower_ones():
    problems = []
    for path in _modules():
        own = _layer(list(path.relative_to(PACKAGE).with_suffix("").parts))
        if own is None:
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "splitnet":
                continue
            target = _layer(parts[1:])
            if target is not None and RANK[target] > RANK[own]:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {module}")
            if "generated" in parts and own != "transport":
                problems.append(f"{path.relative_to(ROOT)}:{line}: generated protobuf outside "
                                "splitnet/transport")
    assert not problems, "\n".join(problems)


def test_modules_and_classes_stay_small():
    problems = []
    for path in _modules():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            problems.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    problems.append(f"{path.relative_to(ROOT)}: class {node.name}: {size} lines")
    assert not problems, "\n".join(problems)


def test_the_layer_check_sees_a_violation():
    assert _layer(["node", "node"]) == "node" and RANK["node"] > RANK["runtime"]
    assert _layer(["errors"]) is None  # importable everywhere
