"""The original's FileReference: the JSON `{"host", "bucket", "file"}` a claim-checked value travels as.

Fields are omitted when empty (Go's `omitempty`, which existing readers expect); `host` is informational
(readers use their own storage settings). Pure code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from algorun.storage.errors import BadReference


@dataclass(frozen=True, slots=True)
class FileReference:
    """Where a claim-checked value is stored: its JSON form is what a message carries (module docstring)."""

    bucket: str
    file: str
    host: str = ""

    def to_json(self) -> bytes:
        body = {k: v for k, v in (("host", self.host), ("bucket", self.bucket), ("file", self.file)) if v}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, value: bytes | str) -> FileReference:
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadReference(f"value marked FileReference is not JSON: {e}") from e
        if not isinstance(data, dict) or not all(isinstance(data.get(k, ""), str) for k in ("host", "bucket", "file")):
            raise BadReference('a FileReference is a JSON object {"host": str, "bucket": str, "file": str}')
        bucket, file = data.get("bucket", ""), data.get("file", "")
        if not bucket or not file:
            raise BadReference(f"FileReference without bucket or file: {data!r}")
        return cls(bucket=bucket, file=file, host=data.get("host", ""))
