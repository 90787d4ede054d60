"""Machinery shared by every service: events, Kafka, outbox, database, settings, HTTP, auth.

Business rules never live here; they live in each service's ``domain`` package.
"""
