"""Reading deploy/template.yaml in tests: its YAML with CloudFormation's tags, its functions,
their environment and their roles' statements, with intrinsic functions resolved to values a
test chooses."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with the short forms of CloudFormation's intrinsic functions (``!Ref``, ``!Sub``...)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]  # a MappingNode
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def template() -> dict[str, Any]:
    """The template as data (``!Ref X`` becomes ``{"Ref": "X"}``, ``!Sub s`` ``{"Fn::Sub": s}``)."""
    with TEMPLATE.open(encoding="utf-8") as stream:
        loaded = yaml.load(stream, Loader=_CfnLoader)  # a SafeLoader that knows CFN's tags
    assert isinstance(loaded, dict)
    return loaded


@dataclass(frozen=True)
class Function:
    """One ``AWS::Serverless::Function`` with the Globals merged in."""

    name: str
    properties: dict[str, Any]

    @property
    def handler(self) -> str:
        return str(self.properties["Handler"])

    @property
    def environment(self) -> dict[str, Any]:
        """Variable name -> its (unresolved) value: the Globals' and the function's own."""
        globals_ = template().get("Globals", {}).get("Function", {})
        merged = dict(globals_.get("Environment", {}).get("Variables", {}))
        merged.update(self.properties.get("Environment", {}).get("Variables", {}))
        return merged

    @property
    def role(self) -> str:
        """The logical id of the function's role (``Role: !GetAtt X.Arn``)."""
        role = self.properties["Role"]
        assert "Fn::GetAtt" in role, f"{self.name} must name its own role"
        return str(role["Fn::GetAtt"][0])

    def statements(self) -> list[dict[str, Any]]:
        """Every statement of the inline policies of the function's role."""
        role = template()["Resources"][self.role]
        found: list[dict[str, Any]] = []
        for policy in role["Properties"].get("Policies", []):
            found.extend(policy["PolicyDocument"]["Statement"])
        return found

    def allowed_actions(self) -> set[str]:
        actions: set[str] = set()
        for statement in self.statements():
            if statement["Effect"] == "Allow":
                action = statement["Action"]
                actions.update([action] if isinstance(action, str) else action)
        return actions


def functions() -> dict[str, Function]:
    """Every function of the template by logical id."""
    resources = template()["Resources"]
    return {
        name: Function(name, {**template().get("Globals", {}).get("Function", {}), **r["Properties"]})
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function"
    }


def parameter_defaults() -> dict[str, str]:
    return {name: str(p.get("Default", "")) for name, p in template()["Parameters"].items()}


_PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::StackName": "fleet-import",
}
_NO_VALUE = object()


def resolve(
    value: Any, refs: Mapping[str, str] | None = None, parameters: Mapping[str, str] | None = None
) -> Any:
    """``value`` with Ref, Sub, If, Join, GetAtt resolved: parameters from ``parameters`` (default:
    their defaults), resources from ``refs`` (logical id -> the value a Ref gives), pseudo
    parameters from a fixed sample account. ``Ref AWS::NoValue`` drops the key."""
    params = {**parameter_defaults(), **(parameters or {})}
    names = {**_PSEUDO, **params, **(refs or {})}
    conditions = template().get("Conditions", {})

    def condition(name: str) -> bool:
        return bool(walk(conditions[name]))

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (walk(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else names.get(arg, f"<{arg}>")
            if key == "Fn::GetAtt":
                return names.get(".".join(arg), f"<{'.'.join(arg)}>")
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], walk(arg[1]))
                lookup = {**names, **extra}
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(lookup.get(m[1], f"<{m[1]}>")), text)
            if key == "Fn::If":
                return walk(arg[1] if condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return walk(arg[0]) == walk(arg[1])
            if key == "Fn::Not":
                return not walk(arg[0])
            if key == "Condition":
                return condition(arg)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in walk(arg[1]))
        return {k: w for k, w in ((k, walk(v)) for k, v in node.items()) if w is not _NO_VALUE}

    return walk(value)
