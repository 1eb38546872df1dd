"""A python-function algo: strips and lower-cases a line."""


def strip_and_lower(data: bytes) -> bytes:
    return data.strip().lower()
