"""`GET /metrics` (SPEC §6) renders the gateway's own `ussd.metrics.Metrics`.

The metrics belong to the gateway (`gateway.metrics`, docs/design.md "Layer rules"); the HTTP
transport counts its requests and refused connections there and renders the registry. The names
below are kept for callers written before the gateway owned its metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ussd.metrics import CONTENT_TYPE, SMPP_COMMANDS, SMPP_STATUSES, UNKNOWN, Metrics

if TYPE_CHECKING:
    from ussd.runtime import Gateway

__all__ = ["CONTENT_TYPE", "SMPP_COMMANDS", "SMPP_STATUSES", "UNKNOWN", "Metrics", "for_gateway"]


def for_gateway(gateway: Gateway) -> Metrics:
    """The gateway's Metrics: `gateway.metrics`."""
    return gateway.metrics


def smpp_pdu(gateway: Gateway, command: str, status: str = "ESME_ROK") -> None:
    """Shortcut: `metrics.smpp_pdu(gw, "bind_transceiver_resp", "ESME_ROK")`."""
    gateway.metrics.smpp_pdu(command, status)
