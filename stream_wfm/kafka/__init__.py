"""Kafka plumbing: client configuration, admin, embedded development broker."""
