"""bf16 autocast and channels_last, behind gin switches.

'auto' means bfloat16 autocast on CUDA only (the CPU computes in float32, as the reference
does) and channels_last on CUDA and on the CPU, where it was measured faster (README,
Performance: a CPU search step 1.4-2x faster). The reference trains in float32 NCHW; both
switches change rounding only, not the algorithm: channels_last sums some reductions
(weight gradients, BN statistics) in another order (tests/test_perf.py).
`precision.channels_last = 'off'` computes in the reference's NCHW.
"""
import contextlib

import gin
import torch

AUTOCAST = ("auto", "bfloat16", "float16", "off")
SWITCH = ("auto", "on", "off")


class Mode:
    """The resolved switches for one device: contexts and conversions the loops apply."""

    def __init__(self, device, autocast, channels_last):
        self.device, self.dtype, self.channels_last = torch.device(device), autocast, channels_last

    def autocast(self):
        """Autocast context for forward (and backward) passes; a no-op when off."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.dtype))

    def model(self, net):
        """The module in channels_last when on (parameters convert in place)."""
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def input(self, x):
        """Image batches (N, C, H, W) in channels_last when on; other inputs as they are."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def tags(self):
        return {"autocast": self.dtype or "off", "channels_last": self.channels_last}


@gin.configurable(denylist=["device"])
def precision(device, autocast="auto", channels_last="auto"):
    """Resolve the switches for `device`: 'auto' = bfloat16 autocast on CUDA, channels_last on
    CUDA and CPU."""
    if autocast not in AUTOCAST:
        raise ValueError(f"precision.autocast must be one of {AUTOCAST}, not {autocast!r}")
    if channels_last not in SWITCH:
        raise ValueError(f"precision.channels_last must be one of {SWITCH}, not {channels_last!r}")
    kind = torch.device(device).type
    dtype = ("bfloat16" if kind == "cuda" else None) if autocast == "auto" else (
        None if autocast == "off" else autocast)
    cl = kind in ("cuda", "cpu") if channels_last == "auto" else channels_last == "on"
    return Mode(device, dtype, cl)


def device_of(net):
    """The device of a module's parameters."""
    return next(net.parameters()).device
