"""The provision table (`make policy-table`): provision -> rules -> tests, from the rules data's provision ids
and the tests' names and docstrings; it fails when a core or route provision has no test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contracts.provisions import provisions
from tools.policy_table import build, cited_in_name, cited_in_text, main

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_test_names_and_docstrings_cite_provisions_in_every_spelling_used():
    assert cited_in_name("test_p5_2b_insured_caller_gets_no_grant") == {"P5.2b"}
    assert cited_in_name("test_p52a_dibao_patient") == {"P5.2a"}
    assert cited_in_name("test_same_day_is_due_at_midnight_P4_1") == {"P4.1"}
    assert cited_in_name("test_holiday_P2_2_P4_1") == {"P2.2", "P4.1"}
    assert cited_in_name("test_p2d_timeout_and_top100") == set()
    assert cited_in_text("P5.2b/P5.2d: the place (P6.3), not P5.2x.1 or AP1.3") == {"P5.2b", "P5.2d", "P6.3"}


def test_the_repository_has_a_test_for_every_core_and_route_provision_and_cites_no_unknown_id():
    """Every core and route provision of the register is tested and cited by some rule."""
    table = build(ROOT / "tests")
    assert table.untested() == [] and not table.unknown
    for p in provisions().provisions:
        if p.scope in ("core", "route"):
            assert table.rules[p.id], f"{p.id} is cited by no rule"
    assert "relief:P5.2b" in table.rules["P5.2b"] and "router:sla:same_day" in table.rules["P4.1"]
    wanted = "::test_p5_2b_insured_caller_gets_no_grant_and_the_reason_says_why"
    assert any(t.endswith(wanted) for t in table.tests["P5.2b"])


def test_a_core_provision_without_a_test_fails_the_table(tmp_path, capsys):
    """Tests that cite only P1.2 leave every other core and route provision untested: exit 1, named."""
    (tmp_path / "test_one.py").write_text('def test_price_gouging_P1_2():\n    """P1.2"""\n', encoding="utf-8")
    assert main(["--tests", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "| P1.2 | route |" in out and "1: test_price_gouging_P1_2" in out
    assert "core or route provisions without a test: P1.1, P1.3" in err and "P1.2," not in err


def test_make_policy_table_prints_the_table_and_succeeds():
    done = subprocess.run([sys.executable, "-m", "tools.policy_table"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("| provision | scope | title | rules | tests |")
    assert "| P5.2b | core |" in done.stdout
