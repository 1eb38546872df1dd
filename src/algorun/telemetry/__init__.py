"""Observability shared by the data-plane components: structured JSON logs carrying the traceID, and the
health/readiness/metrics HTTP server (port 10080 for runners and hook runners, 28080 for the endpoint)."""

from algorun.telemetry.health import HealthServer, Readiness
from algorun.telemetry.logs import configure_logging, current_trace_id, trace_context

__all__ = ["HealthServer", "Readiness", "configure_logging", "current_trace_id", "trace_context"]
