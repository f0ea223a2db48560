"""Kubernetes' $(VAR) expansion of command/args, which local mode applies too."""

from autotune_operator.executors.base import expand_vars

ENV = {"EPOCHS": "3", "AUTOTUNE_TRIAL_ID": "exp-7", "A.B": "dotted"}


def test_defined_vars_are_replaced() -> None:
    assert expand_vars("--num-epochs=$(EPOCHS)", ENV) == "--num-epochs=3"
    assert expand_vars("$(AUTOTUNE_TRIAL_ID)/$(EPOCHS)", ENV) == "exp-7/3"
    assert expand_vars("$(A.B)", ENV) == "dotted"


def test_undefined_vars_and_other_dollars_stay() -> None:
    assert expand_vars("$(MISSING) $HOME ${parameters.lr} $(", ENV) == "$(MISSING) $HOME ${parameters.lr} $("


def test_double_dollar_escapes() -> None:
    assert expand_vars("$$(EPOCHS) costs $$5", ENV) == "$(EPOCHS) costs $5"
