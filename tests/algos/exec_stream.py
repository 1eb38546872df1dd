"""A streaming executable algo (exec mode streaming): length-delimited frames on stdin/stdout.

request: u32 length + payload; response: u8 status (0 output, 1 error, 2 no output) + u32 length + payload.
"poison" answers an error frame; "crash" exits the process; "slow" sleeps 3 s.
"""

from __future__ import annotations

import struct
import sys
import time

inp, out = sys.stdin.buffer, sys.stdout.buffer
while head := inp.read(4):
    (n,) = struct.unpack(">I", head)
    data = inp.read(n)
    if b"crash" in data:
        sys.exit(7)
    if b"slow" in data:
        time.sleep(3)
    if b"poison" in data:
        msg = b"poison is not food"
        out.write(struct.pack(">BI", 1, len(msg)) + msg)
    else:
        res = data.upper()
        out.write(struct.pack(">BI", 0, len(res)) + res)
    out.flush()
