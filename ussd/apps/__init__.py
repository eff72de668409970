"""External USSD applications over HTTP (docs/apps.md)."""
