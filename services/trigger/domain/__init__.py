"""The trigger's rules: who is asked, and why not. Pure: no I/O, ``now`` is always passed in."""
