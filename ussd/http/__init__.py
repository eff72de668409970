"""HTTP transport: web handset, phones API, health and Prometheus metrics (docs/phones.md)."""

from ussd.http.app import HttpServer, make_app, start_http

__all__ = ["HttpServer", "make_app", "start_http"]
