"""The dependency direction of STYLE.md, checked: the core imports no shell, shells not each other.

The host's adapters (otphost: the wall clock, the configuration file) serve both shells and
import neither; the core never imports them. And the core never reads the wall clock.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELLS = {"radiusd", "cli", "pyrad", "click"}
CLOCK_READS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(tree: ast.AST, path: Path, package: str) -> Iterator[str]:
    """Top-level names of every module imported anywhere in the file (relative ones resolved)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield package  # a relative import stays inside the package
            elif node.module:
                yield node.module.split(".")[0]


def parsed(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_otpcore_is_there() -> None:
    assert len(modules("otpcore")) > 10


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("otpcore", SHELLS | {"otphost"}),
        ("otphost", SHELLS),
        ("radiusd", {"cli", "click"}),
        ("cli", {"radiusd", "pyrad"}),
    ],
)
def test_import_direction(package: str, forbidden: set[str]) -> None:
    files = modules(package)
    if not files and package != "otpcore":
        pytest.skip(f"{package}/ not written yet")
    offences = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in imported(parsed(path), path, package)
        if name in forbidden
    ]
    assert offences == []


def test_the_walker_sees_every_form_of_import(tmp_path: Path) -> None:
    source = (
        "import radiusd.server\n"
        "from cli import main\n"
        "def f():\n    import pyrad.packet as p\n"
        "from . import sibling\n"
    )
    tree = ast.parse(source)
    names = set(imported(tree, tmp_path / "x.py", "otpcore"))
    assert {"radiusd", "cli", "pyrad", "otpcore"} <= names


def clock_reads(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Calls like ``datetime.now()``, ``datetime.datetime.utcnow()``, ``time.time()``."""
    imported_functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            imported_functions |= {a.asname or a.name for a in node.names if a.name in {"time"}}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = func.value
            owner_name = (
                owner.id
                if isinstance(owner, ast.Name)
                else owner.attr
                if isinstance(owner, ast.Attribute)
                else ""
            )
            if (owner_name, func.attr) in CLOCK_READS:
                yield node.lineno, f"{owner_name}.{func.attr}()"
        elif isinstance(func, ast.Name) and func.id in imported_functions:
            yield node.lineno, f"{func.id}()"


def test_otpcore_never_reads_the_wall_clock() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line} calls {call}"
        for path in modules("otpcore")
        for line, call in clock_reads(parsed(path))
    ]
    assert offences == []


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.now(UTC)\n",
        "import datetime\nx = datetime.datetime.utcnow()\n",
        "import time\nx = time.time()\n",
        "from time import time\nx = time()\n",
        "from datetime import date\nx = date.today()\n",
    ],
)
def test_the_clock_check_catches_each_form(source: str) -> None:
    assert list(clock_reads(ast.parse(source)))
