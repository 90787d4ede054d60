"""The alerting rules: who is a detractor, the follow-up SLA clock, case transitions, and what the
emails say. Pure: no I/O, ``now`` is always passed in."""
