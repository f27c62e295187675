"""linattn: reference implementations and helpers for "Linear Attention, Hands-On".

Layers (each imports only those before it): core (attention, feature maps, causal algorithms),
measure (device, profiles, timing, memory), present (plots, widgets; imported on demand).
"""
from .attention import linear_attention, softmax_attention
from .device import choose_device, environment, hardware_name
from .feature_maps import FEATURE_MAPS, PerformerFeatures, elu_plus_one, get_feature_map, poly2_features, relu_features
from .memory import format_bytes, guard, score_matrix_bytes, softmax_attention_bytes
from .profiles import get_profile
from .results import load_results, save_results
from .timing import Timing, time_call

__version__ = "0.1.0"

__all__ = [
    "softmax_attention", "linear_attention",
    "FEATURE_MAPS", "PerformerFeatures", "elu_plus_one", "relu_features", "poly2_features", "get_feature_map",
    "choose_device", "environment", "hardware_name", "get_profile", "Timing", "time_call",
    "format_bytes", "guard", "score_matrix_bytes", "softmax_attention_bytes", "load_results", "save_results",
]
