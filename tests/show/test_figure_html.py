"""linattn.show.figure_html: figures as <img> tags with alt text, for slider views."""
import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from linattn.show.figure_html import figure_html, show_figure  # noqa: E402


def a_figure():
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    return fig


def test_the_tag_embeds_the_png_and_escapes_the_alt_text():
    fig = a_figure()
    tag = figure_html(fig, '  Time against N: "linear" < quadratic  ')
    plt.close(fig)
    assert 'alt="Time against N: &quot;linear&quot; &lt; quadratic"' in tag
    data = re.search(r'src="data:image/png;base64,([^"]+)"', tag).group(1)
    assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_show_figure_displays_html_and_closes_the_figure(monkeypatch):
    shown = []
    monkeypatch.setattr("linattn.show.figure_html.display", shown.append)
    fig = a_figure()
    show_figure(fig, "a falling line")
    assert not plt.fignum_exists(fig.number)
    assert len(shown) == 1 and 'alt="a falling line"' in shown[0].data


@pytest.mark.parametrize("alt", ["", "   ", None, 3])
def test_missing_alt_text_is_refused(alt):
    fig = a_figure()
    with pytest.raises(ValueError, match="alt text"):
        figure_html(fig, alt)
    plt.close(fig)


def test_a_non_figure_is_refused():
    with pytest.raises(ValueError, match="Figure"):
        figure_html("not a figure", "alt")
