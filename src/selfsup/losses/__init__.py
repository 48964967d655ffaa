"""Self-supervised losses as pure functions of tensors (no modules, no state).

Every loss is differentiable, works on any device/dtype and returns a scalar tensor; each
docstring gives the paper's formula and what is gathered across processes under DDP.
One module per family of objective; everything is re-exported here.
"""

from selfsup.losses.contrastive import *  # noqa: F401,F403
from selfsup.losses.distillation import *  # noqa: F401,F403
from selfsup.losses.reconstruction import *  # noqa: F401,F403
from selfsup.losses.redundancy import *  # noqa: F401,F403
from selfsup.losses.regression import *  # noqa: F401,F403
