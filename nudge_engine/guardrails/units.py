"""Unit handling for observation thresholds: the value is converted into the rule's unit.

A value without a unit is taken to be in the rule's unit. A unit that cannot be converted (an unknown
unit, or mmol/L <-> mg/dL without a molar mass) gives ``None``: the evaluator then treats the
criterion as undefined, which fails closed (review).
"""

from __future__ import annotations

from nudge_engine.guardrails.schema import Analyte

# spelling (lower case, no spaces) -> (canonical unit, dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[str, str, float]] = {}


def _add(dimension: str, canonical: str, factor: float, *spellings: str) -> None:
    for spelling in (canonical, *spellings):
        _UNITS[spelling.lower().replace(" ", "")] = (canonical, dimension, factor)


_add("pressure", "mm[Hg]", 1.0, "mmHg", "mm_hg")
_add("bmi", "kg/m2", 1.0, "kg/m^2", "kg/(m2)", "kg/m²", "kg/(m^2)")
_add("mass", "kg", 1.0, "kilogram", "kilograms")
_add("mass", "g", 0.001, "gram", "grams")
_add("mass", "[lb_av]", 0.45359237, "lb", "lbs", "[lb]", "pound", "pounds")
_add("length", "m", 1.0, "meter", "metre")
_add("length", "cm", 0.01, "centimeter", "centimetre")
_add("length", "[in_i]", 0.0254, "in", "inch", "inches", "[in]")
_add("mass_concentration", "mg/dL", 1.0, "mg/100mL")
_add("mass_concentration", "g/dL", 1000.0)
_add("mass_concentration", "g/L", 100.0)
_add("molar_concentration", "mmol/L", 1.0, "mM")
_add("equivalent_concentration", "meq/L", 1.0, "mEq/L", "meq/l")
_add("egfr", "mL/min/{1.73_m2}", 1.0, "mL/min/1.73m2", "mL/min/[1.73_m2]", "mL/min/{1.73m2}",
     "mL/min/1.73_m2", "mL/min")
_add("gestation", "wk", 1.0, "week", "weeks", "{weeks}", "w", "[wk]")
_add("gestation", "d", 1.0 / 7.0, "day", "days", "{days}")
_add("score", "{score}", 1.0, "1", "{#}", "{points}", "score")
_add("fraction", "%", 1.0, "percent")
_add("volume_rate", "mL/d", 1.0, "mL/(24.h)", "mL/24h", "mL/day")


def canonical(unit: str | None) -> str | None:
    """The canonical spelling of a known unit, or None when unknown."""
    if unit is None:
        return None
    known = _UNITS.get(unit.strip().lower().replace(" ", ""))
    return known[0] if known else None


def is_known(unit: str) -> bool:
    return canonical(unit) is not None


Step = tuple[str, float]  # ("mul" | "div", operand)


def conversion(unit: str | None, target: str, analyte: Analyte | None = None) -> tuple[Step, ...] | None:
    """The arithmetic that takes a value in ``unit`` to ``target``, or None when that is not possible.

    :func:`convert` applies these steps to one value; the columnar loader applies the very same
    steps to whole arrays, so both give bit-identical results at every threshold.
    """
    to = _UNITS.get(target.strip().lower().replace(" ", ""))
    if to is None:
        return None
    if unit is None or not unit.strip():
        return ()
    src = _UNITS.get(unit.strip().lower().replace(" ", ""))
    if src is None:
        return None
    if src[1] == to[1]:
        return (("mul", src[2]), ("div", to[2]))
    into = _to_mmol_per_l(src[1], analyte)
    out = _from_mmol_per_l(to[1], analyte)
    if into is None or out is None:
        return None
    return (("mul", src[2]), *into, *out)


def convert(value: float, unit: str | None, target: str, analyte: Analyte | None = None) -> float | None:
    """``value`` in ``unit`` expressed in ``target``; None when that is not possible."""
    steps = conversion(unit, target, analyte)
    if steps is None:
        return None
    for op, operand in steps:
        value = value * operand if op == "mul" else value / operand
    return value


def _to_mmol_per_l(dimension: str, analyte: Analyte | None) -> tuple[Step, ...] | None:
    if dimension == "molar_concentration":
        return ()
    if dimension == "mass_concentration" and analyte and analyte.molar_mass:
        return (("mul", 10.0), ("div", analyte.molar_mass))  # mg/dL -> mg/L -> mmol/L
    if dimension == "equivalent_concentration" and analyte and analyte.charge:
        return (("div", float(analyte.charge)),)
    return None


def _from_mmol_per_l(dimension: str, analyte: Analyte | None) -> tuple[Step, ...] | None:
    if dimension == "molar_concentration":
        return ()
    if dimension == "mass_concentration" and analyte and analyte.molar_mass:
        return (("mul", analyte.molar_mass), ("div", 10.0))
    if dimension == "equivalent_concentration" and analyte and analyte.charge:
        return (("mul", float(analyte.charge)),)
    return None
