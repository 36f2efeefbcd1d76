"""The protocol: what plugins are (contracts, registry), what an attack may touch (the oracle),
the threat models and their geometry, and the evaluation of one cell (attack through the
oracle, project, verify, per-sample arrays), with the checks no cell shows. Plugins import the
part of it that is theirs through `robustbench_lite.api`; the engine (the oracle's counter, the
cell evaluation) is not exported to them."""

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
    "QueryModel",
    "ThreatModel",
    "affine",
    "attack_class",
    "fork_rng",
    "margin_loss",
    "preset",
    "resize_pad",
    "rotate_translate",
    "threat_model",
]
