"""Parsers of third-party payloads: what the email providers and the bounce mailbox send us,
turned into the survey's own facts. Pure: bytes or decoded JSON in, values out."""
