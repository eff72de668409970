"""The scenario runner: each scenario in a fresh world, steps checked as they run.

A failing step stops its scenario and reports file, scenario, step number, the step as written,
and expected against actual, one row per field. Scenarios are independent, so `-j N` runs them
in N processes; results come back in file order whatever finishes first.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

from sim import junit as junit_mod
from sim import scenario as sc
from sim import web
from sim.browser import Browser
from sim.targets import Result, ScreenView, SmsView, Target, make_target

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_LOAD = 2


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One field that did not come out as expected."""

    field: str
    expected: str
    actual: str


@dataclass(frozen=True, slots=True)
class StepFailure:
    """Why a scenario stopped: the step and what differed (or what went wrong)."""

    step: int
    source: str
    mismatches: tuple[Mismatch, ...] = ()
    message: str = ""

    @property
    def summary(self) -> str:
        if self.message:
            return f"step {self.step}: {self.message}"
        first = self.mismatches[0]
        more = len(self.mismatches) - 1
        tail = f" (and {more} more)" if more else ""
        return (
            f"step {self.step}: {first.field}: expected {first.expected}, got {first.actual}{tail}"
        )


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """How one scenario ran (plain data: it crosses process boundaries)."""

    file: str
    name: str
    index: int
    steps: int  # steps in the scenario
    ran: int  # steps that ran (the failing one included)
    seconds: float
    failure: StepFailure | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None

    @property
    def label(self) -> str:
        return f'scenario "{self.name}"'

    @property
    def classname(self) -> str:
        return os.path.splitext(os.path.basename(self.file))[0]

    @property
    def report(self) -> str:
        """The failure as `format_failure` prints it (a JUnit failure's text)."""
        return format_failure(self)


@dataclass(frozen=True, slots=True)
class Options:
    """How to run: where (targets), how wide (jobs), with what base config."""

    jobs: int = 1
    targets: tuple[str, ...] = ()
    admin_token: str | None = None
    base: Mapping[str, Any] = field(default_factory=dict)


class StepFailed(Exception):
    def __init__(self, mismatches: Sequence[Mismatch] = (), message: str = "") -> None:
        super().__init__(message or ", ".join(m.field for m in mismatches))
        self.mismatches = tuple(mismatches)
        self.message = message


# -- checks -------------------------------------------------------------------------------------


def _q(text: str) -> str:
    return sc._quote(text)


def _b(value: object) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def check_result(result: Result, expect: sc.Expect | None) -> list[Mismatch]:
    """ok / status / error; a refusal the step does not mention is a mismatch of its own."""
    out: list[Mismatch] = []
    actual_error = f"{result.status} {result.error}: {result.message}"
    if expect is None or not expect.about_errors:
        if not result.ok:
            out.append(Mismatch("ok", "true", f"false ({actual_error})"))
        return out
    if expect.ok is not None and expect.ok != result.ok:
        actual = "true" if result.ok else f"false ({actual_error})"
        out.append(Mismatch("ok", _b(expect.ok), actual))
    if expect.status is not None and expect.status != result.status:
        out.append(Mismatch("status", str(expect.status), f"{result.status} ({result.error})"))
    if expect.error is not None and expect.error != result.error:
        actual = result.error if result.error is not None else f"none (status {result.status})"
        out.append(Mismatch("error", expect.error, actual))
    return out


def check_screen(screen: ScreenView | None, expect: sc.Expect | None) -> list[Mismatch]:
    """continue / end / text / page / pages / timeout against a screen."""
    if expect is None:
        return []
    if screen is None:
        wanted = [
            k
            for k in ("continue_", "end", "text", "page", "pages", "timeout")
            if getattr(expect, k) is not None
        ]
        return [Mismatch(k.rstrip("_"), "a screen", "no screen") for k in wanted]
    out: list[Mismatch] = []
    state = "end" if screen.end else "continue"
    if expect.continue_ is not None and expect.continue_ == screen.end:
        out.append(Mismatch("continue", _b(expect.continue_), f"{_b(not screen.end)} ({state})"))
    if expect.end is not None and expect.end != screen.end:
        out.append(Mismatch("end", _b(expect.end), f"{_b(screen.end)} ({state})"))
    if expect.text is not None and not expect.text.matches(screen.text):
        out.append(Mismatch("text", str(expect.text), _q(screen.text)))
    for name in ("page", "pages"):
        want = getattr(expect, name)
        got = getattr(screen, name)
        if want is not None and want != got:
            out.append(
                Mismatch(name, str(want), "unknown on this target" if got is None else str(got))
            )
    if expect.timeout is not None and expect.timeout != screen.timeout:
        out.append(Mismatch("timeout", _b(expect.timeout), _b(screen.timeout)))
    return out


def check_account(data: Mapping[str, Any], expect: sc.Expect | None) -> list[Mismatch]:
    """balance / linked / number_management / has_password against an account view (§7)."""
    if expect is None:
        return []
    out: list[Mismatch] = []
    if expect.balance is not None:
        got = data.get("balance")
        if not isinstance(got, int | float) or not math.isclose(got, expect.balance, abs_tol=1e-9):
            out.append(Mismatch("balance", f"{expect.balance:g}", str(got)))
    for name in ("number_management", "has_password"):
        want = getattr(expect, name)
        if want is not None and data.get(name) != want:
            out.append(Mismatch(name, _b(want), _b(data.get(name))))
    if expect.linked is not None:
        numbers = data.get("numbers") or []
        actual = {str(n.get("number")): str(n.get("state")) for n in numbers}
        ok = set(actual) == {item.msisdn for item in expect.linked} and all(
            item.state is None or actual.get(item.msisdn) == item.state for item in expect.linked
        )
        if not ok:
            want_s = ", ".join(
                f"{i.msisdn} {i.state}" if i.state else i.msisdn for i in expect.linked
            )
            got_s = ", ".join(f"{m} {s}" for m, s in sorted(actual.items()))
            out.append(Mismatch("linked", f"[{want_s}]", f"[{got_s}]"))
    return out


def check_sms(inbox: list[SmsView], check: sc.SmsCheck) -> list[Mismatch]:
    """At least one matching SMS in the inbox, or exactly `count` of them."""
    found = _matching(inbox, check)
    wanted = _describe_sms(check)
    if check.count is None and not found:
        got = "; ".join(_q(s.text) for s in inbox) or "empty inbox"
        return [Mismatch("sms", wanted, got)]
    if check.count is not None and len(found) != check.count:
        got = f"{len(found)} matching of {len(inbox)}: " + (
            "; ".join(_q(s.text) for s in inbox) or "empty inbox"
        )
        return [Mismatch("sms", wanted, got)]
    return []


def _matching(inbox: list[SmsView], check: sc.SmsCheck) -> list[SmsView]:
    return [
        s
        for s in inbox
        if (check.text is None or check.text.matches(s.text))
        and (check.sender is None or s.sender == check.sender)
        and (check.sms_kind is None or s.kind == check.sms_kind)
    ]


def _describe_sms(check: sc.SmsCheck) -> str:
    parts = [f"to {check.to}"]
    if check.text is not None:
        parts.append(f"text {check.text}")
    if check.sender is not None:
        parts.append(f"from {check.sender}")
    if check.sms_kind is not None:
        parts.append(f"kind {check.sms_kind}")
    count = "at least 1" if check.count is None else str(check.count)
    return f"{count} SMS " + ", ".join(parts)


# -- running one scenario -----------------------------------------------------------------------


async def run_step(target: Target, step: sc.Step, browser: Browser | None = None) -> None:
    """Perform one step; StepFailed when its result is not what the step expects."""
    a, who, expect = step.action, step.msisdn, step.expect
    problems: list[Mismatch] = []
    if isinstance(a, web.WebAction):
        # The website's and the app's steps, the pages' own requests (sim/browser.py).
        page = browser or Browser(target)
        try:
            result = await page.perform(a, who)
        finally:
            if browser is None:
                await page.close()
        problems = check_result(result, expect)
        if result.ok and expect is not None:
            problems += check_account(result.data, expect)
            found = web.check_json(result.data, expect.json or ())
            problems += [Mismatch(*triple) for triple in found]
    elif isinstance(a, sc.Dial | sc.Reply | sc.Push):
        if isinstance(a, sc.Push):  # the screen the network pushed (docs/smpp.md "Pushes")
            result = await target.push(who, a.text, a.reply, a.origin)
        else:
            call = target.dial if isinstance(a, sc.Dial) else target.reply
            result = await call(who, a.text)
        problems = check_result(result, expect)
        if result.ok:
            problems += check_screen(result.screen, expect)
    elif isinstance(a, sc.Release):
        problems = check_result(await target.release(who), None)
    elif isinstance(a, sc.SmsCheck):
        check = a

        def enough(inbox: list[SmsView]) -> bool:
            n = len(_matching(inbox, check))
            return n >= 1 if check.count is None else n >= check.count

        problems = check_sms(await target.inbox(a.to, enough), a)
    elif isinstance(a, sc.Advance):
        problems = check_result(await target.advance(a.seconds), None)
    elif isinstance(a, sc.WaitTimeout):
        result = await target.wait_timeout(who)
        problems = check_result(result, None)
        if result.ok:
            want = expect or sc.Expect()
            # The step's point: the dialog ended, and because of the timeout (docs/design.md).
            full = sc.Expect(
                end=True if want.end is None else want.end,
                timeout=True if want.timeout is None else want.timeout,
                text=want.text,
            )
            problems += check_screen(result.screen, full)
    else:
        if isinstance(a, sc.Login):
            result = await target.login(a.msisdn, a.password)
        elif isinstance(a, sc.OfficeLink):
            result = await target.office_link(a.account, a.number)
        elif isinstance(a, sc.AppLink):
            result = await target.app_link(a.account, a.number, a.password)
        elif isinstance(a, sc.SmsPassword):
            result = await target.sms_password(a.msisdn, a.captcha)
        elif isinstance(a, sc.MoSms):
            result = await target.mo_sms(a.sender, a.to, a.text, a.receipt)
        elif isinstance(a, sc.Fault):
            result = await target.fault(a.rule)
        else:
            assert isinstance(a, sc.Account)
            result = await target.account(a.msisdn)
        problems = check_result(result, expect)
        if isinstance(a, sc.Account) and result.ok:
            problems += check_account(result.data, expect)
    if problems:
        raise StepFailed(problems)


async def run_async(
    scenario: sc.Scenario, target: Target, on_step: Callable[[sc.Step], None] | None = None
) -> ScenarioResult:
    """Run one scenario's steps on `target` (set up here, closed at the end)."""
    started = time.perf_counter()
    ran = 0
    failure: StepFailure | None = None
    browser = Browser(target)
    try:
        await target.setup(scenario)
        for step in scenario.steps:
            ran = step.number
            if on_step is not None:
                on_step(step)
            try:
                await run_step(target, step, browser)
            except StepFailed as exc:
                failure = StepFailure(step.number, step.source, exc.mismatches, exc.message)
                break
    except Exception as exc:  # a broken target or gateway must not stop the other scenarios
        failure = StepFailure(ran, _source(scenario, ran), message=f"{type(exc).__name__}: {exc}")
    finally:
        try:
            await browser.close()
            await target.close()
        except Exception as exc:
            if failure is None:
                failure = StepFailure(ran, "", message=f"closing the target: {exc}")
    return ScenarioResult(
        file=scenario.file,
        name=scenario.name,
        index=scenario.index,
        steps=len(scenario.steps),
        ran=ran,
        seconds=time.perf_counter() - started,
        failure=failure,
    )


def _source(scenario: sc.Scenario, number: int) -> str:
    return scenario.steps[number - 1].source if 1 <= number <= len(scenario.steps) else ""


def run_scenario(scenario: sc.Scenario, options: Options | None = None) -> ScenarioResult:
    """Run one scenario on a fresh target (synchronous entry point)."""
    options = options or Options()
    target = make_target(
        options.targets,
        options.admin_token or scenario.config.http.admin_token,
        scenario.config.ussd.reply_timeout,
    )
    return asyncio.run(run_async(scenario, target))


def _run_in_worker(job: tuple[str, int, Options]) -> ScenarioResult:
    # Workers reload the file rather than receive the scenario: only plain data crosses over.
    path, index, options = job
    scenario = sc.load(path, options.base)[index]
    return run_scenario(scenario, options)


def _quiet_worker() -> None:
    from ussd import log

    log.configure("console", "error")


def run_many(scenarios: Sequence[sc.Scenario], options: Options) -> Iterator[ScenarioResult]:
    """Results in the order of `scenarios`, run `options.jobs` at a time."""
    if options.jobs <= 1 or len(scenarios) <= 1:
        for s in scenarios:
            yield run_scenario(s, options)
        return
    jobs = [(s.file, s.index, options) for s in scenarios]
    with ProcessPoolExecutor(
        max_workers=min(options.jobs, len(jobs)), initializer=_quiet_worker
    ) as pool:
        yield from pool.map(_run_in_worker, jobs)


# -- reporting ----------------------------------------------------------------------------------


def format_result(result: ScenarioResult) -> str:
    """`✓ name (n steps, t ms)`, and for a failure the side-by-side report under it."""
    ms = result.seconds * 1000
    if result.failure is None:
        return f"✓ {result.name} ({plural(result.steps, 'step')}, {ms:.0f} ms)"
    total = plural(result.steps, "step")
    lines = [f"✗ {result.name} ({result.ran} of {total}, {ms:.0f} ms)"]
    lines.extend("  " + line for line in format_failure(result).splitlines())
    return "\n".join(lines)


def format_failure(result: ScenarioResult) -> str:
    """File, scenario, step number, the step, then expected and actual side by side."""
    f = result.failure
    assert f is not None
    lines = [f"{result.file}: {result.label}: step {f.step}"]
    if f.source:
        lines.append(f"  step:  {f.source}")
    if f.message:
        lines.append(f"  error: {f.message}")
    if f.mismatches:
        width_f = max(len("field"), *(len(m.field) for m in f.mismatches))
        width_e = max(len("expected"), *(len(m.expected) for m in f.mismatches))
        lines.append(f"  {'field'.ljust(width_f)}  {'expected'.ljust(width_e)}  actual")
        for m in f.mismatches:
            lines.append(f"  {m.field.ljust(width_f)}  {m.expected.ljust(width_e)}  {m.actual}")
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    """`1 step`, `2 steps`, `0 steps`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(results: Sequence[ScenarioResult], seconds: float) -> str:
    failed = sum(1 for r in results if not r.passed)
    steps = sum(r.ran for r in results)
    return (
        f"{plural(len(results), 'scenario')}, {len(results) - failed} passed, {failed} failed "
        f"({plural(steps, 'step')}, {seconds:.2f} s)"
    )


def load_all(
    paths: Iterable[str | os.PathLike[str]], base: Mapping[str, Any]
) -> tuple[list[sc.Scenario], list[sc.ScenarioError]]:
    """Every scenario under `paths`, and every load error: each bad scenario of each file."""
    paths = list(paths)
    scenarios: list[sc.Scenario] = []
    errors: list[sc.ScenarioError] = []
    files = sc.discover(paths)
    if not files:
        errors.append(sc.ScenarioError(" ".join(map(str, paths)) or "<none>", "no scenario files"))
    for path in files:
        loaded, problems = sc.load_report(path, base)
        scenarios.extend(loaded)
        errors.extend(problems)
    return scenarios, errors


def unreachable(targets: Sequence[str], timeout: float = 5.0) -> str | None:
    """Why the first of `targets` that takes no TCP connection cannot be reached, else None.

    Checked once before running, so a gateway that is not up is one line, not one failure per
    scenario. Only a connect and close: nothing is sent.
    """
    for url in targets:
        parts = urlsplit(url)
        default = 2775 if parts.scheme == "smpp" else 443 if parts.scheme == "https" else 80
        try:
            port = parts.port or default
        except ValueError:
            return f"cannot reach {_safe_url(url)}: bad port"
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout):
                pass
        except OSError as exc:
            return f"cannot reach {_safe_url(url)}: {exc.strerror or exc}"
    return None


def _safe_url(url: str) -> str:
    """The URL without its password (smpp://id:password@host:port)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def run(
    paths: Sequence[str | os.PathLike[str]],
    options: Options,
    out: TextIO,
    junit: str | os.PathLike[str] | None = None,
) -> int:
    """`ussd-sim run`: load everything, run, report; the exit code (0 ok, 1 failed, 2 load)."""
    scenarios, errors = load_all(paths, options.base)
    if errors:
        for error in errors:
            print(f"✗ {error}", file=out)
        files = len({e.file for e in errors})
        print(
            f"{plural(len(errors), 'load error')} in {plural(files, 'file')}; nothing was run",
            file=out,
        )
        if junit is not None:
            junit_mod.write(junit, [], errors)
        return EXIT_LOAD
    why = unreachable(options.targets)
    if why is not None:
        print(f"✗ {why}; nothing was run", file=out)
        if junit is not None:
            junit_mod.write(junit, [], [sc.ScenarioError("target", why)])
        return EXIT_LOAD
    started = time.perf_counter()
    results: list[ScenarioResult] = []
    for result in run_many(scenarios, options):
        results.append(result)
        print(format_result(result), file=out, flush=True)
    elapsed = time.perf_counter() - started
    print(summary(results, elapsed), file=out)
    if junit is not None:
        junit_mod.write(junit, results, [])
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED
