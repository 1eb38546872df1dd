"""Make sure a pipeline's storage bucket exists (the claim-check store), when storage is enabled.

The storage secret holds a MinIO `mc`-style connection string, `http(s)://ACCESS:SECRET@host[:port]`, under
`STORAGE_SECRET_KEY`. The bucket is created if missing and never deleted (it holds data). Errors are reported
to the caller, which shows them in the status without stopping the reconcile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

_FALLBACK = re.compile(r"^(?P<scheme>https?)://(?P<access>[^:]+):(?P<secret>.+)@(?P<host>[^@/]+)/?$")


@dataclass(frozen=True)
class S3Connection:
    """The parts of the storage secret's connection string the S3 client needs."""

    endpoint: str
    access_key: str
    secret_key: str


def parse_connection_string(text: str) -> S3Connection:
    """Parse `http(s)://ACCESS:SECRET@host[:port]`; keys with characters that are not URL-safe are accepted."""
    text = text.strip()
    try:
        parts = urlsplit(text)
        if parts.scheme in ("http", "https") and parts.username and parts.password is not None and parts.hostname:
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError("a storage connection string has no path, query or fragment")
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            return S3Connection(f"{parts.scheme}://{host}", unquote(parts.username), unquote(parts.password))
    except ValueError as exc:
        if "no path" in str(exc):
            raise
    match = _FALLBACK.match(text)
    if not match:
        raise ValueError("expected http(s)://ACCESS_KEY:SECRET_KEY@host[:port]")
    return S3Connection(f"{match['scheme']}://{match['host']}", match["access"], match["secret"])


async def ensure_bucket(connection: S3Connection, bucket: str, region: str) -> bool:
    """Create `bucket` if it does not exist; True when it was created."""
    from aiobotocore.session import get_session
    from botocore.exceptions import ClientError

    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=connection.endpoint,
        aws_access_key_id=connection.access_key,
        aws_secret_access_key=connection.secret_key,
        region_name=region,
    ) as s3:
        try:
            await s3.head_bucket(Bucket=bucket)
            return False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs: dict[str, object] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        await s3.create_bucket(**kwargs)
        return True
