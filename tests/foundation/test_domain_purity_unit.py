"""The rules stay pure: no domain module loads web, token, store or broker code, directly or through others."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("fastapi", "starlette", "jwt", "pymongo", "bson", "motor", "aiokafka", "faststream", "uvicorn", "httpx")
DOMAIN_FILES = sorted(ROOT.glob("services/*/domain/**/*.py"))
PURE_COMMON = ("common.errors", "common.principal")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_every_service_has_a_domain_package_to_check():
    services = {path.relative_to(ROOT).parts[1] for path in DOMAIN_FILES}
    assert {"hotline", "router", "relief", "notify", "frontdoor"} <= services


def test_no_domain_module_imports_web_store_or_broker_code():
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in DOMAIN_FILES
        for line, name in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in FORBIDDEN
    ]
    assert not offences, "\n".join(offences)


def test_importing_the_domains_loads_none_of_it_indirectly():
    """A fresh interpreter imports every domain module (and the pure common ones) and lists what got loaded."""
    modules = [_module(path) for path in DOMAIN_FILES] + list(PURE_COMMON)
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "pydantic" in loaded  # the check sees what the domain really loads
    assert not loaded & set(FORBIDDEN), f"domain imports load {sorted(loaded & set(FORBIDDEN))}"
