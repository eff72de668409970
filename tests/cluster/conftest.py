"""Cluster tests run real `redis-server` and PostgreSQL (tests/services.py, docs/cluster.md)."""
