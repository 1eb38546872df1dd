"""HTTP algo acme/validate: checks an order and answers it with a verdict.

An order is valid when it has a string `id`, a `customer`, and a non-negative numeric `amount`.
"""

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # examples/, for the shared http_algo server
from http_algo import serve


def validate(query: dict[str, str], body: bytes) -> tuple[int, Any]:
    order = json.loads(body)
    reasons = []
    if not isinstance(order.get("id"), str):
        reasons.append("id must be a string")
    if not order.get("customer"):
        reasons.append("customer is missing")
    amount = order.get("amount")
    if not isinstance(amount, int | float) or amount < 0:
        reasons.append("amount must be a number >= 0")
    return 200, {"id": order.get("id"), "amount": amount, "valid": not reasons, "reasons": reasons}


if __name__ == "__main__":
    serve({"/validate": validate}, default_port=8080)
