"""The survey's rules: links, delivery retries, answers. Pure: no I/O, ``now`` is always passed in."""
