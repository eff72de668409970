"""`make bench` rows: USSD through a harness bind to an echo application bind (docs/smpp.md).

Run: .venv/bin/python -m bench.smpp_apps            (prints one JSON object; asserts nothing)
     .venv/bin/python -m bench.smpp_apps echo PORT  (the echo app alone, until killed)

`ussd-sim serve` runs with an app account `echo` (`role: app`) and the route
`"*555#": smpp:echo`; the echo app is its own process on the project's ESME client
(sim/esme.py), answering each deliver_sm with a submit_sm (op 2 "Echo: …", op 17 when the
subscriber sends `0`); the load generator (`sim.load`, this process) binds as the harness and
runs `*555#` → `1` → `0`. So every step crosses SMPP twice more than a built-in service's:
harness → gateway → app → gateway → harness. Three processes on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.load import CONCURRENCY, ROOT, gateway, load, spawned
from sim.esme import Esme, connect
from sim.load import JourneyStep
from ussd.smpp.constants import UssdServiceOp
from ussd.smpp.pdu import DeliverSm, Pdu, SubmitSm, decode_text, encode_text, ussd_tlvs

APP = {"system_id": "echo", "password": "echo", "role": "app"}
CODE = "*555#"
JOURNEY: tuple[JourneyStep, ...] = (
    JourneyStep("dial", CODE, "dial", True, False),
    JourneyStep("reply", "1", "reply #1", True, False),
    JourneyStep("reply", "0", "reply #2", True, True),
)
RATE = 1000.0  # steps per second offered for the latency figure (open model)
_BOUND = re.compile(r"echo bound ([\d.]+):(\d+)")


class EchoApp(Esme):
    """An application bind that echoes what the subscriber sent; `0` ends the dialog."""

    def request_received(self, pdu: Pdu) -> Pdu | None:
        if isinstance(pdu, DeliverSm) and pdu.ussd_service_op in (
            UssdServiceOp.PSSR_INDICATION,
            UssdServiceOp.USSR_CONFIRM,
        ):
            text = decode_text(pdu.message, pdu.data_coding)
            end = text == "0"
            data, coding = encode_text(f"Echo: {text}")
            op = UssdServiceOp.PSSR_RESPONSE if end else UssdServiceOp.USSR_REQUEST
            self.send_request(
                SubmitSm(
                    service_type="USSD",
                    source_addr=pdu.destination_addr,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    destination_addr=pdu.source_addr,
                    data_coding=coding,
                    short_message=data,
                    tlvs=ussd_tlvs(op, pdu.its_session_info),
                )
            )
        return super().request_received(pdu)


async def serve_echo(port: int) -> None:
    app = await connect(lambda: EchoApp(window=1000), "127.0.0.1", port)
    await app.bind(str(APP["system_id"]), str(APP["password"]))
    print(f"echo bound 127.0.0.1:{port}", flush=True)
    await app.done  # until the gateway goes (or the bench stops this process)


def config_with_app(directory: Path) -> Path:
    """The shipped config.yaml plus the echo app's account and route."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["smpp"]["accounts"].append(APP)
    data["ussd"]["routes"][CODE] = f"smpp:{APP['system_id']}"
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def run() -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="ussd-apps-") as tmp,
        gateway(config_with_app(Path(tmp))) as port,
        spawned([sys.executable, "-m", "bench.smpp_apps", "echo", str(port)], _BOUND),
    ):
        closed = load(port, JOURNEY, concurrency=CONCURRENCY, prefix="7995")
        at_rate = load(port, JOURNEY, rate=RATE, prefix="7996")
    return {"closed": closed, f"{RATE:.0f}": at_rate}


def main(argv: list[str] | None = None) -> None:
    import json

    from ussd import log

    args = sys.argv[1:] if argv is None else argv
    log.configure("console", "error")
    if len(args) == 2 and args[0] == "echo":
        asyncio.run(serve_echo(int(args[1])))
        return
    if args:
        print("usage: python -m bench.smpp_apps [echo PORT]", file=sys.stderr)
        raise SystemExit(2)
    print(json.dumps(run()))


if __name__ == "__main__":
    main()
