"""Entry script of the self-contained algo-runner build (frozen by PyInstaller into `bin/algo-runner`).

The binary is `algorun runner`: the operator starts it as `/algo-runner/bin/algo-runner --config FILE` inside
an algo image that may have no Python at all (`algo-runner runner --config FILE` works too). Two arguments are
handled here, before the command line sees them:

- `algo-runner --version` prints algorun's version;
- `algo-runner --bundle-check` proves that a build is complete: it imports every data-plane dependency the
  runner needs (Kafka client with its bundled librdkafka, HTTP and gRPC clients, the event loop, models) and
  prints their versions as JSON (exit 1 when one is missing).
"""

from __future__ import annotations

import importlib
import json
import platform
import sys

# Modules the runner imports at run time; a build missing one of them is broken even if --version works.
BUNDLE_MODULES = (
    "algorun.api",
    "algorun.bus",
    "confluent_kafka",
    "aiohttp",
    "grpc",
    "uvloop",
    "yaml",
    "pydantic",
    "prometheus_client",
)


def bundle_check() -> int:
    report: dict[str, object] = {"python": platform.python_version(), "frozen": bool(getattr(sys, "frozen", False))}
    modules: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name in BUNDLE_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any import failure means the bundle is incomplete
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        modules[name] = str(getattr(module, "__version__", "") or "")
    if "confluent_kafka" in modules:
        import confluent_kafka

        modules["librdkafka"] = confluent_kafka.libversion()[0]
    report["modules"] = modules
    report["failed"] = failed
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    return 1 if failed else 0


def runner_argv(argv: list[str]) -> list[str]:
    """The `algorun` command line for the binary's arguments: the `runner` subcommand, except `--version`."""
    args = argv[1:]
    if args == ["--version"]:
        return ["algo-runner", "--version"]
    if args[:1] == ["runner"]:
        args = args[1:]
    return ["algo-runner", "runner", *args]


def run() -> None:
    if sys.argv[1:] == ["--bundle-check"]:
        sys.exit(bundle_check())
    from algorun.cli.main import main

    sys.argv = runner_argv(sys.argv)
    main()


if __name__ == "__main__":
    run()
