"""The package reads as the flow of a run: a folder per stage, small modules, no import cycles.

The stages stand in layers, each importing only the layers below it (LAYERS, bottom first): the shared
modules; data and models; config (the rules, which read the models' layer names); train (build, loop);
diagnostics; runs (one run from start to summary); look and sweep (which read runs back and launch
them); cli; the API. Every import counts here, also those inside functions and under TYPE_CHECKING:
a cycle hidden in a function is still two modules that cannot be understood one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nnexp"
STAGES = ["config", "cli", "data", "models", "train", "runs", "sweep", "diagnostics", "look"]
MAX_LINES = 450
RUN_MODULE_MAX_LINES = 300


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """{module: the package modules it imports}, `from pkg import sub` resolved to the submodule."""
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in sources else node.module for t in targets]
            else:
                continue
            graph[name] |= {target for target in targets if target in sources and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_sources() -> dict[str, str]:
    return {module_name(path, PACKAGE): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(import_graph(package_sources())) == []


# Bottom first. A package imports only packages in layers below its own (never one beside it).
LAYERS = [
    {"errors", "paths", "atomic", "stop"},
    {"forked"},
    {"data", "models"},
    {"config"},
    {"train"},
    {"diagnostics"},
    {"runs"},
    {"look", "sweep"},
    {"cli"},
    {"api", "__main__"},
    {"nnexp"},  # the package's own __init__: nnexp.run (from api) and nnexp.__version__
]


def layer_of(module: str) -> int:
    package = module.split(".")[1] if "." in module else module
    return next(index for index, layer in enumerate(LAYERS) if package in layer)


def imports_that_do_not_go_down(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) for each import into a package in the importer's own layer or above it."""
    return {
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if module.split(".")[:2] != target.split(".")[:2] and layer_of(target) >= layer_of(module)
    }


def test_every_package_imports_only_the_layers_below_it():
    assert imports_that_do_not_go_down(import_graph(package_sources())) == set()


def test_an_import_up_or_sideways_is_found_even_inside_a_function():
    sources = {
        "nnexp.runs.run": "def f():\n    from nnexp.look.plots import plot\n",
        "nnexp.look.plots": "import nnexp.sweep.ledger\n",
        "nnexp.sweep.ledger": "from nnexp.errors import UserError\n",
        "nnexp.errors": "",
    }
    assert imports_that_do_not_go_down(import_graph(sources)) == {
        ("nnexp.runs.run", "nnexp.look.plots"),
        ("nnexp.look.plots", "nnexp.sweep.ledger"),
    }


def test_a_cycle_through_a_third_module_is_found():
    sources = {
        "nnexp.train.fit": "from nnexp.runs import folder\n",
        "nnexp.runs": "",
        "nnexp.runs.folder": "def f():\n    from nnexp.look.plots import plot\n",
        "nnexp.look.plots": "if TYPE_CHECKING:\n    import nnexp.train.fit\n",
        "nnexp.look.report": "from nnexp.look.plots import plot\n",
    }
    assert cycles(import_graph(sources)) == [["nnexp.look.plots", "nnexp.runs.folder", "nnexp.train.fit"]]


# Beside the stage folders, only what every stage shares: the errors, where the configs live, the one way
# to write a file whole, the one owner of the stop signals, work in a forked child, and the entry points
# (nnexp.run, python -m nnexp).
TOP_LEVEL_MODULES = [
    "__init__.py",
    "__main__.py",
    "api.py",
    "atomic.py",
    "errors.py",
    "forked.py",
    "paths.py",
    "stop.py",
]


def test_the_top_level_holds_the_stage_folders_and_only_the_shared_modules():
    folders = sorted(path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file())
    modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert folders == sorted(STAGES)
    assert modules == TOP_LEVEL_MODULES


def test_each_folder_says_what_it_is_for_in_its_opening_docstring():
    for stage in STAGES:
        docstring = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text()))
        assert docstring and len(docstring) > 40, stage


def test_modules_stay_small_and_the_run_module_tells_only_the_story():
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")
    }
    assert {name: lines for name, lines in lengths.items() if lines > MAX_LINES} == {}
    assert lengths["runs/run.py"] < RUN_MODULE_MAX_LINES


def test_training_never_reaches_into_the_records_of_a_run():
    """train/ builds and steps; writing files is runs/' job (and look/'s), so data flows one way."""
    graph = import_graph(package_sources())
    upward = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("nnexp.train")
        for target in targets
        if target.startswith(("nnexp.runs", "nnexp.sweep", "nnexp.look", "nnexp.cli"))
    }
    assert upward == set()
