"""One source of sizes: profiles chosen by $LINATTN_PROFILE (ci, cpu, gpu), default from the device."""
import os
from dataclasses import dataclass

import torch

PROFILE_VARIABLE = "LINATTN_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    batch: int            # batch size of the timing sweeps
    dim: int              # head dimension d
    seq_lens: tuple       # sequence lengths N of the sweeps
    repeats: int          # timed runs per point
    slider_lens: tuple    # the positions of sequence-length sliders
    description: str
    time_budget: float | None = None   # seconds of timed runs per point in a chapter's live sweep (None: all repeats)


PROFILES = {
    "ci": Profile("ci", batch=2, dim=32, seq_lens=(64, 128, 256, 512), repeats=3,
                  slider_lens=(64, 256), description="the smallest sizes, for continuous integration"),
    "cpu": Profile("cpu", batch=4, dim=64, seq_lens=(128, 256, 512, 1024, 2048), repeats=10,
                   slider_lens=(128, 256, 512, 1024, 2048),
                   description="a reduced sweep for a laptop CPU", time_budget=10.0),
    # The blog's setup (Maddrell-Mander, "Linear Attention Is All You Need", Towards Data Science, 2 June
    # 2024), not the paper's: one layer, d = 64, batch 32, N from 128 to 6000, 100 repetitions, on a T4.
    # The paper's own benchmark (§4.1.2) has its sizes in linattn.lab.paper_benchmark.
    "gpu": Profile("gpu", batch=32, dim=64, seq_lens=(128, 256, 512, 1024, 2048, 4096, 6000), repeats=100,
                   slider_lens=(128, 512, 1024, 2048, 4096, 6000),
                   description="the blog's setup (Maddrell-Mander 2024): batch 32, d = 64, N up to 6000",
                   time_budget=2.0),   # a Colab T4 runs Chapter 6's live sweep in about 80 s (lab.sweep_time)
}


def default_profile_name(device=None):
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "gpu" if torch.device(device).type == "cuda" else "cpu"


def get_profile(name=None, *, device=None):
    """The profile `name`, else $LINATTN_PROFILE, else 'gpu' on a CUDA device and 'cpu' otherwise."""
    name = name or os.environ.get(PROFILE_VARIABLE) or default_profile_name(device)
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from {PROFILE_VARIABLE}?); choose one of {sorted(PROFILES)}")
    return PROFILES[name]
