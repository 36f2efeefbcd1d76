"""The protocol: what plugins are (contracts, registry), what an attack may touch (the oracle),
the threat models and their geometry, and the evaluation of one cell (attack through the
oracle, project, verify, per-sample arrays), with the checks no cell shows. A plugin imports
what it needs from here, and from nowhere else in the suite."""

from robustbench_lite.protocol.contracts import (
    Attack,
    DataSource,
    Defense,
    Knowledge,
    QueryModel,
    preset,
)
from robustbench_lite.protocol.devices import fork_rng
from robustbench_lite.protocol.losses import margin_loss
from robustbench_lite.protocol.oracle import QueryCounter, require_budget
from robustbench_lite.protocol.registry import attack_class
from robustbench_lite.protocol.threat_models import (
    NORM_BALLS,
    SPATIAL,
    THREAT_MODELS,
    TM,
    Extras,
    NormBall,
    ThreatModel,
    threat_model,
)
from robustbench_lite.protocol.transforms import affine, resize_pad, rotate_translate

__all__ = [
    "NORM_BALLS",
    "SPATIAL",
    "THREAT_MODELS",
    "TM",
    "Attack",
    "DataSource",
    "Defense",
    "Extras",
    "Knowledge",
    "NormBall",
    "QueryCounter",
    "QueryModel",
    "ThreatModel",
    "affine",
    "attack_class",
    "fork_rng",
    "margin_loss",
    "preset",
    "require_budget",
    "resize_pad",
    "rotate_translate",
    "threat_model",
]
