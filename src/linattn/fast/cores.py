"""Running work on every core without a barrier after each operation.

PyTorch splits each operation across its threads and waits for all of them at the end. A tile's
operations are short, so on a busy machine that wait (for a thread the system has paused) can cost
more than the work. Instead, each worker thread here runs whole tiles with one-thread operations.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

TASKS_PER_WORKER = 4          # tiles are handed to the worker threads in about this many batches each

_POOLS = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools():   # threads do not survive fork(): a child process starts its own pool
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _pool(workers):
    """A pool of `workers` threads whose torch operations run on one thread each."""
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = _start_pool(workers)
        return _POOLS[workers]


def _one_thread():
    torch.get_num_threads()   # PyTorch sets up a new thread's thread count once, on first use: do that first,
    torch.set_num_threads(1)  # or it would later undo this


def _start_pool(workers):
    keep = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="linattn", initializer=_one_thread)
    started = threading.Barrier(workers)
    list(pool.map(lambda _: started.wait(), range(workers)))   # start every thread now
    torch.set_num_threads(keep)   # set_num_threads(1) in a worker also changed the process default
    return pool


def run_on_cores(task, items):
    """task(item) for every item: on the worker threads, in the caller's grad and inference mode, when
    there are enough items to keep every core busy; else (or while a mode watches the operations) one
    after the other here, each operation then using every core."""
    workers = torch.get_num_threads()
    # A TorchDispatchMode (a FLOP counter, linattn's memory tracker) or a TorchFunctionMode sees only
    # its own thread's operations.
    watched = torch._C._len_torch_dispatch_stack() > 0 or torch._C._len_torch_function_stack() > 0
    if workers <= 1 or len(items) < workers or watched:
        for item in items:
            task(item)
        return
    # A few items per task keeps the hand-over cost low; several tasks per worker keep them all busy.
    per_task = max(1, len(items) // (TASKS_PER_WORKER * workers))
    batches = [items[i:i + per_task] for i in range(0, len(items), per_task)]
    list(_pool(workers).map(_in_callers_modes(lambda batch: [task(item) for item in batch]), batches))


def _in_callers_modes(task):
    """task, run on a worker thread with the grad and inference modes of the thread that calls this:
    they are per thread, and a worker's own (grad on) would make in-place work on inputs that require
    grad fail under torch.no_grad(), and writes into inference tensors fail under torch.inference_mode()."""
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def in_modes(*args):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return task(*args)

    return in_modes


def autocast_on():
    """Whether CPU autocast is on in this thread: it would change the dtypes of the kernels' matrix
    products under their preallocated outputs, so the kernels leave such calls to the plain version."""
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:                    # torch before 2.4 has one function per device
        return torch.is_autocast_cpu_enabled()
