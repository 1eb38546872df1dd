"""Claim check: values too large for a message travel through S3-compatible storage as a FileReference."""

from algorun.storage.claimcheck import ObjectStore, Offloaded
from algorun.storage.errors import BadReference, ObjectMissing, StorageConfigError, StorageError, UploadFailed
from algorun.storage.reference import FileReference
from algorun.storage.settings import StorageSettings, parse_connection_string

__all__ = [
    "BadReference",
    "FileReference",
    "ObjectMissing",
    "ObjectStore",
    "Offloaded",
    "StorageConfigError",
    "StorageError",
    "StorageSettings",
    "UploadFailed",
    "parse_connection_string",
]
