"""Model specs: the YAML files in ``models/`` that name detectors and their parameters.

Tuning writes these files and the service loads them; provenance and measured figures travel with
the spec so an SRE can see where a tuned model came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from detector.errors import ConfigError
from detector.loader import read_yaml, validate


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorSpec(Strict):
    """A registered detector name and its constructor keyword arguments."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    def build(self):
        from detector.detectors import build

        return build(self.name, self.params)


class CalibratorSpec(Strict):
    """Raw score -> confidence in [0, 1]; see ``detector.calibration``."""

    name: str = "tail"
    params: dict[str, Any] = Field(default_factory=dict)


class MetricModelSpec(Strict):
    kind: Literal["metric"] = "metric"
    description: str = ""
    detector: DetectorSpec
    calibrator: CalibratorSpec = CalibratorSpec()
    max_series: int = Field(100_000, gt=0, description="series held per partition; least recently seen evicted")
    provenance: dict[str, Any] = Field(default_factory=dict)
    measured: dict[str, Any] = Field(default_factory=dict)


class LogModelSpec(Strict):
    kind: Literal["log"] = "log"
    description: str = ""
    miner: dict[str, Any] = Field(default_factory=dict, description="template miner parameters")
    signals: dict[str, Any] = Field(default_factory=dict, description="per-entity log signal parameters")
    sessions: dict[str, Any] | None = Field(None, description="session grouping and scoring; off when absent")
    provenance: dict[str, Any] = Field(default_factory=dict)
    measured: dict[str, Any] = Field(default_factory=dict)


ModelSpec = Annotated[Union[MetricModelSpec, LogModelSpec], Field(discriminator="kind")]
KINDS = ("metric", "log")


def _models_dir() -> Path:
    """The default model specs: ``models/`` beside the package in a checkout or an editable install;
    for a plain ``pip install .`` (the container image), ``models/`` in the working directory, where
    the image copies them (specs are data, mounted over in deployments)."""
    beside = Path(__file__).resolve().parent.parent / "models"
    here = Path.cwd() / "models"
    return beside if beside.is_dir() or not here.is_dir() else here


MODELS_DIR = _models_dir()


def load_model_spec(path: str | Path) -> MetricModelSpec | LogModelSpec:
    from pydantic import TypeAdapter

    data = read_yaml(path)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in KINDS:
        # Said plainly: the schema's own message for this is about a "discriminator tag".
        found = ("the file is empty" if data == {} else f"not kind: {kind!r}" if isinstance(data, dict) and "kind" in data
                 else "it has no kind")
        raise ConfigError(f"{path}: a model spec needs kind: metric or kind: log ({found})")
    return validate(data, TypeAdapter(ModelSpec), str(path))


def effective(spec: MetricModelSpec | LogModelSpec) -> dict:
    """The spec as it runs, every parameter with its default filled in: a spec lists only what it
    changes, and an operator comparing a tuned spec with what runs needs the values themselves."""
    import inspect

    doc = spec.model_dump(mode="json")
    if spec.kind == "metric":
        from detector.calibration import CALIBRATORS

        doc["detector"]["params"] = spec.detector.build().get_params()
        init = inspect.signature(CALIBRATORS[spec.calibrator.name].__init__).parameters.values()
        doc["calibrator"]["params"] = {**{p.name: p.default for p in init if p.default is not p.empty},
                                       **spec.calibrator.params}
    else:
        from detector.logs.params import MinerParams, SessionParams, SignalParams

        doc["miner"] = MinerParams.from_dict(spec.miner, "miner").model_dump(mode="json")
        doc["signals"] = SignalParams.from_dict(spec.signals, "signals").model_dump(mode="json")
        if spec.sessions is not None:
            doc["sessions"] = SessionParams.from_dict(spec.sessions, "sessions").model_dump(mode="json")
    return doc

