"""One webhook's HTTP delivery: a signed request, the success rule, retries with backoff and a circuit breaker.

The event-hook runner (`algorun.hooks`, topics to webhooks) and the operator's status notifications
(`algorun.operator.notify`) both deliver through `delivery`, so they share one definition of success, retries and
signing; it sits below both.
"""
