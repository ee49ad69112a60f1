"""The trick registry: typed parameters, canonical labels, lookup errors."""

from __future__ import annotations

import dataclasses
import pickle
from typing import ClassVar, Literal

import pytest

import tricks
from tricks._registry import Level, TrickError, format_value


@dataclasses.dataclass(frozen=True)
class _Toy(Level):
    factor: ClassVar[str] = "toy"
    name: ClassVar[str] = "toy"
    always_show: ClassVar[tuple[str, ...]] = ("rate",)
    rate: float = 0.5
    steps: int = 3
    mode: Literal["a", "b"] = "a"
    target: float | Literal["auto"] = "auto"
    flag: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.rate <= 1:
            raise self.error("rate", f"must be in (0, 1], got {self.rate}")


def test_label_shows_always_shown_and_changed_parameters() -> None:
    assert _Toy().label() == "toy(rate=0.5)"
    assert _Toy(steps=4, target=0.1).label() == "toy(rate=0.5, steps=4, target=0.1)"
    assert _Toy(flag=True).label() == "toy(rate=0.5, flag=true)"


def test_int_is_coerced_to_float_but_bool_is_not() -> None:
    lvl = _Toy(rate=1)
    assert isinstance(lvl.rate, float) and lvl.label() == "toy(rate=1)"
    with pytest.raises(TrickError, match="parameter 'rate'.*expected float"):
        _Toy(rate=True)
    with pytest.raises(TrickError, match="parameter 'steps'"):
        _Toy(steps=2.5)


def test_literal_and_union_parameters() -> None:
    assert _Toy(mode="b").mode == "b"
    with pytest.raises(TrickError, match="parameter 'mode'"):
        _Toy(mode="c")
    assert _Toy(target=2).target == 2.0
    with pytest.raises(TrickError, match="parameter 'target'"):
        _Toy(target="manual")


def test_range_check_and_unknown_parameter_name_the_parameter() -> None:
    with pytest.raises(TrickError, match="toy level 'toy', parameter 'rate': must be in"):
        _Toy(rate=2.0)
    with pytest.raises(TrickError, match="parameter 'speed': unknown parameter"):
        _Toy.from_params({"speed": 1})


def test_to_dict_round_trip_and_pickle() -> None:
    lvl = _Toy(rate=0.25, mode="b")
    d = lvl.to_dict()
    assert d["name"] == "toy"
    assert _Toy.from_params({k: v for k, v in d.items() if k != "name"}) == lvl
    assert pickle.loads(pickle.dumps(lvl)) == lvl


def test_format_value() -> None:
    assert format_value(1.0) == "1"
    assert format_value(0.5) == "0.5"
    assert format_value(1e-9) == "1e-09"
    assert format_value(True) == "true"
    assert format_value((1, 2)) == "[1, 2]"


def test_parse_spec_forms() -> None:
    assert tricks.parse_spec("atan") == ("atan", {})
    assert tricks.parse_spec({"name": "atan", "alpha": 3}) == ("atan", {"alpha": 3})
    # YAML 1.1 reads bare off/on as booleans: they name the shift_bn levels.
    assert tricks.parse_spec(False) == ("off", {})
    assert tricks.parse_spec(True) == ("on", {})
    with pytest.raises(TrickError, match="needs a 'name'"):
        tricks.parse_spec({"alpha": 2})
    with pytest.raises(TrickError, match="a level is a name"):
        tricks.parse_spec(3)


def test_make_unknown_factor_and_level() -> None:
    with pytest.raises(TrickError, match="unknown factor 'colour'"):
        tricks.make("colour", "red")
    with pytest.raises(TrickError, match="unknown surrogate level 'nope'.*known:"):
        tricks.make("surrogate", "nope")


def test_every_factor_has_levels_and_a_default() -> None:
    for factor, levels in tricks.registry().items():
        assert factor in tricks.FACTORS
        assert levels, f"factor {factor} has no levels"
        assert tricks.default_level(factor).factor == factor


ALL_LEVELS = [(f, name) for f, levels in tricks.registry().items() for name in levels]


@pytest.mark.parametrize(("factor", "name"), ALL_LEVELS,
                         ids=[f"{f}:{n}" for f, n in ALL_LEVELS])
def test_level_contract(factor: str, name: str) -> None:
    """What every level of every factor meets: registry, dict and pickle round trips with the
    same label, frozen, no torch state, and parameters checked by name."""
    import torch
    from torch import nn

    cls = tricks.registry()[factor][name]
    level = tricks.make(factor, name)
    assert type(level) is cls and level.name == name and level.factor == factor
    assert cls.summary
    again = tricks.make(factor, level.to_dict())
    assert again == level and again.label() == level.label()
    assert tricks.make(factor, level) is level
    assert pickle.loads(pickle.dumps(level)) == level
    assert not any(isinstance(getattr(level, f.name), torch.Tensor | nn.Module)
                   for f in dataclasses.fields(level))
    with pytest.raises(dataclasses.FrozenInstanceError):
        level.__setattr__("x", 1)
    with pytest.raises(TrickError, match="parameter 'bogus': unknown parameter"):
        tricks.make(factor, {"name": name, "bogus": 1})
    for field in dataclasses.fields(cls):
        for bad in ([object()], "not-a-value"):
            with pytest.raises(TrickError, match=f"parameter '{field.name}'"):
                tricks.make(factor, {"name": name, field.name: bad})
