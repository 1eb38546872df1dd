"""Creates a pipeline's data connectors on a Kafka Connect worker through its REST API (local mode's stand-in for
the Strimzi KafkaConnector objects the operator writes)."""

from __future__ import annotations

import aiohttp

from algorun.local.plan import ConnectorSpec


class ConnectError(Exception):
    """Kafka Connect refused a connector or could not be reached; the message says which and why."""


async def apply_connectors(base_url: str, connectors: list[ConnectorSpec]) -> None:
    """Create or update each connector (`PUT /connectors/{name}/config` is idempotent)."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for connector in connectors:
            url = f"{base_url.rstrip('/')}/connectors/{connector.name}/config"
            try:
                async with session.put(url, json=connector.config) as response:
                    if response.status >= 300:
                        body = await response.text()
                        raise ConnectError(
                            f"Kafka Connect refused connector {connector.name}: {response.status} {body}"
                        )
            except aiohttp.ClientError as exc:
                raise ConnectError(f"cannot reach Kafka Connect at {base_url}: {exc}") from exc


async def delete_connectors(base_url: str, names: list[str]) -> None:
    """Delete the connectors a run created (a connector already gone is fine)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for name in names:
            try:
                async with session.delete(f"{base_url.rstrip('/')}/connectors/{name}") as response:
                    if response.status >= 300 and response.status != 404:
                        raise ConnectError(f"Kafka Connect did not delete {name}: {response.status}")
            except aiohttp.ClientError as exc:
                raise ConnectError(f"cannot reach Kafka Connect at {base_url}: {exc}") from exc
