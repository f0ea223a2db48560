"""A trial whose last metric line is written in two pieces, flushed in between (as a
process killed between two writes leaves it): ``accuracy=0.5`` whole, then ``accuracy=0.9``
and, were it not cut, ``734``. Then, by ``mode``: ``selfkill`` (SIGKILL itself, as the OOM
killer would), ``hang`` (until maxTrialSeconds kills it), ``exit`` (exit 0: the unterminated
line is whole). Writes to stdout, or to $AUTOTUNE_METRICS_PATH with ``--file``."""

import os
import signal
import sys
import time

mode = sys.argv[1]
path = os.environ.get("AUTOTUNE_METRICS_PATH") if "--file" in sys.argv else None
out = open(path, "a", encoding="utf-8") if path else sys.stdout
out.write("accuracy=0.5\n")
out.flush()
out.write("accuracy=0.9")
out.flush()
if mode == "selfkill":
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "hang":
    time.sleep(600)
    out.write("734\n")
