"""algorun: the Algo.Run pipeline operator.

Users declare data pipelines in YAML (algos, an ingestion endpoint, event hooks, data connectors and the pipes
between them); algorun runs them on Kubernetes through an operator, or on one machine with `algorun run`.
"""

__version__ = "0.2.0"
