"""Scoring's rules: what a score means and what a set of scores adds up to. Pure: no I/O."""
