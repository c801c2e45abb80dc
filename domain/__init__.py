"""Yingke's domain: aggregates, events, rules and the application service.

Imports only the standard library, ``eventsourcing`` and its own modules.
"""
