"""Peak memory measured, on any device: count the storage of every tensor that ops create, until freed.

On a CUDA GPU `torch.cuda.max_memory_allocated` answers this; on a CPU nothing in torch keeps a peak,
so `PeakMemoryTracker` watches the operators instead. It sees each operator's outputs (through a
TorchDispatchMode, below autograd, so the backward pass is seen too), adds the bytes of every storage
it has not seen before and subtracts them when the storage is freed. What existed before the tracker
started is not counted: the peak is the *extra* memory the tracked code needed.

Not seen: scratch buffers that one kernel allocates and frees inside itself, and storages that are
resized in place after they were created. Both are rare in the code this book measures. Dispatch
modes see only their own thread, so while one watches, linattn's CPU kernels keep their work on the
calling thread: the peak is that of a run on one core (with several cores, each holds its own buffers).
"""
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def _storages(tree):
    for leaf in tree_leaves(tree):
        if isinstance(leaf, torch.Tensor) and leaf.device.type != "meta":
            yield leaf.untyped_storage()


class PeakMemoryTracker(TorchDispatchMode):
    """with PeakMemoryTracker() as tracker: ...; then tracker.peak (bytes) and tracker.current."""

    def __init__(self):
        super().__init__()
        self.current = 0   # bytes of tracked storages still alive
        self.peak = 0      # the most that were alive at once
        self._tracked = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        # Views and in-place results share an input's storage: nothing new was allocated.
        inputs = {id(s) for s in _storages((args, kwargs))}
        for storage in _storages(out):
            if id(storage) not in inputs and id(storage) not in self._tracked:
                self._count(storage)
        return out

    def _count(self, storage):
        nbytes = storage.nbytes()
        key = id(storage)
        self._tracked.add(key)
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        # torch keeps one Python object per live storage, so this fires when the memory is released.
        weakref.finalize(storage, self._release, key, nbytes)

    def _release(self, key, nbytes):
        self._tracked.discard(key)
        self.current -= nbytes


def peak_bytes(fn, *args, **kwargs):
    """Extra bytes that fn(*args, **kwargs) held at its peak, its result included."""
    if not callable(fn):
        raise ValueError(f"peak_bytes needs a callable, got {type(fn).__name__}")
    with PeakMemoryTracker() as tracker:
        result = fn(*args, **kwargs)
        del result
    return tracker.peak
