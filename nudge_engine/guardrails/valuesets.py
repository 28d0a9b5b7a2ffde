"""Value sets compiled for matching codings (rules-spec §1.3, §0.3).

ICD-10-CM/PCS and ATC entries are literal prefixes at the level written (``E11.35`` matches
``E11.3513`` but not ``E11.3293``); SNOMED CT, RxNorm and LOINC entries are literal codes. A RxNorm
product (SCD/SBD) matches through the local product map: by its own code, by its ingredients, or by the
ATC classes the map records. A coding that hits the value set's exclusions vetoes the whole resource
(for example vaginal metronidazole under the systemic set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Coding
from nudge_engine.guardrails.schema import Analyte, CodeLists, Product, ValueSet


def _bare(code: str) -> str:
    return code.strip().upper().replace(".", "")


def _has_prefix(code: str, prefixes: frozenset[str]) -> bool:
    return any(code[:k] in prefixes for k in range(1, len(code) + 1))


@dataclass(frozen=True)
class _Codes:
    icd10cm: frozenset[str] = frozenset()
    icd10pcs: frozenset[str] = frozenset()
    snomed: frozenset[str] = frozenset()
    rxnorm: frozenset[str] = frozenset()
    atc: frozenset[str] = frozenset()
    loinc: frozenset[str] = frozenset()
    routes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, lists: Iterable[CodeLists], routes: Iterable[str] = ()) -> _Codes:
        items = list(lists)
        return cls(
            icd10cm=frozenset(_bare(c) for x in items for c in x.icd10cm),
            icd10pcs=frozenset(_bare(c) for x in items for c in x.icd10pcs),
            snomed=frozenset(c for x in items for c in x.snomed),
            rxnorm=frozenset(c for x in items for c in x.rxnorm),
            atc=frozenset(c.upper() for x in items for c in x.atc),
            loinc=frozenset(c for x in items for c in x.loinc),
            routes=frozenset(routes),
        )

    def hit(self, coding: Coding, products: Mapping[str, Product]) -> bool:
        system, code = coding.system, coding.code
        if system == CodeSystem.ICD10CM:
            return _has_prefix(_bare(code), self.icd10cm)
        if system == CodeSystem.ICD10PCS:
            return _has_prefix(_bare(code), self.icd10pcs)
        if system == CodeSystem.SNOMED:
            return code in self.snomed
        if system == CodeSystem.LOINC:
            return code in self.loinc
        if system == CodeSystem.ATC:
            return _has_prefix(code.upper(), self.atc)
        if system == CodeSystem.RXNORM:
            if code in self.rxnorm:
                return True
            product = products.get(code)
            if product is None:
                return False
            if self.routes and product.route in self.routes:
                return True
            return any(i in self.rxnorm for i in product.ingredients) or any(
                _has_prefix(a, self.atc) for a in product.atc
            )
        return False


@dataclass
class CodeMatcher:
    """Membership test for one (or a union of) value set(s); answers are cached per coding."""

    ids: tuple[str, ...]
    include: _Codes
    exclude: _Codes
    products: Mapping[str, Product]
    analyte: Analyte | None = None
    _cache: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    _excludes: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        e = self.exclude
        self._excludes = bool(e.icd10cm or e.icd10pcs or e.snomed or e.rxnorm or e.atc or e.loinc or e.routes)

    def _coding_in(self, coding: Coding) -> bool:
        key = (coding.system, coding.code)
        found = self._cache.get(key)
        if found is None:
            found = self.include.hit(coding, self.products)
            self._cache[key] = found
        return found

    def matches(self, codings: tuple[Coding, ...]) -> Coding | None:
        """The first coding in the set, or None; any excluded coding vetoes the resource."""
        cache = self._cache
        hit: Coding | None = None
        for coding in codings:
            found = cache.get((coding.system, coding.code))
            if found is None:
                found = self._coding_in(coding)
            if found:
                hit = coding
                break
        if hit is None or not self._excludes:
            return hit
        for coding in codings:
            if self.exclude.hit(coding, self.products):
                return None
        return hit

    def includes(self, coding: Coding) -> bool:
        """Whether this one coding is in the value set (exclusions not applied)."""
        return self._coding_in(coding)

    def excludes(self, coding: Coding) -> bool:
        """Whether this one coding vetoes the resource that carries it."""
        return self._excludes and self.exclude.hit(coding, self.products)

    def loinc_codes(self) -> frozenset[str]:
        return self.include.loinc


def resolve(valuesets: Mapping[str, ValueSet], ids: Iterable[str]) -> list[ValueSet]:
    """The value sets named, with their ``include`` closure (cycles are rejected by the loader)."""
    seen: dict[str, ValueSet] = {}
    stack = list(ids)
    while stack:
        vid = stack.pop()
        if vid in seen:
            continue
        vs = valuesets[vid]
        seen[vid] = vs
        stack.extend(vs.include)
    return list(seen.values())


def compile_matcher(
    valuesets: Mapping[str, ValueSet], ids: Iterable[str], products: Mapping[str, Product]
) -> CodeMatcher:
    wanted = tuple(ids)
    members = resolve(valuesets, wanted)
    exclusions = [vs.exclude for vs in members if vs.exclude is not None]
    analytes = [vs.analyte for vs in members if vs.analyte is not None]
    return CodeMatcher(
        ids=wanted,
        include=_Codes.of(members),
        exclude=_Codes.of(exclusions, routes=[r for e in exclusions for r in e.routes]),
        products=products,
        analyte=analytes[0] if analytes else None,
    )
