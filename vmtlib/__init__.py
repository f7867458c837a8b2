"""vmtlib: parameter-efficient multi-task adaptation of Swin on dense scene understanding.

The contract (design.md)::

    import vmtlib
    vmtlib.METHODS                                   # method id -> description
    model = vmtlib.build_model("vmt_adapter", backbone="swin_tiny", rho=4)
    out = model(images)                              # {task: (B, K, H, W)}
    vmtlib.count_parameters(model)                   # encoder / decoders / total
    model = vmtlib.load_adapter("adapter.safetensors")  # a trained model (vmtlib.adapter_file)
"""

from vmtlib.adapter_file import load_adapter
from vmtlib.methods import METHODS
from vmtlib.model import MultiTaskModel, build_model, count_parameters
from vmtlib.tasks import ALL_TASKS, TASKS

__all__ = ["ALL_TASKS", "METHODS", "TASKS", "MultiTaskModel", "build_model", "count_parameters",
           "load_adapter"]
__version__ = "0.1.0"
