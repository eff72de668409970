"""Small example USSD apps in aggregator dialects (docs/apps.md, README.md tour)."""
