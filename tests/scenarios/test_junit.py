"""JUnit XML (docs/scenarios.md): checked against tests/scenarios/junit.xsd.

The XSD validates every file (xmlschema); the counts that must add up are checked below too.
"""

from __future__ import annotations

import socket
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from sim import junit, runner
from tests.scenarios.conftest import ROOT
from ussd import cli

XSD = Path(__file__).with_name("junit.xsd")

SUITES_ATTRS = {"name", "tests", "failures", "errors", "time"}
SUITE_ATTRS = SUITES_ATTRS | {"skipped"}
CASE_ATTRS = {"name", "classname", "time"}


def validate(path: Path) -> ET.Element:
    """Validate like the XSD does; returns the root."""
    xmlschema.XMLSchema(str(XSD)).validate(str(path))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert set(root.attrib) == SUITES_ATTRS
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for suite in root:
        assert suite.tag == "testsuite" and set(suite.attrib) == SUITE_ATTRS
        cases = list(suite)
        assert cases and all(c.tag == "testcase" for c in cases)
        counts = {"tests": len(cases), "failures": 0, "errors": 0}
        for case in cases:
            assert set(case.attrib) == CASE_ATTRS
            assert float(case.get("time", "-1")) >= 0
            children = list(case)
            assert len(children) <= 1
            for child in children:
                assert child.tag in ("failure", "error")
                assert set(child.attrib) == {"message", "type"}
                assert child.get("message") and child.text
                counts["failures" if child.tag == "failure" else "errors"] += 1
        for k, v in counts.items():
            assert int(suite.get(k, "-1")) == v
            totals[k] += v
        assert suite.get("skipped") == "0"
    for k, v in totals.items():
        assert int(root.get(k, "-1")) == v
    return root


def test_xsd_is_well_formed() -> None:
    assert ET.parse(XSD).getroot().tag.endswith("schema")


def test_report_with_a_pass_and_a_failure(tmp_path: Path) -> None:
    scenarios = tmp_path / "flows.yaml"
    scenarios.write_text(
        textwrap.dedent("""\
            - name: Balance
              subscribers: [{msisdn: "79161234567", balance: 7}]
              steps: [{dial: "*100#", expect: {end: true, text: "7.00"}}]
            - name: Wrong on purpose
              subscribers: [{msisdn: "79161234567"}]
              steps: [{dial: "*100#", expect: {continue: true}}]
        """),
        encoding="utf-8",
    )
    out = tmp_path / "reports" / "junit.xml"
    code = cli.main(
        ["run", str(scenarios), "--junit", str(out), "--config", str(ROOT / "config.yaml")]
    )
    assert code == 1
    root = validate(out)
    (suite,) = root
    assert suite.get("name") == str(scenarios)
    ok, bad = suite
    assert (ok.get("name"), ok.get("classname")) == ("Balance", "flows")
    assert list(ok) == []
    (failure,) = bad
    assert failure.get("message") == "step 1: continue: expected true, got false (end)"
    assert failure.text is not None and "field     expected  actual" in failure.text
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")


def test_report_with_load_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: X\nsubscribers: [{msisdn: '79161234567'}]\nstpes: []\n", "utf-8")
    out = tmp_path / "junit.xml"
    assert cli.main(["run", str(broken), "--junit", str(out)]) == 2
    root = validate(out)
    (suite,) = root
    (case,) = suite
    (error,) = case
    assert error.tag == "error"
    assert error.get("message") == f"{broken}: scenario \"X\": unknown key 'stpes'"
    assert case.get("classname") == "broken"


def test_every_bad_scenario_of_a_file_is_a_case_of_one_suite(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "- {name: A, subscribers: [{msisdn: '79161234567'}], steps: [{dial: 1}]}\n"
        "- {name: B, subscribers: [{msisdn: '79161234567'}], stpes: []}\n",
        "utf-8",
    )
    out = tmp_path / "junit.xml"
    assert cli.main(["run", str(broken), "--junit", str(out)]) == 2
    root = validate(out)
    (suite,) = root
    assert [c.get("name") for c in suite] == ['load: scenario "A"', 'load: scenario "B"']
    assert (suite.get("tests"), suite.get("errors")) == ("2", "2")


def test_an_unreachable_target_is_one_error(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "name: G\nsubscribers: [{msisdn: '79161234567'}]\nsteps: [{dial: '*100#'}]\n", "utf-8"
    )
    out = tmp_path / "junit.xml"
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert cli.main(["run", str(good), "--target", url, "--junit", str(out)]) == 2
    root = validate(out)
    (suite,) = root
    (case,) = suite
    assert case[0].get("message", "").startswith(f"target: cannot reach {url}: ")


@pytest.mark.parametrize("count", [0, 3])
def test_build_counts(count: int, base: dict[str, Any], tmp_path: Path) -> None:
    results = [
        runner.ScenarioResult(file="a.yaml", name=f"s{i}", index=i, steps=1, ran=1, seconds=0.001)
        for i in range(count)
    ]
    path = tmp_path / "j.xml"
    junit.write(path, results)
    root = validate(path)
    assert root.get("tests") == str(count)
    assert len(root) == (1 if count else 0)


def test_schema_rejects_a_broken_report(tmp_path: Path) -> None:
    # The schema is a real check: a testcase without its classname does not validate.
    bad = tmp_path / "bad.xml"
    bad.write_text(
        '<testsuites name="x" tests="1" failures="0" errors="0" time="0">'
        '<testsuite name="s" tests="1" failures="0" errors="0" skipped="0" time="0">'
        '<testcase name="c" time="0"/></testsuite></testsuites>',
        encoding="utf-8",
    )
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xmlschema.XMLSchema(str(XSD)).validate(str(bad))
