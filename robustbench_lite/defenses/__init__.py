"""The built-in defense plugins, one per module, registered through entry points exactly as a
third party's are; `_common` holds what several of them share (architectures, the training loop,
interval bounds). The suite's architectures are public here, for a user's own `--model`
(`rb run --model robustbench_lite.defenses:mnist_cnn ...`)."""

from robustbench_lite.defenses._common.models import ibp_cnn, mnist_cnn

__all__ = ["ibp_cnn", "mnist_cnn"]
