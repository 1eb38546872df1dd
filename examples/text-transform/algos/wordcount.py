"""An executable algo: reads text on stdin, writes {"words": N, "lines": N, "chars": N} on stdout."""

import json
import sys

text = sys.stdin.read()
json.dump({"words": len(text.split()), "lines": len(text.splitlines()), "chars": len(text)}, sys.stdout)
