"""Typed claim-check errors: an upload that failed is an error, never a reference to a missing object."""

from __future__ import annotations


class StorageError(Exception):
    """Base of storage errors. `retriable` means the same call may succeed later (network, throttling)."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class StorageConfigError(StorageError):
    """A connection string or settings that cannot work."""


class UploadFailed(StorageError):
    """The object was not stored; no reference was produced."""


class ObjectMissing(StorageError):
    """A FileReference names an object (or bucket) that does not exist."""


class BadReference(StorageError):
    """A value marked FileReference is not FileReference JSON `{host, bucket, file}` (`storage.reference`)."""
