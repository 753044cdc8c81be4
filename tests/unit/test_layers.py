"""Import layers of completeverify, read from the source with ast (lazy imports count too).

The layer order, lowest first (a module may import its own layer and the layers below it):

    0  errors, safe_read, host_memory, second_core   exceptions and dependency-free helpers
    1  config, config_io, device    typed options, the deadline, their files, the torch device
    2  solvers, vnnlib              MILP/LP backends and the VNN-LIB reader: only layer 0, no torch
    3  graph, graph_opt, spec, onnx_*, torch_import   the model and its import
    4  bounds                       IBP / CROWN / alpha-beta-CROWN (never milp or solvers)
    5  attack, verdict              PGD; ONNX replay and verdicts
    6  context                      VerifyContext: what one verify() call passes to its stages
    7  milp                         encoding, exact decisions, LP tightening, the exact leaf
    8  bab                          input and ReLU splitting
    9  pipeline                     verify(): the stages in order
    10 robustness, training         applications built on the verifier and the bound engine
    11 api, backend, the package    the public entry points
    12 everything else              cli, bench and packages added later (may import anything)

Also: no module imports another module's underscore names; no import cycles; code outside
``solvers`` uses only the names ``completeverify.solvers`` exports (never a backend module).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# source folder -> the package it is installed as (see [tool.setuptools] in pyproject.toml)
PACKAGES = {
    "completeverify": "completeverify",
    "solvers": "completeverify.solvers",
    "vnnlib": "completeverify.vnnlib",
}
LAYERS = [
    ["errors", "safe_read", "host_memory", "second_core"],
    ["config", "config_io", "device"],
    ["solvers", "vnnlib"],
    [
        "graph",
        "graph_opt",
        "spec",
        "onnx_builder",
        "onnx_reference",
        "onnx_ops",
        "onnx_guard",
        "onnx_order",
        "onnx_import",
        "loading",
        "torch_import",
    ],
    ["bounds"],
    ["attack", "verdict"],
    ["context"],
    ["milp"],
    ["bab"],
    ["pipeline"],
    ["robustness", "training"],
    ["api", "backend", ""],  # "": completeverify/__init__.py
]
TOP = len(LAYERS)  # cli, bench, __main__ and any package not listed
# import cycles that another branch removes; delete an entry once it is gone
KNOWN_CYCLES: set[frozenset[str]] = {
    frozenset({"completeverify.bounds.engine", "completeverify.bounds.optimize"}),
}
ISOLATED = ("completeverify.solvers", "completeverify.vnnlib")  # import only layer 0, no torch


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three source folders."""
    mods: dict[str, Path] = {}
    for folder, pkg in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([pkg, *parts])] = path
    return mods


MODULES = _modules()


def _resolve(mod: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement in ``mod`` reads from."""
    if node.level == 0:
        return node.module or ""
    base = mod.split(".")
    if MODULES[mod].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports() -> list[tuple[str, str, str | None, int]]:
    """Every import: (importing module, imported module, imported name or None, line)."""
    out = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(mod, node)
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if full in MODULES:  # `from pkg import submodule`
                        out.append((mod, full, None, node.lineno))
                    else:
                        out.append((mod, target, alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                out.extend((mod, alias.name, None, node.lineno) for alias in node.names)
    return out


IMPORTS = _imports()


def _layer(mod: str) -> int:
    """The layer of a project module (TOP when no layer claims it)."""
    rest = mod.removeprefix("completeverify").removeprefix(".")
    for rank, names in enumerate(LAYERS):
        for name in names:
            if rest == name or (name and rest.startswith(name + ".")):
                return rank
    return TOP


def _internal(target: str) -> str | None:
    """The project module an import target names (itself or its nearest package), or None."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_the_layer_table_knows_the_core_modules():
    """Every module of the core stages has a layer (a typo in LAYERS would silently exempt it)."""
    assert len(MODULES) > 40
    core = [
        m
        for m in MODULES
        if not m.startswith(("completeverify.cli", "completeverify.bench"))
        and m != "completeverify.__main__"
    ]
    unplaced = [
        m
        for m in core
        if _layer(m) == TOP
        and m.count(".") == 1
        and not (ROOT / "completeverify" / m.split(".")[1]).is_dir()
    ]
    assert not unplaced, f"modules without a layer (add them to LAYERS): {unplaced}"


def test_lower_layers_never_import_higher_ones():
    bad = []
    for mod, target, _, line in IMPORTS:
        dest = _internal(target)
        if dest is None or dest == mod:
            continue
        if mod.startswith(dest + ".") and MODULES[dest].name == "__init__.py":
            continue  # a package's own __init__
        if _layer(dest) > _layer(mod):
            bad.append(
                f"{MODULES[mod].relative_to(ROOT)}:{line}: {mod} (layer {_layer(mod)}) "
                f"imports {dest} (layer {_layer(dest)})"
            )
    assert not bad, "\n".join(bad)


def test_solvers_and_vnnlib_import_only_layer_0_and_no_torch():
    bad = []
    for mod, target, _, line in IMPORTS:
        if not mod.startswith(ISOLATED):
            continue
        dest = _internal(target)
        root = target.split(".")[0]
        if root in ("torch", "onnx", "onnxruntime"):
            bad.append(f"{mod}:{line} imports {target}")
        elif dest is not None and _layer(dest) > 0 and not dest.startswith(ISOLATED):
            bad.append(f"{mod}:{line} imports {dest}")
    assert not bad, "\n".join(bad)


def test_solver_backends_are_used_through_the_package_interface():
    """Outside solvers/, only the names completeverify.solvers exports (no backend modules)."""
    pkg = ast.parse(MODULES["completeverify.solvers"].read_text())
    exported = next(
        ast.literal_eval(n.value)
        for n in pkg.body
        if isinstance(n, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
    )
    bad = []
    for mod, target, name, line in IMPORTS:
        if mod.startswith("completeverify.solvers"):
            continue
        if target.startswith("completeverify.solvers."):
            bad.append(f"{mod}:{line} imports the backend module {target}")
        elif target == "completeverify.solvers" and name is not None and name not in exported:
            bad.append(f"{mod}:{line} imports {name}, which completeverify.solvers does not export")
    assert not bad, "\n".join(bad)


def test_no_underscore_names_across_modules():
    bad = [
        f"{mod}:{line} imports {target}.{name}"
        for mod, target, name, line in IMPORTS
        if name is not None
        and name.startswith("_")
        and not name.startswith("__")
        and target in MODULES
        and target != mod
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, target, _, _ in IMPORTS:
        dest = _internal(target)
        if dest is None or dest == mod:
            continue
        inside = (mod.startswith(dest + ".") and MODULES[dest].name == "__init__.py") or (
            dest.startswith(mod + ".") and MODULES[mod].name == "__init__.py"
        )
        if not inside:  # a package's __init__ re-exporting its own modules is no cycle
            edges[mod].add(dest)
    cycles = [
        c for c in _strongly_connected(edges) if len(c) > 1 and frozenset(c) not in KNOWN_CYCLES
    ]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of the import graph (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in MODULES:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def test_the_checks_catch_what_they_claim(tmp_path):
    """The cycle finder and the layer lookup on known inputs."""
    comps = _strongly_connected(
        {
            "completeverify.errors": {"completeverify.config"},
            "completeverify.config": {"completeverify.errors"},
        }
    )
    assert sorted(map(sorted, [c for c in comps if len(c) > 1])) == [
        ["completeverify.config", "completeverify.errors"]
    ]
    assert _layer("completeverify.bounds.engine") < _layer("completeverify.milp.encoder")
    assert _layer("completeverify.solvers.highs") < _layer("completeverify.graph")
    assert _layer("completeverify.cli.verify") == TOP == _layer("completeverify.newpackage.x")
    assert _layer("completeverify") == _layer("completeverify.api")
