"""Reporting's rules: how the read model's facts add up to a summary. Pure: no I/O."""
