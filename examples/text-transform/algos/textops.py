"""A python-function algo: the runner imports `reverse` and calls it in process."""


def reverse(data: bytes) -> bytes:
    """The text, reversed."""
    return data.decode("utf-8", errors="replace")[::-1].encode()
