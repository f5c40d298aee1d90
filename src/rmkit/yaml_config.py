"""YAML values typed by the config field they fill: recipe files and `key=value` overrides.

    from rmkit.yaml_config import load_yaml, typed
    values = load_yaml("mixed_precision: no\\ngradient_checkpointing: yes")   # both still the words typed
    typed(values["mixed_precision"], str, "mixed_precision")                # "no": a str field keeps it
    typed(values["gradient_checkpointing"], bool, "gradient_checkpointing") # True

YAML 1.1 (PyYAML) reads `no`, `off`, `yes`, `on`, `true`, `false` as booleans, so `mixed_precision=no`
would reach a string field as False. `load_yaml` keeps those words as written, and `typed` turns them into
booleans only where the field's annotation asks for a bool (or says nothing: `Any`, as YAML would); lists,
dicts and nested dataclasses are typed item by item. Every other scalar reads as plain YAML.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

import yaml

BOOL_TAG = "tag:yaml.org,2002:bool"
BOOLS = {"yes": True, "on": True, "true": True, "no": False, "off": False, "false": False}


class WordsLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's implicit booleans: yes/no/on/off/true/false load as strings."""


WordsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_yaml(text: str) -> Any:
    """YAML text to Python values, with the boolean words left as strings (see `typed`)."""
    return yaml.load(text, Loader=WordsLoader)


def _arms(tp) -> tuple:
    """The types a field accepts: the arms of a union (`str | None`), else the type itself."""
    return typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)


def _word(word: str, tp):
    """A YAML 1.1 boolean word for a field of type `tp`: kept where a string is accepted, else a bool."""
    arms = _arms(tp)
    if str in arms or any(typing.get_origin(a) in (list, tuple) for a in arms):
        return word
    if bool in arms or Any in arms:
        return BOOLS[word.lower()]
    return word  # a number field: its own check names the word


def typed(value: Any, tp: Any, name: str = "value") -> Any:
    """`value` (from `load_yaml`) as a field annotated `tp` wants it; `name` labels errors."""
    if isinstance(value, str) and value.lower() in BOOLS:
        return _word(value, tp)
    if tp is bool and isinstance(value, str):
        raise ValueError(f"{name} must be true or false (yes/no, on/off), got {value!r}")
    if isinstance(value, (dict, list)):
        for arm in _arms(tp):
            if (out := _container(value, arm, name)) is not None:
                return out
    return value


def _container(value: dict | list, tp, name: str):
    """A dict or list typed item by item when `tp` holds that kind of container, else None."""
    origin, args = typing.get_origin(tp) or tp, typing.get_args(tp)
    if isinstance(value, dict) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return {k: typed(v, hints.get(k, Any), f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, dict) and (origin is dict or tp is Any):
        item = args[1] if len(args) == 2 else Any
        return {k: typed(v, item, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, list) and (origin in (list, tuple) or tp is Any):
        item = args[0] if args else Any
        return [typed(v, item, f"{name}.{i}") for i, v in enumerate(value)]
    return None
