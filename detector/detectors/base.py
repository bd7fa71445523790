"""The detector protocol every model follows, online or batch, log or metric.

- Constructor keyword arguments are the hyperparameters, stored unchanged as attributes of the same
  name, with immutable defaults; the constructor does no other work than refusing values it cannot
  use (``ValueError``), so ``clone()`` and parameter grids work and a YAML spec maps straight onto them.
- ``score_one(x)`` is called BEFORE ``learn_one(x)``; higher is more anomalous.
- ``x`` is a dict of feature name -> float and is never modified. Metric detectors receive
  ``{"value": v, "timestamp": t}`` (event time in seconds).
- State is picklable and the same ``seed`` gives the same scores.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any


class Detector:
    """Base class: subclasses implement ``score_one`` and ``learn_one``."""

    def score_one(self, x: dict[str, float]) -> float:
        raise NotImplementedError

    def learn_one(self, x: dict[str, float]) -> None:
        raise NotImplementedError

    def explain(self) -> dict[str, Any] | None:
        """What the model expected at the last scored point (e.g. ``expected``, ``lower``,
        ``upper``); None when the detector has no such notion."""
        return None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes they were stored in."""
        sig = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A checkpoint written before a hyperparameter existed restores with that parameter's default.
        for name, p in inspect.signature(type(self).__init__).parameters.items():
            if p.default is not p.empty:
                state.setdefault(name, p.default)
        self.__dict__.update(state)

    def clone(self) -> "Detector":
        """A fresh, untrained detector with the same hyperparameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
