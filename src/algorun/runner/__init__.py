"""The algo-runner: consume an algo's input topics, call the algo through an executor (`http`, `grpc`,
`Executable`, `python`), produce its outputs, and route failures through retry topics to a dead-letter topic.

Start with `service.Runner` (the main loop); the pure parts (`delivery`, `retry`, `staging`, `routing`) are
tested without I/O. See docs/runner.md for the contracts an algo sees.
"""
