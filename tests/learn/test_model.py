import pytest
import torch
import torch.nn.functional as F

import linattn
from linattn.learn.model import CausalSelfAttention, TinyTransformer

ATTENTIONS = [("softmax", "elu"), ("linear", "elu"), ("linear", "poly2"),
              ("linear", linattn.PerformerFeatures(8, 16, seed=0))]
IDS = ["softmax", "linear-elu", "linear-poly2", "linear-performer"]


def tokens(batch, n, vocab, seed=0):
    return torch.randint(vocab, (batch, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attention,feature_map", ATTENTIONS, ids=IDS)
def test_logits_shape(attention, feature_map):
    torch.manual_seed(0)
    model = TinyTransformer(11, 20, d_model=32, n_heads=2, head_dim=8, attention=attention, feature_map=feature_map)
    logits = model(tokens(3, 20, 11))
    assert logits.shape == (3, 20, 11) and torch.isfinite(logits).all()


@pytest.mark.parametrize("attention,feature_map", ATTENTIONS, ids=IDS)
@pytest.mark.parametrize("previous_token", [True, False])
def test_no_position_sees_the_future(attention, feature_map, previous_token):
    torch.manual_seed(0)
    model = TinyTransformer(11, 16, d_model=32, n_layers=2, n_heads=2, head_dim=8, attention=attention,
                            feature_map=feature_map, previous_token=previous_token).double()
    x = tokens(2, 16, 11)
    changed = x.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 11
    before, after = model(x), model(changed)
    assert torch.allclose(before[:, :9], after[:, :9], atol=1e-12)
    assert not torch.allclose(before[:, 9:], after[:, 9:])        # and the change is seen from 9 on


def test_previous_token_embedding_reaches_the_next_position_only():
    torch.manual_seed(0)
    model = TinyTransformer(7, 8, d_model=16, attention="linear").double()
    for block in model.blocks:  # silence attention: only embeddings and the MLP remain per position
        torch.nn.init.zeros_(block.attn.out.weight)
    x = tokens(1, 8, 7)
    changed = x.clone()
    changed[0, 3] = (changed[0, 3] + 1) % 7
    moved = (model(x) - model(changed)).abs().amax(dim=-1)[0]
    assert moved[3] > 0 and moved[4] > 0
    assert torch.all(moved[[0, 1, 2, 5, 6, 7]] == 0)


def test_attention_layer_matches_reference_implementations():
    torch.manual_seed(0)
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    for kind in ("softmax", "linear"):
        layer = CausalSelfAttention(16, 2, 4, attention=kind, feature_map="elu").double()
        q, k, v = layer.qkv(x).view(2, 12, 3, 2, 4).permute(2, 0, 3, 1, 4)
        if kind == "softmax":
            expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            phi = linattn.elu_plus_one
            expected = linattn.masked_causal_linear_attention(phi(q), phi(k), v)
        expected = layer.out(expected.transpose(1, 2).flatten(2))
        assert torch.allclose(layer(x), expected, atol=1e-10), kind


@pytest.mark.parametrize("attention,feature_map", ATTENTIONS[:3], ids=IDS[:3])
def test_every_parameter_gets_a_finite_gradient(attention, feature_map):
    torch.manual_seed(0)
    model = TinyTransformer(9, 10, d_model=16, n_heads=2, attention=attention, feature_map=feature_map)
    model(tokens(2, 10, 9)).logsumexp(-1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.token.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [
    torch.zeros(2, 5),                        # float tokens
    torch.zeros(5, dtype=torch.long),         # no batch dimension
    torch.full((1, 5), 9, dtype=torch.long),  # outside the vocabulary
    torch.full((1, 5), -1, dtype=torch.long),
    torch.zeros(1, 11, dtype=torch.long),     # longer than max_len
    [[1, 2, 3]],
])
def test_bad_tokens_raise(bad):
    model = TinyTransformer(9, 10, d_model=16)
    with pytest.raises(ValueError):
        model(bad)


@pytest.mark.parametrize("kwargs", [
    {"attention": "cosine"}, {"feature_map": "nope", "attention": "linear"}, {"d_model": 0},
    {"n_layers": 1.0}, {"n_heads": 3}, {"head_dim": 0}, {"vocab_size": True},
])
def test_bad_settings_raise(kwargs):
    settings = {"vocab_size": 9, "max_len": 10, "d_model": 16, **kwargs}
    with pytest.raises(ValueError):
        TinyTransformer(settings.pop("vocab_size"), settings.pop("max_len"), **settings)


@pytest.mark.parametrize("args", [(16, 0, 4), (16, 2, 0), (0, 2, 4), (16, 2.0, 4)])
def test_bad_attention_layer_sizes_raise(args):
    with pytest.raises(ValueError, match="positive int"):
        CausalSelfAttention(*args)
