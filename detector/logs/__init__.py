"""The log path: template mining, per-entity log signals and sessions.

``LogModel`` (in ``detector.logs.model``) is what the streaming pipeline calls; ``TemplateMiner`` is
usable on its own (``detector evaluate parsing``, benchmarks).
"""

from detector.logs.miner import TemplateMiner

__all__ = ["TemplateMiner"]
