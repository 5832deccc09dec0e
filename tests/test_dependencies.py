"""Every third-party package nnexp imports is declared in pyproject.toml, so a fresh `pip install` has it.

Imports at a module's top level run on every `nnexp`: they must be base dependencies. Imports inside a
function belong to a feature (logger=mlflow, hydra/launcher=joblib): base, or an extra that a user installs
for that feature (not `test` or `bench`, which no feature asks for).
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the reference machine runs 3.11
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
NOT_FEATURES = {"test", "bench", "all"}  # extras that gather others or serve the developers only


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0])


def declared(pyproject: str) -> tuple[set[str], set[str]]:
    """(base dependencies, dependencies of the feature extras), as canonical distribution names."""
    project = tomllib.loads(pyproject)["project"]
    base = {requirement_name(req) for req in project["dependencies"]}
    extras = {
        requirement_name(req)
        for extra, requirements in project["optional-dependencies"].items()
        if extra not in NOT_FEATURES
        for req in requirements
        if not requirement_name(req).startswith("nnexp")
    }
    return base, extras


def imports_of(source: str) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level?) for each absolute import in `source`."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, at_module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name.split(".")[0], at_module_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], at_module_level))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)  # only read by type checkers
            else:
                visit(child, at_module_level)

    visit(ast.parse(source), True)
    return found


def undeclared_imports(files: dict[str, str], pyproject: str | None = None) -> list[str]:
    """One line per import that a fresh install of the declared dependencies would not satisfy."""
    base, extras = declared(pyproject or (ROOT / "pyproject.toml").read_text())
    distributions = packages_distributions()
    problems = []
    for name, source in files.items():
        for module, at_module_level in imports_of(source):
            if module in sys.stdlib_module_names or module == "nnexp" or module == "__future__":
                continue
            providers = {canonical(dist) for dist in distributions.get(module, [])}
            allowed = base if at_module_level else base | extras
            if not providers & allowed:
                where = "base dependencies" if at_module_level else "dependencies or a feature's extra"
                problems.append(f"{name}: `{module}` (from {sorted(providers) or 'no installed package'}) "
                                f"is not in pyproject.toml's {where}")  # fmt: skip
    return problems


def package_sources() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text() for path in sorted((ROOT / "nnexp").rglob("*.py"))}


def test_every_package_nnexp_imports_is_declared():
    assert undeclared_imports(package_sources()) == []


def test_an_import_of_an_undeclared_module_is_caught():
    sources = package_sources()
    sources["nnexp/extra.py"] = "import some_undeclared_module\n"
    assert undeclared_imports(sources) == [
        "nnexp/extra.py: `some_undeclared_module` (from no installed package) "
        "is not in pyproject.toml's base dependencies"
    ]


def test_a_feature_import_may_come_from_an_extra_but_not_a_top_level_one():
    lazy = "def log():\n    import mlflow\n"
    eager = "import mlflow\n"
    assert undeclared_imports({"lazy.py": lazy}) == []
    [problem] = undeclared_imports({"eager.py": eager})
    assert "`mlflow`" in problem and "base dependencies" in problem


def test_a_package_that_arrives_only_through_another_is_caught():
    # PyYAML is installed here (OmegaConf needs it), but only its own declaration keeps `import yaml` safe.
    pyproject = (ROOT / "pyproject.toml").read_text()
    without_yaml = re.sub(r'^\s*"pyyaml[^"]*",.*\n', "", pyproject, flags=re.M | re.I)
    assert without_yaml != pyproject
    problems = undeclared_imports({"reader.py": "import yaml\n"}, without_yaml)
    assert problems == ["reader.py: `yaml` (from ['pyyaml']) is not in pyproject.toml's base dependencies"]
