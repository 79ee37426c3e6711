"""The training engine every model shares.

The engine owns everything that is not specific to a model: device and precision, gradient
checkpointing, channels_last, ``torch.compile``, multi-process gradient averaging, one optimiser,
learning-rate schedule and EMA per declared optimiser group, the data order, logging, sample
grids, and complete, atomic checkpoints from which a run resumes exactly. Models only implement
one training step (see ``translate/models/base.py``).

* ``runtime.py``: what a run holds (``Runtime``) and one step of it
* ``state.py``: checkpoints, exact resume, exports
* ``loop.py``: the training loop (data order, logs, samples, signals)
"""

from .loop import TrainResult, train
from .runtime import Runtime, build_runtime, lr_factor, move_batch, train_step
from .state import RunPaths, export_nets, model_from_checkpoint

__all__ = [
    "RunPaths",
    "Runtime",
    "TrainResult",
    "build_runtime",
    "export_nets",
    "lr_factor",
    "model_from_checkpoint",
    "move_batch",
    "train",
    "train_step",
]
