"""phi(x) = elu(x) + 1 written into preallocated buffers, for the CPU kernels."""
import math

import torch

LOG2_E = math.log2(math.e)


def elu_plus_one_(x, out, scratch=None):
    """Write phi(x) = elu(x) + 1 = max(x, 0) + exp(min(x, 0)) into `out`, a float tensor shaped like x
    (`scratch`, shaped like out, saves an allocation)."""
    scratch = torch.empty_like(out) if scratch is None else scratch
    if x.dtype != out.dtype:
        x = scratch.copy_(x)             # widen half precision first; x is then ours to overwrite
    torch.mul(x, LOG2_E, out=out)
    out.clamp_(max=0).exp2_()            # exp(min(x, 0)) = 2^(min(x, 0) * log2 e)
    positive = x.clamp_(min=0) if x is scratch else torch.clamp(x, min=0, out=scratch)
    return out.add_(positive)


def elu_plus_one_differentiable(x):
    """phi(x) = exp(min(x, 0)) + relu(x): the values of linattn.elu_plus_one, with a cheaper backward.

    At x = 0 the clamp passes the gradient and relu does not, so the derivative there is 1, as it is
    on both sides.
    """
    return torch.exp(x.clamp(max=0)) + torch.relu(x)
