from __future__ import annotations

import json
import re

from engine.literature import Paper
from engine.literature.paper import latex_escape

GROKKING = Paper(id="s2id0", engine="semantic_scholar",
                 title="Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets",
                 authors=("Alethea Power", "Yuri Burda"), venue="arXiv.org", year=2022,
                 abstract="We study generalization. " * 60, citation_count=350,
                 doi="10.48550/arXiv.2201.02177", arxiv_id="2201.02177", url="https://arxiv.org/abs/2201.02177")


def field(entry: str, name: str) -> str | None:
    m = re.search(rf"^  {name} = \{{(.*)\}},?$", entry, re.MULTILINE)
    return m.group(1) if m else None


def balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_round_trip_through_json():
    again = Paper.from_dict(json.loads(json.dumps(GROKKING.to_dict())))
    assert again == GROKKING and isinstance(again.authors, tuple)
    assert Paper.from_dict({**GROKKING.to_dict(), "extra": 1}) == GROKKING


def test_bibtex_key_is_stable_ascii_last_name_year_word():
    assert GROKKING.bibtex_key == "power2022grokking"
    p = Paper("x", "openalex", "The Attention Is All You Need", ("Łukasz Kaiser-Müller",), year=2017)
    assert p.bibtex_key == "kaisermuller2017attention"
    assert Paper("x", "arxiv", "On a théorème", ("Dupont, Jean",)).bibtex_key == "dupontndtheoreme"
    assert Paper("x", "arxiv", "", ()).bibtex_key == "anonnduntitled"
    assert Paper("x", "arxiv", "A Study", ("李 明",), year=2020).bibtex_key.isascii()


def test_bibtex_escapes_latex_specials_and_keeps_braces_balanced():
    nasty = "50% of R&D costs $5 #1 in_place {x} ~ a^b C:\\path"
    p = Paper("x", "semantic_scholar", nasty, ("A. {Weird} Name_1",), venue="Journal of R&D", year=2020)
    entry = p.bibtex()
    title = field(entry, "title")
    assert r"50\% of R\&D costs \$5 \#1 in\_place" in title
    assert r"\textbraceleft{}x\textbraceright{}" in title and r"\textasciitilde{}" in title
    assert r"a\textasciicircum{}b" in title and r"C:\textbackslash{}path" in title
    assert field(entry, "journal") == r"Journal of R\&D"
    assert balanced(entry) and entry.startswith("@article{")
    for ch in "&%$#_":  # no unescaped special character in a text field
        assert not re.search(rf"(?<!\\){re.escape(ch)}", title + field(entry, "author")), ch
    assert latex_escape("\\&") == r"\textbackslash{}\&"  # one pass: the backslash is not escaped twice


def test_entry_types_follow_the_venue():
    misc = GROKKING.bibtex()
    assert misc.startswith("@misc{power2022grokking,")
    assert field(misc, "eprint") == "2201.02177" and field(misc, "archivePrefix") == "arXiv"
    assert "arXiv:2201.02177" in field(misc, "howpublished")
    assert field(misc, "title") == "{Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets}"
    assert field(misc, "author") == "Alethea Power and Yuri Burda"
    conf = Paper("x", "openalex", "T", ("A B",), venue="International Conference on Learning Representations")
    assert conf.bibtex().startswith("@inproceedings{") and field(conf.bibtex(), "booktitle")
    assert Paper("x", "openalex", "T", ("A B",), venue="NeurIPS").entry_type() == "inproceedings"
    journal = Paper("x", "openalex", "T", ("A B",), venue="Nature", doi="10.1038/nature14539")
    assert journal.bibtex().startswith("@article{") and field(journal.bibtex(), "doi") == "10.1038/nature14539"
    assert Paper("x", "arxiv", "T", ("A B",), venue="").entry_type() == "misc"


def test_unsafe_identifiers_are_left_out():
    p = Paper("x", "openalex", "T", ("A B",), venue="Nature", doi="10.1000/a_b{c}", url="https://x.org/a%20b#c")
    entry = p.bibtex()
    assert "doi =" not in entry and "url =" not in entry and balanced(entry)


def test_prompt_text_is_short_and_complete():
    text = GROKKING.prompt_text()
    lines = text.splitlines()
    assert lines[0] == f"Title: {GROKKING.title}"
    assert "Alethea Power, Yuri Burda" in lines[1] and "arXiv.org, 2022" in lines[2] and "350 citations" in lines[2]
    assert len(lines[3]) < 700 and lines[3].endswith("...")
    unknown = Paper("x", "arxiv", "T").prompt_text()
    assert "citations unknown" in unknown and "venue unknown" in unknown
    many = Paper("x", "arxiv", "T", tuple(f"Author {i}" for i in range(10))).prompt_text()
    assert "et al." in many and "Author 9" not in many
