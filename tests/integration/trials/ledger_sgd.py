"""A real epoch-by-epoch trial that keeps a ledger of every report, for the kill tests.

SGDClassifier.partial_fit on scikit-learn's digits, one epoch per intermediate report,
for ``autotune.get_budget()`` epochs (else --epochs); a promoted trial resumes from the
checkpoint in ``autotune.get_resume_dir()``. Before each report it appends
``{"ev": "send", ...}`` and after the server acknowledged it ``{"ev": "ack", ...}`` to
``$AUTOTUNE_TRIAL_DIR/ledger.jsonl`` (one line per event, with this process's pid), so a
checker can tell which metrics the server promised to keep (every ack) and which it may
or may not have (a send without an ack: the process died in between).

--sleep S waits S seconds before each epoch's report (a window for a kill to land in);
--linger S waits S seconds between the final report and exit. --vary seeds the model
from the process id, as a training run without a fixed seed: two runs of one trial then
report different curves, so a curve mixed from two runs shows. --term-grace S: on
SIGTERM, note it and take S seconds to exit (a trainer saving a checkpoint first); with
--term-until-resent the grace ends early at the next SIGTERM (noted too), so a test can end
it by an event (a restarted run adopting the stopped trial signals it again) instead of
racing a fixed grace. The handler is in place before the slow imports (scikit-learn takes
seconds on a loaded machine): a stop that comes early still finds it.
--report mlflow logs each epoch's accuracy with ``mlflow.log_metric`` (the ack: the call
returned), --report print prints ``accuracy=<value>`` for the controller to read (the ack:
the line is flushed; the experiment must read every printed line); sdk (default): the SDK.
The final result is the SDK's in every mode.
"""

import argparse
import json
import os
import pickle
import signal
import time

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--linger", type=float, default=0.0)
p.add_argument("--vary", action="store_true")
p.add_argument("--term-grace", type=float, default=0.0)
p.add_argument("--term-until-resent", action="store_true")
p.add_argument("--report", choices=("sdk", "mlflow", "print"), default="sdk")
args = p.parse_args()
ledger_dir = os.environ.get("AUTOTUNE_TRIAL_DIR") or "."


def note(ev: str, **kw: object) -> None:
    with open(os.path.join(ledger_dir, "ledger.jsonl"), "a") as f:
        f.write(json.dumps({"ev": ev, "pid": os.getpid(), "t": time.time(), **kw}) + "\n")


note("start")
if args.term_grace:
    def on_term(signum, frame):
        note("sigterm")
        if args.term_until_resent:
            # Blocked, the next SIGTERM waits for sigtimedwait instead of running this handler again.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            if signal.sigtimedwait({signal.SIGTERM}, args.term_grace) is not None:
                note("sigterm")
        else:
            time.sleep(args.term_grace)
        note("term_exit")
        os._exit(143)
    signal.signal(signal.SIGTERM, on_term)

# Only now the slow imports (see the module docstring).
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import autotune  # noqa: E402

params = autotune.get_next_parameter()
budget = autotune.get_budget() or args.epochs
X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_tr)
X_tr, X_va = scaler.transform(X_tr), scaler.transform(X_va)
classes = np.unique(y)
model, done = None, 0
resume = autotune.get_resume_dir()
if resume and os.path.exists(os.path.join(resume, "model.pkl")):
    with open(os.path.join(resume, "model.pkl"), "rb") as f:
        model, done = pickle.load(f)
if model is None:
    model = SGDClassifier(alpha=float(params.get("alpha", 1e-4)), eta0=float(params.get("eta0", 0.01)),
                          learning_rate="constant", random_state=os.getpid() if args.vary else 0)
rng = np.random.default_rng(os.getpid() if args.vary else 0)
acc = float(model.score(X_va, y_va)) if done else 0.0
step = 0
stopped = False
for epoch in range(done, budget):
    order = rng.permutation(len(X_tr))
    model.partial_fit(X_tr[order], y_tr[order], classes=classes)
    acc = float(model.score(X_va, y_va))
    if args.sleep:
        time.sleep(args.sleep)
    note("send", step=step, value=acc)
    if args.report == "sdk":
        stop = autotune.report_intermediate_result(acc)
    elif args.report == "mlflow":
        import mlflow  # a test extra; only this mode needs it

        mlflow.log_metric("accuracy", acc, step=step)
        stop = False  # an assessor's stop comes as a kill: MLflow cannot say it
    else:
        print(f"accuracy={acc!r}", flush=True)
        stop = False
    note("ack", step=step, value=acc, stop=stop)
    step += 1
    if stop:
        stopped = True
        break
save = autotune.get_checkpoint_dir()
if save:
    with open(os.path.join(save, "model.pkl"), "wb") as f:
        pickle.dump((model, done + step), f)  # epochs trained in all
note("send_final", value=acc)
autotune.report_final_result(acc)
note("ack_final", value=acc)
if args.linger:
    time.sleep(args.linger)
note("exit")
