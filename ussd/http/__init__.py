"""HTTP transport (SPEC §6): web handset, phones API, health and Prometheus metrics."""

from ussd.http.app import HttpServer, make_app, start_http

__all__ = ["HttpServer", "make_app", "start_http"]
