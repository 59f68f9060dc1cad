"""Structural-schema rules as the API server applies them: one test per rule, messages included."""

from __future__ import annotations

import copy

import pytest

from tests.support.kube_schema import default, invalid_status, prune, validate, validate_name

SCHEMA = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8, "minLength": 2},
                "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                "ratio": {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": 0.5},
                "steps": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "gate": {
                    "type": "object",
                    "properties": {"on": {"type": "boolean", "default": False}},
                },
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "maybe": {"type": "string", "nullable": True},
            },
        },
    },
    "required": ["spec"],
}


def messages(value: dict) -> list[str]:
    return [str(c) for c in validate(SCHEMA, value)]


def spec(**fields) -> dict:
    return {"metadata": {"name": "x"}, "spec": {"name": "ok", **fields}}


def test_a_valid_object_has_no_causes():
    assert messages(spec(mode="fast", ratio=1, steps=[1, 100], labels={"a": "b"})) == []


def test_wrong_type_names_the_type_received():
    assert messages(spec(steps=[1, "ten"])) == [
        'spec.steps[1]: Invalid value: "string": spec.steps[1] in body must be of type integer:'
        ' "string"'
    ]
    assert messages(spec(labels={"a": 3})) == [
        'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string:'
        ' "integer"'
    ]


def test_a_whole_float_is_an_integer_and_an_integer_is_a_number():
    assert messages(spec(steps=[2.0], ratio=1)) == []


def test_enum():
    assert messages(spec(mode="slow")) == [
        'spec.mode: Unsupported value: "slow": supported values: "fast", "safe"'
    ]


def test_maximum_and_minimum():
    assert sorted(messages(spec(steps=[0, 101], ratio=1.5))) == [
        "spec.ratio: Invalid value: 1.5: spec.ratio in body should be less than or equal to 1",
        "spec.steps[0]: Invalid value: 0: spec.steps[0] in body should be greater than or equal"
        " to 1",
        "spec.steps[1]: Invalid value: 101: spec.steps[1] in body should be less than or equal"
        " to 100",
    ]


def test_exclusive_bounds():
    schema = {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert [str(c) for c in validate(schema, 0, "x")] == [
        "x: Invalid value: 0: x in body should be greater than 0"
    ]


def test_required_at_every_level():
    assert messages({"metadata": {"name": "x"}}) == ["spec: Required value"]
    assert messages({"metadata": {"name": "x"}, "spec": {}}) == ["spec.name: Required value"]


def test_pattern_and_lengths():
    assert messages(spec(name="Abc")) == [
        "spec.name: Invalid value: \"Abc\": spec.name in body should match '^[a-z]+$'"
    ]
    assert messages(spec(name="abcdefghi")) == ["spec.name: Too long: may not be longer than 8"]
    assert messages(spec(name="a")) == [
        'spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long'
    ]


def test_item_counts():
    assert messages(spec(steps=[])) == [
        "spec.steps: Invalid value: 0: spec.steps in body should have at least 1 items"
    ]
    assert messages(spec(steps=[1, 2, 3, 4])) == [
        "spec.steps: Too many: 4: must have at most 3 items"
    ]


def test_null_is_allowed_only_where_nullable():
    assert messages(spec(maybe=None)) == []
    assert messages(spec(mode=None)) == [
        'spec.mode: Invalid value: "null": spec.mode in body must be of type string: "null"'
    ]


def test_pruning_drops_undeclared_fields_and_keeps_preserved_ones():
    obj = spec(bogus=1, gate={"on": True, "off": 2}, extra={"anything": {"goes": 1}})
    obj["spec"]["steps"] = [1]
    obj["top"] = "level"
    obj["metadata"]["labels"] = {"kept": "yes"}  # metadata is ObjectMeta, never pruned
    dropped = prune(SCHEMA, obj)
    assert sorted(dropped) == ["spec.bogus", "spec.gate.off", "top"]
    assert obj["spec"]["extra"] == {"anything": {"goes": 1}}
    assert obj["metadata"]["labels"] == {"kept": "yes"} and "top" not in obj


def test_pruning_drops_non_nullable_nulls_so_defaults_take_their_place():
    obj = spec(mode=None, maybe=None)
    assert prune(SCHEMA, obj) == []  # a dropped null is not an unknown field
    default(SCHEMA, obj)
    assert obj["spec"]["mode"] == "safe" and obj["spec"]["maybe"] is None


def test_defaulting_fills_absent_fields_of_present_objects_only():
    obj = spec(gate={})
    default(SCHEMA, obj)
    assert obj["spec"]["mode"] == "safe" and obj["spec"]["ratio"] == 0.5
    assert obj["spec"]["gate"] == {"on": False}
    bare = spec()
    default(SCHEMA, bare)
    assert "gate" not in bare["spec"]  # no default for gate itself: its fields stay unset
    given = spec(mode="fast")
    default(SCHEMA, given)
    assert given["spec"]["mode"] == "fast"


def test_defaults_are_copies():
    schema = {"type": "object", "properties": {"l": {"type": "array", "default": [1]}}}
    first, second = {}, {}
    default(schema, first, root=False)
    default(schema, second, root=False)
    first["l"].append(2)
    assert second == {"l": [1]} and schema["properties"]["l"]["default"] == [1]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("good-name.v1", []),
        ("Bad_Name", ['metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123']),
        ("-x", ['metadata.name: Invalid value: "-x": a lowercase RFC 1123']),
        ("", ["metadata.name: Required value: name or generateName is required"]),
        ("a" * 254, ["metadata.name: Invalid value: ", "must be no more than 253 characters"]),
    ],
)
def test_metadata_name(name, expected):
    found = [str(c) for c in validate_name({"name": name})]
    assert len(found) == len(expected[:1])
    for part in expected:
        assert part in found[0]


def test_the_422_status_joins_causes_as_apimachinery_does():
    causes = validate(SCHEMA, spec(mode="slow", ratio=2))
    status = invalid_status("Thing", "example.com", "x", causes)
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["message"] == (
        'Thing.example.com "x" is invalid: [spec.mode: Unsupported value: "slow": supported'
        ' values: "fast", "safe", spec.ratio: Invalid value: 2: spec.ratio in body should be'
        " less than or equal to 1]"
    )
    assert status["details"]["causes"][0] == {
        "reason": "FieldValueNotSupported",
        "message": 'Unsupported value: "slow": supported values: "fast", "safe"',
        "field": "spec.mode",
    }
    one = invalid_status("Thing", "example.com", "x", causes[:1])
    assert one["message"].endswith(
        'is invalid: spec.mode: Unsupported value: "slow": supported values: "fast", "safe"'
    )


def test_validation_does_not_change_its_input():
    obj = spec(steps=[1])
    before = copy.deepcopy(obj)
    validate(SCHEMA, obj)
    assert obj == before
