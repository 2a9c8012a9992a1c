"""What `pip install isthmus` gives: every third-party module the package imports at
run time is a declared dependency (fast, an AST scan), and the package installed
without extras into a fresh virtualenv imports every driver, builds its API, runs
its CLI and migrates a database with the migrations it ships (slow).

No module path is written here: the migrations directory, the drivers and the
entry points the smoke test uses are found by walking the package (by file, or by
the names its modules define), so moving a module does not break these tests."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "isthmus"


def _migrations_directory(package: Path) -> Path:
    """The one directory of `package` alembic reads: it holds env.py and versions/."""
    found = [p.parent for p in package.rglob("env.py") if (p.parent / "versions").is_dir()]
    assert len(found) == 1, f"expected one alembic directory in {package}: {found}"
    return found[0]


MIGRATIONS = _migrations_directory(PACKAGE)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> set[str]:
    """Top-level names of the absolute imports in `tree`, except those under
    `if TYPE_CHECKING:` (which never run)."""
    found: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return found


def third_party_imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Top-level third-party module -> the files of `package` that import it at run time."""
    users: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for name in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if name in sys.stdlib_module_names or name == package.name:
                continue
            users.setdefault(name, set()).add(str(path.relative_to(package.parent)))
    return users


def declared_dependencies(extra: str | None = None) -> set[str]:
    """Canonical distribution names of pyproject's `dependencies` (or of one extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(spec).name) for spec in specs}


def test_every_runtime_import_is_a_declared_dependency() -> None:
    distributions = packages_distributions()
    declared = declared_dependencies()
    unknown: list[str] = []
    undeclared: list[str] = []
    for module, files in sorted(third_party_imports().items()):
        where = ", ".join(sorted(files)[:3])
        dists = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not dists:
            unknown.append(f"{module} (no installed distribution provides it; in {where})")
        elif not dists & declared:
            undeclared.append(f"{module} from {'/'.join(sorted(dists))} (in {where})")
    assert not unknown, f"imports nothing installed provides: {unknown}"
    assert not undeclared, f"imported at run time but not in pyproject's dependencies: {undeclared}"


def test_no_runtime_dependency_is_repeated_in_an_extra() -> None:
    # an extra lists only what the package itself does not need, so the two never drift
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = declared_dependencies()
    repeated = {
        extra: sorted(runtime & declared_dependencies(extra))
        for extra in project.get("optional-dependencies", {})
    }
    assert not any(repeated.values()), f"runtime dependencies repeated in extras: {repeated}"


def test_the_scan_sees_the_openstack_driver_imports() -> None:
    # guards the scan itself: these are imported at run time by sites/openstack/
    imports = third_party_imports()
    assert {"openstack", "keystoneauth1", "fastapi", "sqlalchemy"} <= set(imports)
    assert "isthmus" not in imports and "os" not in imports


def _files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def test_package_data_lists_every_file_read_from_the_package_directory() -> None:
    # setuptools ships non-Python files only when package-data names them; the migrations
    # (no __init__.py) are read by alembic from the package directory, so all are listed
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["isthmus"]
    shipped = {p for pattern in patterns for p in PACKAGE.glob(pattern)}
    needed = {p for p in _files(PACKAGE) if p.suffix != ".py"} | set(_files(MIGRATIONS))
    assert sorted(str(p.relative_to(PACKAGE)) for p in needed - shipped) == []
    assert all(any(PACKAGE.glob(pattern)) for pattern in patterns), "a pattern matches nothing"


# -- a real install ------------------------------------------------------------------------

SMOKE = """
import importlib, inspect, pkgutil, sqlite3, sys
from pathlib import Path

from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

import isthmus

venv, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
assert Path(isthmus.__file__).is_relative_to(venv), isthmus.__file__
modules = [m.name for m in pkgutil.walk_packages(isthmus.__path__, "isthmus.")]
# every name a module of the package holds -> the distinct objects under it (classes
# and functions only when the package defines them, not what it imports from others)
names = {}
for name in modules:
    for attribute, value in vars(importlib.import_module(name)).items():
        if inspect.isclass(value) or inspect.isfunction(value):
            if not value.__module__.startswith("isthmus."):
                continue
        names.setdefault(attribute, {})[id(value)] = value


def one(attribute):
    # the one object the package holds under `attribute`, wherever it is defined
    found = list(names.get(attribute, {}).values())
    assert len(found) == 1, (attribute, found)
    return found[0]


# every site driver (a class named *Driver other than the driver Protocol) imported
drivers = {
    attribute
    for attribute, values in names.items()
    if attribute.endswith("Driver")
    and any(inspect.isclass(v) and not getattr(v, "_is_protocol", False) for v in values.values())
}
assert {"LocalDriver", "OpenStackDriver"} <= drivers, drivers
EmbeddedFabric = one("EmbeddedFabric")
create_app, Config, Service = one("create_app"), one("Config"), one("Service")
MIGRATIONS_DIR = one("MIGRATIONS_DIR")

head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
with sqlite3.connect(data_dir / "isthmus.db") as db:
    (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
assert version == head, (version, head)

service = Service(Config(data_dir=data_dir), run_engine=False)
try:
    with TestClient(create_app(service)) as client:
        answer = client.get("/isthmus/v1/openapi.json")
        assert answer.status_code == 200, answer.text
finally:
    service.db.dispose()
shipped = sorted(
    str(p.relative_to(MIGRATIONS_DIR))
    for p in MIGRATIONS_DIR.rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
)
print(len(modules), ",".join(shipped))
"""


def _run(args: list[str | Path], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_install_without_extras_in_a_fresh_venv(tmp_path: Path) -> None:
    # build from a copy so pip's in-tree build leaves no build/ or egg-info in the checkout
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source / "pyproject.toml")
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    venv = tmp_path / "venv"
    python, isthmus = venv / "bin" / "python", venv / "bin" / "isthmus"
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", venv], tmp_path, 120)
    _run([python, "-m", "pip", "install", "--quiet", source], tmp_path, 480)
    installed = time.monotonic() - started
    print(f"fresh venv + pip install without extras: {installed:.1f} s")

    assert "Usage" in _run([isthmus, "--help"], tmp_path, 60).stdout
    data_dir = tmp_path / "data"
    _run([isthmus, "migrate", "--data-dir", data_dir], tmp_path, 120)
    smoke = tmp_path / "smoke.py"
    smoke.write_text(textwrap.dedent(SMOKE), encoding="utf-8")
    modules, shipped = _run([python, smoke, venv, data_dir], tmp_path, 180).stdout.split()
    assert int(modules) > 50
    assert shipped.split(",") == [str(p.relative_to(MIGRATIONS)) for p in _files(MIGRATIONS)]
    print(f"whole test: {time.monotonic() - started:.1f} s")
