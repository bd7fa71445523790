"""Parameter schemas of the log model, validated from the dicts of a ``LogModelSpec``.

Errors name the key path inside the spec (``miner.max_differing: ...``), through the project's one
loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detector.errors import ConfigError


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, section: str = "", source: str = "log model"):
        """Validate one section of a log model spec; errors name the key path in the spec
        (``miner.merge_after: ...``)."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            lines = [f"{source}: {exc.error_count()} error(s)"]
            for err in exc.errors():
                path = ".".join(str(p) for p in (section, *err["loc"]) if p != "") or "<root>"
                lines.append(f"  {path}: {err['msg']}")
            raise ConfigError("\n".join(lines)) from None

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump()


class MinerParams(_Params):
    max_differing: float = Field(0.4, ge=0.0, lt=1.0, description="share of positions a line may differ in")
    merge_after: int = Field(4, ge=2, description="distinct values at a word position that make it a variable")
    max_chars: int = Field(4096, ge=16, description="longer messages are cut here before mining")
    max_tokens: int = Field(96, ge=4, description="tokens past this are one trailing variable")
    max_templates: int = Field(50_000, ge=1, description="past this, the least recently seen template is evicted")
    max_candidates: int = Field(128, ge=1, description="templates a new line shape is compared with, newest first")
    example_chars: int = Field(300, ge=0)
    cache_size: int = Field(100_000, ge=0, description="exact-shape and token caches")


def load_log_spec(path: str | Path):
    from detector.specs import LogModelSpec, load_model_spec

    spec = load_model_spec(path)
    if not isinstance(spec, LogModelSpec):
        raise ConfigError(f"{path}: kind is {spec.kind!r}, a log model spec (kind: log) is needed")
    return spec


class SignalParams(_Params):
    window_seconds: float = Field(60.0, gt=0, description="tumbling event-time window per entity")
    new_template_grace_seconds: float = Field(
        900.0, ge=0, description="no new-template signal until the model and the entity are this old"
    )
    novelty_halflife_seconds: float = Field(
        21_600.0, gt=0, description="half-life of an entity's counts behind the chance of a new template"
    )
    rate_halflife_windows: float = Field(30.0, gt=0, description="half-life of expected counts, in windows")
    min_windows: int = Field(5, ge=0, description="windows an entity needs before rates are scored")
    min_rate: float = Field(0.05, gt=0, description="expected count floor, for templates rarely seen")
    min_drop_rate: float = Field(3.0, gt=0, description="expected count a template needs for a drop to score")
    forget_rate: float = Field(0.01, ge=0, description="expected counts below this are forgotten")
    error_prior: float = Field(1.0, gt=0, description="pseudo-count behind the expected error share")
    max_empty_windows: int = Field(3, ge=0, description="empty windows scored after an entity falls silent")
    max_entities: int = Field(10_000, gt=0, description="entities held; least recently seen evicted")
    entity_idle_seconds: float = Field(86_400.0, gt=0, description="entities idle this long are evicted")
    max_templates_per_entity: int = Field(2_000, gt=0)
    evidence_templates: int = Field(3, ge=0, description="templates named in a score's evidence")
    example_chars: int = Field(300, ge=0)
    calibrator: dict[str, Any] = Field(default_factory=lambda: {"name": "tail", "params": {"window": 256}})


class DetectorRef(_Params):
    name: str = "session_rarity"
    params: dict[str, Any] = Field(default_factory=dict)


class SessionParams(_Params):
    key: str = Field(..., description="regex whose match (or first group) names a line's session")
    idle_seconds: float = Field(600.0, gt=0, description="a session closes after this much idle event time")
    max_sessions: int = Field(100_000, gt=0, description="open sessions held; least recently active closed first")
    max_lines: int = Field(10_000, gt=0, description="a session closes when it reaches this many lines")
    max_keys_per_line: int = Field(4, gt=0)
    max_examples: int = Field(8, ge=0, description="example lines kept per session for evidence")
    min_sessions: int = Field(0, ge=0, description="sessions learned before scores carry confidence")
    detector: DetectorRef = DetectorRef()
    threshold: float = Field(2.0, description="raw score (log10 rarity) at which a session counts as anomalous")

    @field_validator("key")
    @classmethod
    def _compiles(cls, v: str) -> str:
        import re

        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v
