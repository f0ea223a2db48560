"""When kopf may stop watching a namespace being deleted (kopf_handlers.namespace_gone): not
at the namespace controller's first status write, which reports no failure before it says
what remains (the statuses below are the real API server's, in order, for a namespace
holding an experiment with our finalizer)."""

from __future__ import annotations

from typing import Any

from kopf._core.reactor import observation

from autotune_operator.kopf_handlers import NAMESPACE_RULE_REPLACED, namespace_gone


def _event(kind: str, marked: bool, conditions: dict[str, str]) -> dict[str, Any]:
    meta = {"name": "team-a", **({"deletionTimestamp": "2026-11-25T07:53:51Z"} if marked else {})}
    return {"type": kind, "object": {"metadata": meta, "status": {"conditions": [
        {"type": t, "status": s} for t, s in conditions.items()]}}}


FIRST = {"NamespaceDeletionDiscoveryFailure": "False", "NamespaceDeletionGroupVersionParsingFailure": "False",
         "NamespaceDeletionContentFailure": "False"}


def test_a_namespace_is_watched_until_its_content_and_finalizers_are_gone() -> None:
    assert not namespace_gone(_event("MODIFIED", False, {}))
    assert not namespace_gone(_event("MODIFIED", True, {}))
    assert not namespace_gone(_event("MODIFIED", True, FIRST))  # kopf's own rule stopped here
    assert observation.is_deleted is namespace_gone and NAMESPACE_RULE_REPLACED
    remaining = {**FIRST, "NamespaceContentRemaining": "True", "NamespaceFinalizersRemaining": "True"}
    assert not namespace_gone(_event("MODIFIED", True, remaining))
    done = {**FIRST, "NamespaceContentRemaining": "False", "NamespaceFinalizersRemaining": "False"}
    assert namespace_gone(_event("MODIFIED", True, done))
    assert namespace_gone(_event("DELETED", True, remaining))
