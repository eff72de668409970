"""JUnit XML for CI (docs/scenarios.md): testsuites / testsuite per file / testcase per scenario.

The de-facto schema CI servers read (Jenkins, GitLab, GitHub annotations): `testcase` has
`name`, `classname` (here the file's stem) and `time`; a failed one holds a `failure` with a
one-line `message`, a `type`, and the full report as its text. A scenario that does not load is
a testcase with an `error` element (the whole file, when it is not YAML).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sim.scenario import ScenarioError

if TYPE_CHECKING:  # the runner writes JUnit files through this module, never the reverse
    from sim.runner import ScenarioResult


def build(results: Sequence[ScenarioResult], errors: Sequence[ScenarioError] = ()) -> ET.Element:
    """The `<testsuites>` element for these results (grouped by file, in order)."""
    root = ET.Element("testsuites", name="ussd-sim")
    by_file: dict[str, list[ScenarioResult]] = {}
    for result in results:
        by_file.setdefault(result.file, []).append(result)
    total_tests = total_failures = total_errors = 0
    total_time = 0.0
    for file, items in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=file)
        failures = 0
        seconds = 0.0
        for r in items:
            seconds += r.seconds
            case = ET.SubElement(
                suite, "testcase", name=r.name, classname=r.classname, time=f"{r.seconds:.3f}"
            )
            if r.failure is not None:
                failures += 1
                failure = ET.SubElement(
                    case, "failure", message=r.failure.summary, type="ScenarioFailure"
                )
                failure.text = r.report
        _counts(suite, len(items), failures, 0, seconds)
        total_tests += len(items)
        total_failures += failures
        total_time += seconds
    errors_by_file: dict[str, list[ScenarioError]] = {}
    for error in errors:
        errors_by_file.setdefault(error.file, []).append(error)
    for file, problems in errors_by_file.items():
        # One suite per file, one errored testcase per scenario that did not load.
        suite = ET.SubElement(root, "testsuite", name=file)
        for error in problems:
            name = f"load: {error.scenario}" if error.scenario else "load"
            case = ET.SubElement(
                suite, "testcase", name=name, classname=Path(file).stem, time="0.000"
            )
            element = ET.SubElement(case, "error", message=str(error), type="ScenarioError")
            element.text = str(error)
        _counts(suite, len(problems), 0, len(problems), 0.0)
        total_tests += len(problems)
        total_errors += len(problems)
    _counts(root, total_tests, total_failures, total_errors, total_time)
    return root


def _counts(element: ET.Element, tests: int, failures: int, errors: int, seconds: float) -> None:
    element.set("tests", str(tests))
    element.set("failures", str(failures))
    element.set("errors", str(errors))
    if element.tag == "testsuite":
        element.set("skipped", "0")
    element.set("time", f"{seconds:.3f}")


def write(
    path: str | os.PathLike[str],
    results: Sequence[ScenarioResult],
    errors: Sequence[ScenarioError] = (),
) -> None:
    """Write the report as UTF-8 XML with a declaration."""
    tree = ET.ElementTree(build(results, errors))
    ET.indent(tree)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
