"""The event-hook runner: messages from the topics piped into `EventHook`, delivered to webhooks.

`delivery` is reusable on its own (signing, retries with backoff and jitter, timeouts): the operator's status
notifications use it too.
"""
