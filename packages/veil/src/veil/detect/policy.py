"""Policy: which entities to report, how sure to be, and the organisation's own lists.

`mode="strict"` (maximal recall: weak patterns count without context, numbers that fail their
checksum are still reported, with a low score) or `mode="permissive"` (precision: weak patterns
need context words, failed checksums are dropped). On top: entities on or off, per-entity
thresholds, an allow-list of values never reported (the support desk's own e-mail), a deny-list
of values always reported (a project code name), and user-defined patterns.

A policy is plain data, validated when it is built; `Policy.from_mapping` reads the `[policy]`
table of `veil.toml`. Errors name the option at fault and never echo a scanned value.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from veil.detect.pattern_check import compile_user_pattern
from veil.entities import Entity
from veil.errors import ConfigError

Mode = Literal["strict", "permissive"]
MODES: tuple[Mode, ...] = get_args(Mode)

NerMode = Literal["auto", "required", "off"]
"""Model-based detection of names, places and organisations (see `Policy.ner`)."""
NER_MODES: tuple[NerMode, ...] = get_args(NerMode)

DEFAULT_THRESHOLDS: dict[Mode, float] = {"strict": 0.25, "permissive": 0.55}

_NER_ENTITIES = frozenset({Entity.PERSON, Entity.LOCATION, Entity.ORGANIZATION})

_ENTITY_NAME = re.compile(r"[A-Z][A-Z0-9_]{1,63}")


@dataclass(frozen=True, slots=True)
class UserPattern:
    """An organisation's own identifier: `EMP-[0-9]{6}` → EMPLOYEE_ID.

    User patterns run on RE2 (linear time whatever the pattern), so backreferences and
    lookarounds are not available; context words raise the score as for built-in rules.
    """

    name: str
    entity: str
    pattern: str
    score: float = 0.85
    context: tuple[str, ...] = ()
    context_boost: float = 0.1


def normalize_value(value: str) -> str:
    """How allow- and deny-listed values are compared: case-folded, blanks collapsed."""
    return " ".join(value.casefold().split())


@dataclass(frozen=True, slots=True)
class Policy:
    """What the engine reports. See the module docstring."""

    mode: Mode = "strict"
    entities: frozenset[str] | None = None
    """Entities to report; None reports every entity the detectors know."""
    exclude: frozenset[str] = frozenset()
    thresholds: Mapping[str, float] = field(default_factory=dict)
    allow: frozenset[str] = frozenset()
    deny: Mapping[str, str] = field(default_factory=dict)
    """Value → entity: these values are always reported, wherever they appear (whole words)."""
    patterns: tuple[UserPattern, ...] = ()
    ner: NerMode = "auto"
    """NER for PERSON, LOCATION, ORGANIZATION: `auto` uses spaCy when `veil[ner]` is installed;
    `required` refuses to run without it; `off` is rules only. With `auto`, a language whose model
    is missing is refused in strict mode and left to the rules (one warning) in permissive mode;
    a policy that names PERSON, LOCATION or ORGANIZATION in `entities` makes NER required."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"policy.mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.ner not in NER_MODES:
            raise ConfigError(f"policy.ner must be one of {', '.join(NER_MODES)}; got {self.ner!r}")
        object.__setattr__(self, "allow", frozenset(normalize_value(v) for v in self.allow))
        if self.entities is not None:
            object.__setattr__(self, "entities", frozenset(self.entities))
        object.__setattr__(self, "exclude", frozenset(self.exclude))
        known = self.known_entities
        for option, names in (("policy.entities", self.entities or ()), ("policy.exclude", self.exclude)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ConfigError(
                    f"{option}: unknown entity name(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(known))} (user patterns may add their own)"
                )
        for entity, threshold in self.thresholds.items():
            if entity not in known:
                raise ConfigError(f"policy.thresholds: unknown entity name {entity!r}")
            if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
                raise ConfigError(f"policy.thresholds.{entity} must be a number in [0, 1]; got {threshold!r}")
        for value, entity in self.deny.items():
            if not _ENTITY_NAME.fullmatch(entity):
                raise ConfigError(
                    f"policy.deny: the entity of a deny-listed value must be UPPER_SNAKE_CASE, got {entity!r}"
                )
            if not value.strip():
                raise ConfigError("policy.deny: a deny-listed value is empty")
        pattern_names = [p.name for p in self.patterns]
        if len(pattern_names) != len(set(pattern_names)):
            raise ConfigError("policy.patterns: two user patterns share a name")
        for index, user_pattern in enumerate(self.patterns):
            where = f"policy.patterns[{index}] ({user_pattern.name})"
            if not _ENTITY_NAME.fullmatch(user_pattern.entity):
                raise ConfigError(f"{where}: entity must be UPPER_SNAKE_CASE, got {user_pattern.entity!r}")
            if not 0.0 <= user_pattern.score <= 1.0:
                raise ConfigError(f"{where}: score must lie in [0, 1]")
            if not isinstance(user_pattern.pattern, str) or not user_pattern.pattern:
                raise ConfigError(f"{where}: pattern must be a non-empty string")
            # Refused here, when the configuration is read, not on the first request.
            compile_user_pattern(user_pattern.pattern, where)

    @property
    def known_entities(self) -> frozenset[str]:
        names = {str(e) for e in Entity}
        names.update(p.entity for p in self.patterns)
        names.update(self.deny.values())
        return frozenset(names)

    @property
    def threshold(self) -> float:
        return DEFAULT_THRESHOLDS[self.mode]

    def threshold_for(self, entity: str) -> float:
        return self.thresholds.get(entity, DEFAULT_THRESHOLDS[self.mode])

    def reports(self, entity: str) -> bool:
        """True when spans of this entity are reported."""
        if entity in self.exclude:
            return False
        return self.entities is None or entity in self.entities

    def allows(self, value: str) -> bool:
        """True when the value is allow-listed (never reported)."""
        return bool(self.allow) and normalize_value(value) in self.allow

    @property
    def ner_required(self) -> bool:
        """True when this policy must not run without a NER model."""
        if self.ner == "off":
            return False
        named = self.entities is not None and bool(self.entities & _NER_ENTITIES)
        return self.ner == "required" or named

    def with_changes(self, **changes: Any) -> Policy:
        return replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "policy") -> Policy:
        """Build a policy from a `[policy]` table (veil.toml) or an equivalent dict."""
        allowed = {"mode", "entities", "exclude", "thresholds", "allow", "deny", "patterns", "ner"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        entities = data.get("entities")
        try:
            return cls(
                mode=data.get("mode", "strict"),
                entities=frozenset(_strings(entities, f"{where}.entities")) if entities is not None else None,
                exclude=frozenset(_strings(data.get("exclude", ()), f"{where}.exclude")),
                thresholds=dict(_mapping(data.get("thresholds", {}), f"{where}.thresholds")),
                allow=frozenset(_strings(data.get("allow", ()), f"{where}.allow")),
                deny={str(k): str(v) for k, v in _mapping(data.get("deny", {}), f"{where}.deny").items()},
                patterns=tuple(
                    _user_pattern(p, f"{where}.patterns[{i}]") for i, p in enumerate(data.get("patterns", ()))
                ),
                ner=data.get("ner", "auto"),
            )
        except ConfigError as exc:  # the constructor's checks say `policy`: say where it was read
            message = str(exc)
            if where == "policy" or not message.startswith("policy."):
                raise
            raise ConfigError(where + message.removeprefix("policy")) from None

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        """Read the `[policy]` table of a TOML file (veil.toml)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        table = data.get("policy", {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"{path}: [policy] must be a table")
        return cls.from_mapping(table, where=f"{path}: policy")


def _strings(value: object, where: str) -> Iterable[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ConfigError(f"{where} must be a list of strings")
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{where} must be a list of strings")
    return value


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def _user_pattern(value: object, where: str) -> UserPattern:
    data = _mapping(value, where)
    allowed = {"name", "entity", "pattern", "score", "context", "context_boost"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}")
    for required in ("name", "entity", "pattern"):
        if not isinstance(data.get(required), str) or not data[required]:
            raise ConfigError(f"{where}.{required} is required (a string)")
    score = data.get("score", 0.85)
    boost = data.get("context_boost", 0.1)
    if not isinstance(score, int | float) or not isinstance(boost, int | float):
        raise ConfigError(f"{where}: score and context_boost are numbers")
    return UserPattern(
        name=data["name"],
        entity=data["entity"],
        pattern=data["pattern"],
        score=float(score),
        context=tuple(_strings(data.get("context", []), f"{where}.context")),
        context_boost=float(boost),
    )
