"""The peers' passthrough programs `benchmarks/peers.py` runs, each in its peer's own virtualenv (not benchmarks:
`make bench` runs only `benchmarks/[!_]*.py`). Each takes `bootstrap source destination group` and runs until
SIGTERM."""
