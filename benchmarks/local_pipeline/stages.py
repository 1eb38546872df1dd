"""The three python-function stages of the local-mode benchmark: each passes the payload on with a tiny change,
so what is measured is algorun's per-message cost, not the algo's."""


def parse(data: bytes) -> bytes:
    return data


def enrich(data: bytes) -> bytes:
    return data[:-1] + b"e"


def emit(data: bytes) -> bytes:
    return data[:-1] + b"x"
