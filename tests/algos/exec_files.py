"""An executable algo for file delivery: reads input files named after --in (one or more), writes their
concatenation upper-cased to --out FILE, and one file per input into --dir DIR; prints its argv as JSON on stdout
when --argv is given; --env NAME copies that variable's value into --out."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--in", dest="inputs", nargs="*", action="extend", default=[])
parser.add_argument("--joined")
parser.add_argument("--out")
parser.add_argument("--dir")
parser.add_argument("--env")
parser.add_argument("--argv", action="store_true")
parser.add_argument("--flag", nargs="?")
args = parser.parse_args()
paths = [Path(p) for p in args.inputs] + ([Path(p) for p in args.joined.split(",")] if args.joined else [])
data = b"".join(p.read_bytes() for p in paths)
if args.env:
    data = os.environ[args.env].encode()
if args.out:
    Path(args.out).write_bytes(data.upper())
if args.dir:
    for i, p in enumerate(paths):
        (Path(args.dir) / f"part-{i}.txt").write_bytes(p.read_bytes().upper())
if args.argv:
    json.dump({"argv": sys.argv[1:], "inherited": os.environ.get("ALGORUN_TEST_INHERITED")}, sys.stdout)
