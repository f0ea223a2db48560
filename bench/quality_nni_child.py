"""Runs one NNI 3.0 tuner inside NNI's own environment for bench/quality.py.

Protocol (JSON lines): the parent writes {"tuner", "space", "seed"}; then this process
writes {"params": ...} and reads {"loss": ...} once per trial, until stdin closes.
Uses only the standard library and NNI, because it runs under NNI's interpreter.
"""

import json
import random
import sys

proto = sys.stdout
sys.stdout = sys.stderr  # NNI logs to stdout; keep the pipe for the protocol


def make(name, seed):
    if name == "TPE":
        from nni.algorithms.hpo.tpe_tuner import TpeTuner

        return TpeTuner(optimize_mode="minimize", seed=seed)
    if name == "GPTuner":
        from nni.algorithms.hpo.gp_tuner import GPTuner

        return GPTuner(optimize_mode="minimize")
    if name == "MetisTuner":
        from nni.algorithms.hpo.metis_tuner import MetisTuner

        return MetisTuner(optimize_mode="minimize")
    if name == "Evolution":
        from nni.algorithms.hpo.evolution_tuner import EvolutionTuner

        return EvolutionTuner(optimize_mode="minimize", population_size=32)
    raise ValueError(name)


def main():
    cfg = json.loads(sys.stdin.readline())
    import numpy as np

    random.seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    tuner = make(cfg["tuner"], cfg["seed"])
    tuner.update_search_space(cfg["space"])
    i = 0
    while True:
        try:
            params = tuner.generate_parameters(i)
        except Exception as e:  # NNI raises when it has nothing more to give
            proto.write(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
            proto.flush()
            return
        proto.write(json.dumps({"params": params}, default=float) + "\n")
        proto.flush()
        line = sys.stdin.readline()
        if not line:
            return
        tuner.receive_trial_result(i, params, json.loads(line)["loss"])
        i += 1


main()
