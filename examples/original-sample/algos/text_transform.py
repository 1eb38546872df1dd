"""A stand-in for the original sample's algo image (algohub/algo-test-go): POST /text transforms the text.

The `transform` parameter (toUpper, toLower; toUpper by default) arrives as a query parameter. Run the sample on
this machine with:

    algorun run pipeline.yaml sample-algo.yaml \
        --algo tests/test-text-transform-http="python3 algos/text_transform.py --port 8080"
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # examples/, for the shared http_algo server
from http_algo import serve


def transform(query: dict[str, str], body: bytes) -> tuple[int, bytes]:
    text = body.decode("utf-8", errors="replace")
    how = query.get("transform", "toUpper")
    if how not in ("toUpper", "toLower"):
        return 400, f"unknown transform {how!r}".encode()
    return 200, (text.upper() if how == "toUpper" else text.lower()).encode()


if __name__ == "__main__":
    serve({"/text": transform}, default_port=8080)
