"""The event-hook runner: messages from the topics piped into `EventHook`, delivered to webhooks.

Each delivery goes through `algorun.webhook` (signing, retries with backoff and jitter, the circuit breaker),
which the operator's status notifications use too.
"""
