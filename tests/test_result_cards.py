"""The results grid's HTML: one figure per hit, marks by class, escaped text."""

from html.parser import HTMLParser

from cnnviz.result_cards import Card, results_html


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Collect:
    parsed = _Collect()
    parsed.feed(html)
    return parsed


def _hit_images(parsed: _Collect) -> list[dict]:
    return [a for t, a in parsed.tags if t == "img" and a.get("class") != "cnnviz-mark"]


def _marks(parsed: _Collect) -> list[str]:
    return [a["alt"] for t, a in parsed.tags if t == "img" and a.get("class") == "cnnviz-mark"]


def _cards(labels, flag_on=None):
    return [Card(f"data:image/jpeg;base64,AAA{n}", n + 1, f"{lab}/{n}.png", lab, 0.9 - n / 100,
                 "possible label error" if n == flag_on else None) for n, lab in enumerate(labels)]


def test_one_figure_per_hit_in_rank_order_with_its_caption():
    parsed = _parse(results_html(_cards(["coat", "bag", "coat"]), "coat", columns=3))
    imgs = _hit_images(parsed)
    assert [a["alt"] for a in imgs] == ["coat/0.png", "bag/1.png", "coat/2.png"]
    assert imgs[1]["src"] == "data:image/jpeg;base64,AAA1"
    text = " ".join("".join(parsed.text).split())  # white space collapses, as in a browser
    assert "#1 coat · sim 0.900" in text and "#2 bag · sim 0.890" in text
    grid = next(a for t, a in parsed.tags if t == "div")
    assert "repeat(3," in grid["style"]


def test_marks_are_svg_images_in_the_given_colour():
    parsed = _parse(results_html(_cards(["coat", "bag"]), "coat"))
    icons = [a for t, a in parsed.tags if t == "img" and a.get("class") == "cnnviz-mark"]
    assert all(a["src"].startswith("data:image/svg+xml,") for a in icons)
    assert "21c354" in icons[0]["src"] and "ff4b4b" in icons[1]["src"]  # green check, red cross


def test_marks_say_whether_the_class_is_the_querys():
    parsed = _parse(results_html(_cards(["coat", "bag", "coat"]), "coat"))
    marks = _marks(parsed)
    assert marks == ["same class as the query", "another class than the query", "same class as the query"]


def test_no_marks_for_a_query_without_a_class():
    parsed = _parse(results_html(_cards(["coat", "bag"]), None))
    assert not _marks(parsed)


def test_a_flag_shows_its_note():
    parsed = _parse(results_html(_cards(["coat", "bag"], flag_on=1), "coat"))
    assert _marks(parsed)[-1] == "flagged on the Data quality page"
    assert "possible label error" in "".join(parsed.text)


def test_folder_names_cannot_inject_markup():
    evil = '<img src=x onerror="alert(1)">'
    html = results_html([Card('x" onerror="alert(2)', 1, evil + "/a.png", evil, 0.5)], evil)
    parsed = _parse(html)
    assert len(_hit_images(parsed)) == 1  # only the card's own image
    img = _hit_images(parsed)[0]
    assert "onerror" not in img and img["src"] == 'x" onerror="alert(2)'
    assert evil in "".join(parsed.text)  # shown as text
