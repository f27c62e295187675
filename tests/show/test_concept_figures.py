"""linattn.show.figures: every conceptual figure draws (small, Agg), says what it shows in its alt text,
refuses bad arguments, and shows the numbers the package computes."""
import ast
import io
import json
import re
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import linattn  # noqa: E402
from linattn.show import figures  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# What each alt text must name: the figure's subject in words a screen-reader user needs.
SUBJECTS = {
    "weighted_average": ["softmax weights", "weighted average", "value"],
    "multi_head": ["heads", "split", "concatenated"],
    "kernel_weights": ["Gaussian", "elu + 1", "query", "output"],
    "product_orders": ["N x N", "d x d", "to scale"],
    "state_write": ["phi(k_t) v_t^T", "outer product", "state"],
    "causal_schemes": ["Masked", "Cumsum", "Recurrent", "Chunked"],
    "generation_memory": ["KV cache", "state", "bytes"],
    "state_updates": ["sum rule", "decay", "gate", "delta rule"],
}


def draw(fig):
    """Render at a small size, as the book's smallest layout would: mathtext and layout errors show here."""
    fig.set_size_inches(4, 3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    plt.close(fig)
    return buffer.getvalue()


def numbers_after(text, marker):
    """The comma-separated numbers that follow `marker` in text."""
    tail = text.split(marker, 1)[1]
    return [float(x) for x in re.match(r"\s*\(?\s*(-?[\d.]+(?:,\s*-?[\d.]+)*)", tail).group(1).split(",")]


def test_every_figure_is_listed_with_its_subject():
    assert set(figures.FIGURES) == set(SUBJECTS)


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_each_figure_draws_and_describes_itself(name):
    fig, alt = figures.FIGURES[name]()
    assert isinstance(fig, plt.Figure) and fig.axes
    assert isinstance(alt, str) and len(alt) > 120
    missing = [word for word in SUBJECTS[name] if word not in alt]
    assert not missing, f"{name}: alt text does not name {missing}: {alt}"
    assert draw(fig).startswith(b"\x89PNG")


@pytest.mark.parametrize("name, bad", [
    ("weighted_average", {"n_keys": 0}), ("weighted_average", {"d_v": 7}),
    ("multi_head", {"heads": 5}), ("multi_head", {"n": 1.5}),
    ("kernel_weights", {"query": 4.0}), ("kernel_weights", {"sigma": 0}), ("kernel_weights", {"n_keys": 1}),
    ("product_orders", {"n": 0}), ("product_orders", {"n": 64, "n_max": 32}), ("product_orders", {"d": True}),
    ("state_write", {"steps": 7}), ("causal_schemes", {"chunk": 9}), ("causal_schemes", {"n": 1}),
    ("generation_memory", {"tokens": 1}), ("state_updates", {"decay": 0}), ("state_updates", {"beta": 1.5}),
])
def test_bad_arguments_are_refused(name, bad):
    with pytest.raises(ValueError):
        figures.FIGURES[name](**bad)
    plt.close("all")


def patch_area(fig, gid):
    (patch,) = [p for ax in fig.axes for p in ax.patches if p.get_gid() == gid]
    return patch.get_width() * patch.get_height()


def test_the_two_orders_are_drawn_to_scale():
    areas = {}
    for n in (64, 128, 256):
        fig, alt = figures.product_orders(n, 16, n_max=256)
        areas[n] = patch_area(fig, "nxn"), patch_area(fig, "dxd")
        assert f"{n * n:,} numbers" in alt and "256 numbers" in alt
        plt.close(fig)
    assert areas[128][0] == 4 * areas[64][0] and areas[256][0] == 4 * areas[128][0]   # grows with N^2
    assert areas[64][1] == areas[128][1] == areas[256][1] == 16 * 16                   # stays d x d
    assert areas[256][0] == 256 * 256


def test_the_orders_redraw_inside_a_static_slider():
    from linattn.show.widgets import static_slider
    box = static_slider([32, 64], lambda n: figures.product_orders(n, 16, n_max=64))
    assert len(box.children[1].children) == 2
    plt.close("all")


def test_the_weighted_average_shows_softmax_weights_that_sum_to_one():
    fig, alt = figures.weighted_average(n_keys=5)
    plt.close(fig)
    weights = numbers_after(alt, "for keys 1 to 5:")
    assert len(weights) == 5 and sum(weights) == pytest.approx(1, abs=0.03)
    assert f"goes to key {weights.index(max(weights)) + 1}" in alt


def test_multi_head_shows_one_weight_matrix_per_head():
    fig, alt = figures.multi_head(heads=3, n=4)
    images = [im for ax in fig.axes for im in ax.images if im.get_array().shape == (4, 4)]
    plt.close(fig)
    assert len(images) == 3
    assert all(abs(im.get_array().sum(axis=1) - 1).max() < 1e-9 for im in images)


def test_the_delta_rule_panel_recalls_the_new_value_and_the_others_do_not():
    fig, alt = figures.state_updates(beta=1.0)
    plt.close(fig)
    value = numbers_after(alt, "value v =")
    assert numbers_after(alt, "delta rule, beta = 1:") == value
    assert numbers_after(alt, "sum rule:") != value


def test_generation_memory_finds_where_the_cache_passes_the_state():
    d = d_v = 8
    fig, alt = figures.generation_memory(tokens=32, d=d, d_v=d_v)
    plt.close(fig)
    state_numbers = d * d_v + d                                   # S and z
    first = next(t for t in range(1, 33) if t * (d + d_v) > state_numbers)
    assert f"the cache is the larger from t = {first} on" in alt
    assert f"holds {state_numbers * 8:,} bytes at every step" in alt


def test_state_write_ends_at_the_state_the_package_builds():
    fig, alt = figures.state_write(steps=3, d=3, d_v=3, seed=0)
    matrices = {ax: im.get_array() for ax in fig.axes for im in ax.images}
    plt.close(fig)
    gen = torch.Generator().manual_seed(0)
    k, v = (torch.randn(3, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    final = linattn.elu_plus_one(k).T @ v                         # sum of the three rank-one writes
    assert f"from {final.min():.2f} to {final.max():.2f}" in alt
    assert any(torch.allclose(torch.as_tensor(m.data), final) for m in matrices.values())


def test_causal_schemes_keeps_only_the_diagonal_blocks_in_the_chunked_panel():
    fig, alt = figures.causal_schemes(n=8, chunk=4)
    masked, chunked = fig.axes[0].images[0].get_array(), fig.axes[3].images[0].get_array()
    plt.close(fig)
    kept = ~torch.isnan(torch.as_tensor(chunked.filled(float("nan")) if hasattr(chunked, "filled") else chunked))
    assert int(kept.sum()) == 2 * (4 * 5 // 2)                     # two lower-triangular 4 x 4 blocks
    assert int((~torch.isnan(torch.as_tensor(masked.filled(float("nan"))))).sum()) == 8 * 9 // 2


def figure_cells():
    """(notebook, function name, (args, kwargs), metadata alt) for each figure cell that calls figures.X(...)
    with literal arguments."""
    found = []
    for path in sorted((ROOT / "book").glob("ch0*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf8"))["cells"]:
            alt = cell["metadata"].get("mystnb", {}).get("image", {}).get("alt")
            if cell["cell_type"] != "code" or alt is None:
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and getattr(node.func.value, "id", None) == "figures"):
                    args = tuple(ast.literal_eval(arg) for arg in node.args)
                    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
                    found.append((path.name, node.func.attr, (args, kwargs), alt))
    return found


def test_figure_cells_carry_the_alt_text_their_function_writes():
    """A figure cell's alt text is the function's own, so that it cannot fall behind the seeded example."""
    for notebook, name, (args, kwargs), alt in figure_cells():
        fig, expected = figures.FIGURES[name](*args, **kwargs)
        plt.close(fig)
        assert alt == expected, f"{notebook}: the alt text of figures.{name}{args, kwargs} differs from the function's"


CHAPTER_OF = {"weighted_average": "ch01", "multi_head": "ch01", "kernel_weights": "ch02", "product_orders": "ch04",
              "state_write": "ch05", "causal_schemes": "ch05", "generation_memory": "ch05", "state_updates": "ch08"}


def test_every_figure_is_shown_in_its_chapter():
    """Each figure has a captioned figure cell in its chapter (product_orders also drives Chapter 4's slider)."""
    shown = {(notebook[:4], name) for notebook, name, _, _ in figure_cells()}
    missing = [f"figures.{name}() in {chapter}" for name, chapter in CHAPTER_OF.items() if (chapter, name) not in shown]
    assert not missing, f"figure cells still to add: {missing}"
