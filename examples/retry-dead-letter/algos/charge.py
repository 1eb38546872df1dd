"""HTTP algo shop/charge: charges a card and answers with a receipt.

To show retries and dead letters: a charge with `"flaky": true` fails with 503 on its first attempt and succeeds
when retried; a charge with `"card": "declined"` fails with 402 every time, so it ends in the dead-letter topic.
"""

import json
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # examples/, for the shared http_algo server
from http_algo import serve

_seen: set[str] = set()
_lock = threading.Lock()


def charge(query: dict[str, str], body: bytes) -> tuple[int, Any]:
    request = json.loads(body)
    charge_id = str(request["id"])
    if request.get("card") == "declined":
        return 402, {"error": f"charge {charge_id}: card declined"}
    with _lock:
        first_attempt = charge_id not in _seen
        _seen.add(charge_id)
    if request.get("flaky") and first_attempt:
        return 503, {"error": f"charge {charge_id}: payment provider unavailable, try again"}
    return 200, {"id": charge_id, "amount": request["amount"], "status": "charged"}


if __name__ == "__main__":
    serve({"/charge": charge}, default_port=9000)
