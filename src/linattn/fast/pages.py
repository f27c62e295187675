"""Output memory backed by transparent huge pages, recycled once no tensor uses it.

On a CPU each fresh tensor of tens of megabytes is new memory that the operating system maps page
by page, which can cost as much as the arithmetic. With transparent huge pages one fault maps 2 MiB
instead of 4 KiB, and the last large output's mapping is handed out again once it is free.
"""
import math
import mmap
import threading
import weakref

import numpy
import torch

HUGE_PAGE = 2 << 20           # bytes in a transparent huge page (x86-64, arm64 with 4 KiB base pages)
HUGE_PAGE_MIN_BYTES = 8 << 20  # below this, ordinary allocation is cheap enough


def huge_page_empty(shape, dtype):
    """An uninitialised CPU tensor backed by memory advised to use transparent huge pages.

    Falls back to torch.empty where the platform has no MADV_HUGEPAGE or the tensor is small.
    The mapping lives as long as the tensor (the tensor keeps a reference to it). The last mapping
    handed out is remembered: once no tensor uses it any more, a request of the same size gets it
    back with its pages already in place, as PyTorch's GPU allocator recycles freed blocks.
    """
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if nbytes < HUGE_PAGE_MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(shape, dtype=dtype)
    with _LAST_REGION_LOCK:
        region, users = _LAST_REGION[0] or (None, None)
        if region is None or len(region) != nbytes + HUGE_PAGE or users() is not None:
            region = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE)   # anonymous; aligned below
            region.madvise(mmap.MADV_HUGEPAGE)
        # Every tensor on the region holds this array; the weak reference tells when none is left.
        array = numpy.frombuffer(region, dtype=numpy.uint8)
        _LAST_REGION[0] = (region, weakref.ref(array))
    raw = torch.from_numpy(array)
    start = -raw.data_ptr() % HUGE_PAGE
    return raw[start:start + nbytes].view(dtype).view(shape)


_LAST_REGION = [None]   # (mmap, weak reference to the array its tensors hold) of the last large output
_LAST_REGION_LOCK = threading.Lock()
