"""The provision table: every provision of the notice (`contracts/data/provisions.yaml`) with the rules that
cite it in the rules data and the tests that name it, so anyone can trace a provision to code and proof.

    python -m tools.policy_table [--tests DIR]      # make policy-table

Rules come from the data files: the hotline's service catalogue (`intake:`), the router's dispatch catalogue
(`router:`), relief's rules and subsidy runs (`relief:`) and notify's SLA policy (`notify:`). A test names a
provision in its name (`test_p5_2b_…`, `test_p52b_…`, `…_P4_1`) or its docstring (`P5.2b`). Exits 1 when a
provision marked core or route has no test, or the rules data cite an id the register does not know.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from contracts.catalogue import service_catalogue
from contracts.provisions import Register, provisions
from services.notify.domain.policy import load_policy
from services.relief.domain.parameters import packaged_rules
from services.relief.domain.runs import RUN_PROVISION
from services.router.domain.catalogue import load_catalogue

# In a test's name: p5_2b, p52b, P4_1, p21 (a segment of the snake_case name).
NAME_ID = re.compile(r"(?:^|_)p(\d)_?(\d)([a-d])?(?=_|$)", re.IGNORECASE)
TEXT_ID = re.compile(r"(?<![\w.])P(\d)\.(\d)([a-d])?(?![\w])")
ROOT = Path(__file__).resolve().parents[1]


def rule_citations() -> Iterator[tuple[str, tuple[str, ...]]]:
    """(rule, provisions) for every rule of the rules data."""
    for service in service_catalogue().services:
        yield f"intake:{service.code}", service.provisions
    catalogue = load_catalogue()
    yield f"router:{catalogue.fallback.id}", catalogue.fallback.provisions
    for rule in catalogue.rules:
        yield f"router:{rule.id}", rule.provisions
    for sla in catalogue.sla_classes:
        yield f"router:sla:{sla.code}", sla.provisions
    for entry in packaged_rules().rules:
        yield f"relief:{entry.id}", entry.provisions
    for kind, provision in RUN_PROVISION.items():
        yield f"relief:run:{kind.value}", (provision,)
    seen: set[str] = set()
    for version in load_policy().versions:
        for sla_class in version.classes.values():
            if sla_class.rule_id not in seen:
                seen.add(sla_class.rule_id)
                yield f"notify:{sla_class.rule_id}", sla_class.provisions
            for target in sla_class.targets.values():
                if target.rule_id not in seen:
                    seen.add(target.rule_id)
                    yield f"notify:{target.rule_id}", target.provisions


def cited_in_name(name: str) -> set[str]:
    return {f"P{a}.{b}{c.lower()}" for a, b, c in NAME_ID.findall(name)}


def cited_in_text(text: str) -> set[str]:
    return {f"P{a}.{b}{c}" for a, b, c in TEXT_ID.findall(text)}


def test_citations(root: Path) -> Iterator[tuple[str, set[str]]]:
    """(test, provisions) for every test function under `root` that names a provision."""
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                cited = cited_in_name(node.name) | cited_in_text(ast.get_docstring(node) or "")
                if cited:
                    yield f"{path.relative_to(root.parent).as_posix()}::{node.name}", cited


@dataclass
class Table:
    register: Register
    rules: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tests: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    unknown: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def untested(self) -> list[str]:
        return [p.id for p in self.register.provisions if p.scope in ("core", "route") and not self.tests[p.id]]

    def lines(self) -> Iterator[str]:
        yield "| provision | scope | title | rules | tests |"
        yield "|---|---|---|---|---|"
        for p in self.register.provisions:
            rules = ", ".join(self.rules[p.id]) or "—"
            tests = self.tests[p.id]
            shown = f"{len(tests)}: " + ", ".join(t.split("::")[1] for t in tests) if tests else "**none**"
            yield f"| {p.id} | {p.scope} | {p.title_zh} {p.title_en} | {rules} | {shown} |"


def build(
    tests_root: Path, register: Register | None = None, rules: Iterable[tuple[str, tuple[str, ...]]] = ()
) -> Table:
    """The table of `register` (default: the shipped one), `rules` (default: the rules data) and the tests."""
    table = Table(register or provisions())
    known = table.register.by_id()
    for rule, cited in rules or rule_citations():
        for provision in dict.fromkeys(cited):
            (table.rules if provision in known else table.unknown)[provision].append(rule)
    for test, named in test_citations(tests_root):
        for provision in sorted(named):
            if provision in known:
                table.tests[provision].append(test)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print provision -> rules -> tests; fail on an untested one.")
    parser.add_argument("--tests", type=Path, default=ROOT / "tests", help="the tests directory to scan")
    args = parser.parse_args(argv)
    table = build(args.tests)
    for line in table.lines():
        print(line)
    status = 0
    if table.unknown:
        status = 1
        for provision, rules in sorted(table.unknown.items()):
            print(f"error: {', '.join(rules)} cite {provision}, not in contracts/data/provisions.yaml", file=sys.stderr)
    if untested := table.untested():
        status = 1
        print(f"error: core or route provisions without a test: {', '.join(untested)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
