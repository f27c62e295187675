"""linattn: reference implementations and helpers for "Linear Attention, Hands-On".

The package is layered; each layer imports only those before it (import-linter checks this):
  linattn          the core: attention, kernels, feature maps, causal algorithms, generation, variants
  linattn.fast     the CPU kernels the core dispatches to for phi = elu + 1
  linattn.lab      measuring: devices, profiles, timing, memory, roofline, costs, the benchmark
  linattn.learn    Chapter 7's model, tasks and training      linattn.show  plots, widgets, figures
The names below are the ones the chapters use; the measuring helpers are re-exported for them.
"""
from .attention import linear_attention, softmax_attention
from .causal import (CAUSAL_ALGORITHMS, chunked_causal_linear_attention, cumsum_causal_linear_attention,
                     masked_causal_linear_attention, recurrent_causal_linear_attention)
from .generation import KVCache, LinearAttentionState, linear_attention_step, softmax_attention_step
from .feature_maps import FEATURE_MAPS, PerformerFeatures, elu_plus_one, get_feature_map, poly2_features, relu_features
from .kernels import (SIMILARITIES, attention_weights, dot_similarity, exp_similarity, feature_map_similarity,
                      gaussian_similarity, kernel_smoother, polynomial_similarity)
from .metrics import attention_entropy, relative_error, total_variation
from .variants import decayed_linear_attention, delta_rule_attention, gated_linear_attention
from .fast import einsum_linear_attention, fast_linear_attention
from .lab.device import choose_device, environment, hardware_name
from .lab.memory import format_bytes, guard, score_matrix_bytes, softmax_attention_bytes
from .lab.peak_memory import PeakMemoryTracker, peak_bytes
from .lab.profiles import get_profile
from .lab.results import load_results, save_results
from .lab.roofline import Roofline, measure_roofline
from .lab.timing import Timing, time_call

__version__ = "0.2.0"

__all__ = [
    "softmax_attention", "linear_attention",
    "CAUSAL_ALGORITHMS", "masked_causal_linear_attention", "cumsum_causal_linear_attention",
    "recurrent_causal_linear_attention", "chunked_causal_linear_attention",
    "linear_attention_step", "softmax_attention_step", "LinearAttentionState", "KVCache",
    "PeakMemoryTracker", "peak_bytes",
    "FEATURE_MAPS", "PerformerFeatures", "elu_plus_one", "relu_features", "poly2_features", "get_feature_map",
    "SIMILARITIES", "attention_weights", "kernel_smoother", "dot_similarity", "exp_similarity",
    "polynomial_similarity", "gaussian_similarity", "feature_map_similarity",
    "attention_entropy", "total_variation", "relative_error",
    "decayed_linear_attention", "gated_linear_attention", "delta_rule_attention",
    "choose_device", "environment", "hardware_name", "get_profile", "Timing", "time_call",
    "format_bytes", "guard", "score_matrix_bytes", "softmax_attention_bytes", "load_results", "save_results",
    "fast_linear_attention", "einsum_linear_attention", "Roofline", "measure_roofline",
]
