"""The plugin API: everything an attack, defense or dataset plugin may import from the suite
(besides the ground floor: `errors`, `names`, `data`), and nothing of the engine that grades it
(the oracle's counter, the cell evaluation, the store). `lint-imports` keeps plugins to it.

A plugin takes gradients of a model it owns (ALP's model in training, a transfer attack's
surrogate) through `own_model`, never through the runner's counter."""

from robustbench_lite.protocol.bpda import Fronted, FrontStep, route_through_approximation
from robustbench_lite.protocol.contracts import (
    Adversarial,
    Attack,
    DataSource,
    Defense,
    Knowledge,
    QueryModel,
    preset,
)
from robustbench_lite.protocol.devices import fork_rng
from robustbench_lite.protocol.hyperparameters import (
    Check,
    at_least,
    between,
    hp,
    non_negative,
    one_of,
    optional,
    plugin,
    positive,
)
from robustbench_lite.protocol.interval_bounds import (
    Bounds,
    certify,
    input_bounds,
    layers,
    logit_bounds,
    margin_upper,
    propagate,
)
from robustbench_lite.protocol.losses import LOSSES, Loss, margin_loss
from robustbench_lite.protocol.oracle import require_budget
from robustbench_lite.protocol.recipe import ModelRecipe
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
from robustbench_lite.protocol.white_box import OwnModel, own_model

__all__ = [
    "LOSSES",
    "NORM_BALLS",
    "SPATIAL",
    "THREAT_MODELS",
    "TM",
    "Adversarial",
    "Attack",
    "Bounds",
    "Check",
    "DataSource",
    "Defense",
    "Extras",
    "FrontStep",
    "Fronted",
    "Knowledge",
    "Loss",
    "ModelRecipe",
    "NormBall",
    "OwnModel",
    "QueryModel",
    "ThreatModel",
    "affine",
    "at_least",
    "attack_class",
    "between",
    "certify",
    "fork_rng",
    "hp",
    "input_bounds",
    "layers",
    "logit_bounds",
    "margin_loss",
    "margin_upper",
    "non_negative",
    "one_of",
    "optional",
    "own_model",
    "plugin",
    "positive",
    "preset",
    "propagate",
    "require_budget",
    "resize_pad",
    "rotate_translate",
    "route_through_approximation",
    "threat_model",
]
