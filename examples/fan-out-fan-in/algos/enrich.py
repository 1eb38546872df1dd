"""HTTP algo acme/enrich: adds the customer's tier to an order (gold from 100 up)."""

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # examples/, for the shared http_algo server
from http_algo import serve


def enrich(query: dict[str, str], body: bytes) -> tuple[int, Any]:
    order = json.loads(body)
    amount = float(order["amount"])
    return 200, {"id": order["id"], "customer": order.get("customer"), "amount": amount, "tier": _tier(amount)}


def _tier(amount: float) -> str:
    return "gold" if amount >= 100 else "standard"


if __name__ == "__main__":
    serve({"/enrich": enrich}, default_port=8081)
