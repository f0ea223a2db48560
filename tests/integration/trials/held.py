"""Run a trial script after first waiting $TRIAL_HOLD seconds (0 when unset).

A test that needs a run to reach maxExecSeconds before any trial ends sets the variable for
that run only: the trial's command, part of the spec a resume compares, stays the same,
and the run is cut however fast the machine trains. Usage: held.py SCRIPT [ARGS...]."""

import os
import sys
import time

time.sleep(float(os.environ.get("TRIAL_HOLD", "0")))
# exec keeps one process, so the executor's SIGTERM reaches the training script itself.
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
