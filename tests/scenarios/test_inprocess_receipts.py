"""The in-process target's MO SMS goes through the same SMS centre as the SMPP server's
(ussd/smpp/smsc.py): its receipt reports the SMS's real fate, when it happens, never at once."""

from __future__ import annotations

import textwrap
from typing import Any

from sim import runner
from sim import scenario as sc

NOT_BEFORE_DELIVERY = """\
name: Receipt only once the SMS is delivered
subscribers: [{msisdn: "79161234567"}, {msisdn: "79161112233"}]
steps:
  - mo_sms: {from: "79161234567", to: "79161112233", text: "Hi", receipt: true}
    expect: {ok: true}
  - sms: {to: "79161234567", kind: receipt, count: 0}
  - sms: {to: "79161112233", text: "Hi", from: "79161234567"}
  - sms: {to: "79161234567", kind: receipt, count: 1, text: "/stat:DELIVRD/"}
"""

EXPIRED = """\
name: Receipt of an SMS nobody read reports it expired
subscribers: [{msisdn: "79161234567"}, {msisdn: "79161112233"}]
steps:
  - mo_sms: {from: "79161234567", to: "79161112233", text: "Hi", receipt: true}
  - advance: 2d
  - sms: {to: "79161234567", kind: receipt, count: 1, text: "/stat:EXPIRED/"}
"""


def run(text: str, base: dict[str, Any]) -> runner.ScenarioResult:
    (scenario,) = sc.loads(textwrap.dedent(text), "t.yaml", base)
    return runner.run_scenario(scenario)


def test_receipt_waits_for_delivery(base: dict[str, Any]) -> None:
    result = run(NOT_BEFORE_DELIVERY, base)
    assert result.passed, runner.format_failure(result)


def test_receipt_of_an_expired_sms(base: dict[str, Any]) -> None:
    result = run(EXPIRED, base)
    assert result.passed, runner.format_failure(result)
