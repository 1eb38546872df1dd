"""Executable algo acme/score: scores what arrives on either input, given as a file parameter.

    score.py --threshold 0.8 --valid FILE     (a verdict from acme/validate)
    score.py --threshold 0.8 --enriched FILE  (an order from acme/enrich)

Each input runs on its own (a message of one input does not wait for the other). Prints one JSON score.
"""

import argparse
import json
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--threshold", type=float, required=True)
parser.add_argument("--valid", action="append", default=[])
parser.add_argument("--enriched", action="append", default=[])
args = parser.parse_args()

for source, files in (("valid", args.valid), ("enriched", args.enriched)):
    for name in files:
        with open(name, encoding="utf-8") as f:
            item = json.load(f)
        if source == "valid":
            score = 1.0 if item["valid"] else 0.0
        else:
            score = min(1.0, float(item["amount"]) / 1000) + (0.5 if item["tier"] == "gold" else 0.0)
        score = round(score, 3)
        json.dump({"id": item["id"], "from": source, "score": score, "flag": score >= args.threshold}, sys.stdout)
        sys.stdout.write("\n")
