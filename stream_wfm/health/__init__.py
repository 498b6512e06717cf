"""Endpoint health (docs/contract.md §10): the circuit breaker of each endpoint, what
each instance reports about it, auto-disable and its notice."""
