"""The algo-runner: consume an algo's input topics, call the algo through an executor (`http`, `grpc`,
`Executable`, `python`), produce its outputs, and route failures through retry topics to a dead-letter topic.

Start with `service.Runner` (it names the part each module plays) and `main.serve` (the process). The pure parts
(`retry`, `staging`, `provenance`, and `algorun.bus.offsets` below them) are tested without I/O, the `outbox`
against a fake producer. See docs/runner.md for the contracts an algo sees.
"""
