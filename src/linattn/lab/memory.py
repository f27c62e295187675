"""Memory: estimates from tensor sizes, what the device has free, and a guard that skips what won't fit."""
import os

import torch

BUDGET_VARIABLE = "LINATTN_MEMORY_BUDGET"  # bytes; overrides what the device reports (for tests)
SAFETY_FRACTION = 0.8                      # use at most this share of the free memory


def element_size(dtype):
    return torch.empty((), dtype=dtype).element_size()


def format_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024


def score_matrix_bytes(batch, seq_len, *, heads=1, key_len=None, dtype=torch.float32):
    """Bytes of softmax attention's (B, H, N, M) score matrix."""
    key_len = seq_len if key_len is None else key_len
    return batch * heads * seq_len * key_len * element_size(dtype)


def softmax_attention_bytes(batch, seq_len, dim, *, heads=1, dtype=torch.float32):
    """Peak estimate for softmax_attention: scores and weights (two N x N) plus q, k, v and the output."""
    vectors = 4 * batch * heads * seq_len * dim * element_size(dtype)
    return 2 * score_matrix_bytes(batch, seq_len, heads=heads, dtype=dtype) + vectors


def available_bytes(device):
    """Free memory on `device` (or $LINATTN_MEMORY_BUDGET when set).

    On a CUDA GPU, memory that PyTorch's caching allocator holds but no tensor uses counts as free:
    `torch.cuda.mem_get_info` reports it as taken, yet PyTorch hands it out again before asking the
    driver for more. Without it a sweep that runs N upwards would skip sizes that fit.
    """
    if os.environ.get(BUDGET_VARIABLE):
        return int(float(os.environ[BUDGET_VARIABLE]))
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + max(cached, 0)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def fits(bytes_needed, device, *, budget=None):
    """Whether `bytes_needed` fits in SAFETY_FRACTION of the free memory (or of `budget`)."""
    budget = available_bytes(device) if budget is None else budget
    return bytes_needed <= SAFETY_FRACTION * budget


def guard(bytes_needed, device, what="this size", *, budget=None):
    """True when it fits; otherwise prints why `what` is skipped and returns False."""
    budget = available_bytes(device) if budget is None else budget
    if fits(bytes_needed, device, budget=budget):
        return True
    print(f"Skipping {what}: it needs about {format_bytes(bytes_needed)}, "
          f"more than {SAFETY_FRACTION:.0%} of the {format_bytes(budget)} free on {torch.device(device)}.")
    return False


def peak_cuda_bytes(fn, *args, device="cuda", **kwargs):
    """Peak bytes allocated on a CUDA device while fn runs, beyond what was allocated before."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn(*args, **kwargs)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
