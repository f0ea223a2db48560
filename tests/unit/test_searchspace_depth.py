"""A search space nested too deep is refused naming the parameter, never a RecursionError,
and never accepted only to fail every trial later: a trial's parameters are sent back in
JSON answers, which pydantic stops serializing at ~250 levels."""

from __future__ import annotations

import pytest

from tuner_server.searchspace import MAX_SPACE_DEPTH, SearchSpaceError, parse_search_space


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("depth", [300, 900])
def test_a_choice_value_nested_hundreds_of_lists_deep_is_refused(depth: int) -> None:
    # 300 was accepted, then every suggestion and every GET of the trials was a 500
    # (serialization depth); 900 raised RecursionError in the parser (a 500 on PUT).
    space = '{"x": {"_type": "choice", "_value": [' + nested(depth) + ']}}'
    with pytest.raises(SearchSpaceError, match="nested too deeply") as e:
        parse_search_space(space)
    assert e.value.path == "x"


def test_json_nested_thousands_of_levels_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(SearchSpaceError, match="nested too deeply"):
        parse_search_space('{"x": ' + nested(100_000) + "}")


def test_nested_choices_hundreds_of_levels_deep_are_refused() -> None:
    space: dict = {"_type": "choice", "_value": [1]}
    for _ in range(100):  # three levels each: 300 deep, as are the parameters' {"_name": ..., "y": ...}
        space = {"_type": "choice", "_value": [{"_name": "a", "y": space}]}
    with pytest.raises(SearchSpaceError, match="nested too deeply"):
        parse_search_space({"x": space})


def test_a_sensibly_nested_space_is_still_valid() -> None:
    value = nested(MAX_SPACE_DEPTH - 4)  # the space's own levels: {x: {_value: [ ... ]}}
    sp = parse_search_space('{"x": {"_type": "choice", "_value": [' + value + ', 2]}}')
    assert sp.cardinality() == 2
    inner: dict = {"_type": "choice", "_value": [1, 2]}
    for _ in range(5):
        inner = {"_type": "choice", "_value": [{"_name": "a", "y": inner}, {"_name": "b"}]}
    assert parse_search_space({"x": inner}).cardinality() == 7


@pytest.mark.parametrize("space", [
    '{"x": {"_type": "choice", "_value": ["\\udc80", "b"]}}',  # a choice value
    '{"x": {"_type": "choice", "_value": [{"k\\udc80": 1}]}}',  # a key inside one
    '{"\\udc80": {"_type": "uniform", "_value": [0, 1]}}',  # a parameter's name
])
def test_a_string_that_is_not_valid_unicode_is_refused(space: str) -> None:
    # JSON's \udcxx escape gives a lone surrogate, which UTF-8 cannot encode: the space was
    # accepted, then every answer holding a trial's parameters was a 500.
    with pytest.raises(SearchSpaceError, match="not valid Unicode") as e:
        parse_search_space(space)
    str(e.value).encode("utf-8")  # the error itself can be sent
