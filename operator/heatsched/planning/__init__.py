"""Pure planning code: numbers in, decisions with reasons out (no I/O; tests/test_purity.py checks it).

`heatsched.planning.fuel` sizes each site's heat fuel; the controller and the digital twin both call it, so
the benchmark measures the code that runs in the cluster.
"""
