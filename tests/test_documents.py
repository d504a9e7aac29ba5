"""Documents: cleaning keeps every article sentence and drops site furniture; title, date, language, ids."""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from pathlib import Path

import pytest

from rag.chunking import split_sentences
from rag.documents import clean_text, discover, doc_id_for, find_date, find_title, load_document
from rag.errors import DocumentSkipped
from rag.language import detect_language

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
EVAL = ROOT.parent / "shared" / "eval"
LIMIT = 10 * 1024 * 1024
EXTENSIONS = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")

SEED_FACTS = {
    "000_f7aabd5eab4a1a5e.txt": (
        "BMT Baş Assambleyasının 78-ci sessiyasının yüksək səviyyəli həftəsi çərçivəsində Azərbaycan "
        "Respublikasının xarici işlər naziri Ceyhun Bayramov İslam Əməkdaşlıq Təşkilatının (İƏT) Baş katibi "
        "Hissein Brahim Taha ilə görüşüb",
        "az",
        None,
    ),
    "001_44aa1b61c723b359.txt": ("Entoni Blinken İlham Əliyevə zəng edib", "az", None),
    "002_be657e30248251b4.txt": (
        "FM Bayramov meets with ambassadors of OIC member states accredited in Azerbaijan",
        "en",
        None,
    ),
    "003_85deb69a06af6b7d.txt": ("Джейхун Байрамов продолжает встречи на полях Генассамблеи ООН", "ru", None),
    "004_6ae4727e16493b4e.txt": (
        "Azərbaycan və Özbəkistan arasında siyasi məsləhətləşmələr keçirilib",
        "az",
        "2023-06",
    ),
}
SEED_003_FURNITURE = {
    "Новости",
    "Подписывайтесь на Sputnik в Дзен",
    "Читайте также:",
    "Глава МИД Азербайджана встретился с сопредседателями МГ ОБСЕ и главой МИД Армении",
    "Азербайджану необходимо новое соглашение с ЕС на основе равноправного партнерства - МИД АР",
    "Джейхун Байрамов: открытие коммуникаций усилит роль Южного Кавказа",
}


def seed(name: str):
    return load_document(SEEDS / name, SEEDS, LIMIT)


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


# Seeds ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SEED_FACTS))
def test_seed_title_language_and_date(name):
    title, lang, date = SEED_FACTS[name]
    doc = seed(name)
    assert (doc.title, doc.lang, doc.date) == (title, lang, date)
    assert doc.source == name
    assert doc.doc_id == hashlib.sha1(name.encode()).hexdigest()[:16]
    assert doc.content_hash == hashlib.sha256((SEEDS / name).read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(SEED_FACTS))
def test_every_article_sentence_of_the_seeds_survives_cleaning(name):
    original = unicodedata.normalize("NFC", (SEEDS / name).read_text(encoding="utf-8")).replace("\xa0", " ")
    doc = seed(name)
    dropped = SEED_003_FURNITURE if name.startswith("003") else set()
    for line in original.splitlines():
        line = " ".join(line.split())
        if not line or line in dropped:
            continue
        for start, end in split_sentences(line):
            assert line[start:end] in doc.text, line[start:end]


def test_seed_003_furniture_is_dropped():
    doc = seed("003_85deb69a06af6b7d.txt")
    lines = doc.text.split("\n")
    for furniture in SEED_003_FURNITURE:
        assert furniture not in lines
    assert "Подписывайтесь" not in doc.text and "Читайте также" not in doc.text
    assert doc.text.startswith("Джейхун Байрамов продолжает встречи")
    assert doc.text.endswith("В ходе встречи стороны также обменялись мнениями об общей гуманитарной деятельности.")


def test_seed_002_repeated_headline_appears_once():
    doc = seed("002_be657e30248251b4.txt")
    assert doc.text.count("FM Bayramov meets with ambassadors") == 1


def test_seed_texts_are_clean():
    for name in SEED_FACTS:
        text = seed(name).text
        assert text == unicodedata.normalize("NFC", text)
        assert "\r" not in text and "\n\n\n" not in text and "\xa0" not in text
        assert all(line == line.strip() for line in text.split("\n"))
        assert text == text.strip()


# Cleaning ---------------------------------------------------------------------------------------------------


def test_cleaning_normalises_unicode_line_ends_and_blank_lines():
    decomposed = unicodedata.normalize("NFD", "Şəki, Gəncə, İsmayıllı, Ağdam, Çöl, Üzüm")
    text = clean_text(f"\r\n\r\n  {decomposed}  \r\n\r\n\r\n\r\nİkinci\u00adsətir\u200b.\t \rSon\u00a0söz.\n\n")
    assert text == "Şəki, Gəncə, İsmayıllı, Ağdam, Çöl, Üzüm\n\nİkincisətir.\nSon söz."


def test_cleaning_removes_escapes_bidi_controls_and_invisible_characters(tmp_path):
    """A document carrying terminal escapes, a bidi override, zero-width and control characters reads as its
    visible words: nothing that could recolour a terminal or reverse a page reaches the index, and a word with
    a zero-width character inside is still the word (so search finds it)."""
    raw = (
        "Başlıq\n\n\x1b[31mQırmızı\x1b[0m mətn \x1b]0;title\x07burada.\n"
        "Ərazi\u200b bütöv\u200dlüyü \u202eevil.exe\u202c \u2066izolə\u2069 \u200eLRM\u200f.\n"
        "Nul\x00 və\x07 zəng\x1f \x9b2Jsimvolları \ud800.\n"
    )
    text = clean_text(raw)
    assert text == "Başlıq\n\nQırmızı mətn burada.\nƏrazi bütövlüyü evil.exe izolə LRM.\nNul və zəng simvolları ."
    # NUL marks a file as binary (skipped whole) and a lone surrogate cannot be written as UTF-8: left out here.
    (tmp_path / "escapes.txt").write_text(raw.replace("\x00", "").replace("\ud800", ""), encoding="utf-8")
    doc = load_document(tmp_path / "escapes.txt", tmp_path, 10**6)
    assert all(ch.isprintable() or ch == "\n" for ch in doc.text)


ENGLISH_PAGE = """World

Ministers meet in Baku to discuss regional transport links

Share on Facebook
The ministers of three countries met in Baku on Monday to discuss new rail links.
We use cookies to improve your experience on this website. Accept all cookies
The bakery near the ministry sold 500 cookies to the delegates, officials said.
Follow us on Telegram
Subscribers to the new rail service will get discounts, the minister said.
Advertisement
The talks will continue next month in Tashkent.

Related:
Azerbaijan opens new railway station
Uzbekistan and Kazakhstan sign trade deal
"""


def test_generic_boilerplate_goes_and_article_sentences_stay():
    text = clean_text(ENGLISH_PAGE)
    assert text.split("\n") == [
        "Ministers meet in Baku to discuss regional transport links",
        "",
        "The ministers of three countries met in Baku on Monday to discuss new rail links.",
        "The bakery near the ministry sold 500 cookies to the delegates, officials said.",
        "Subscribers to the new rail service will get discounts, the minister said.",
        "The talks will continue next month in Tashkent.",
    ]


def test_azerbaijani_related_news_block_at_the_end_goes():
    page = (
        "Xəbərlər / Siyasət\n\nBayramov Nyu-Yorkda görüşlər keçirib\n\n"
        "Nazir bir sıra həmkarları ilə görüşüb. Görüşlərdə regional məsələlər müzakirə olunub.\n\n"
        "Bizi Telegram kanalında izləyin\n\nOxşar xəbərlər\n\n"
        "Bayramov Taha ilə görüşüb\nBlinken Əliyevə zəng edib\n"
    )
    assert clean_text(page) == (
        "Bayramov Nyu-Yorkda görüşlər keçirib\n\n"
        "Nazir bir sıra həmkarları ilə görüşüb. Görüşlərdə regional məsələlər müzakirə olunub."
    )


def test_read_also_heading_followed_by_article_text_keeps_the_text():
    page = (
        "Заголовок статьи\n\nПервый абзац статьи.\n\nЧитайте также:\n\n"
        "Министр подчеркнул, что переговоры продолжатся. Стороны договорились встретиться снова в ноябре."
    )
    text = clean_text(page)
    assert "Читайте также" not in text
    assert text.endswith("Стороны договорились встретиться снова в ноябре.")


def test_lines_of_hard_wrapped_prose_are_never_taken_for_furniture():
    text = (
        "Mobil Corp said it will pay a dividend of 50 cts a\n"
        "share.\n"
        "Holders who subscribe between January 1 and March 31 get one\n"
        "share on a post-split basis.\n"
        "related\n"
        "costs were not disclosed.\n"
        "(C) - Sales made on exporters' own account."
    )
    assert clean_text(text) == text


def lost_lines(original: str) -> list[str]:
    """Lines of `original` missing from its cleaned text (ignoring spacing and invisible characters)."""
    kept = set(clean_text(original).split("\n"))
    lines = (" ".join(line.replace("\u200b", "").split()) for line in original.split("\n"))
    return [line for line in lines if line and line not in kept]


def test_cleaning_keeps_every_line_of_real_news():
    ntrex = EVAL / "ntrex_az_ru_en_docs.jsonl"
    reuters = EVAL / "reuters21578_en_news.jsonl"
    if not ntrex.exists() or not reuters.exists():
        pytest.skip(f"evaluation data not found in {EVAL}")
    for line in ntrex.open(encoding="utf-8"):
        record = json.loads(line)
        for lang in ("az", "ru", "en"):
            assert lost_lines(record[lang]) == [], record["doc_id"]
    with reuters.open(encoding="utf-8") as fh:
        for _, line in zip(range(3000), fh, strict=False):
            record = json.loads(line)
            assert lost_lines(record.get("text") or "") == [], record["newid"]


# Title and date ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, title",
    [
        ("\n\nBaşlıq burada\n\nMətn.", "Başlıq burada"),
        ("date 2023-06 Azərbaycan və Özbəkistan görüşüb.\n\nMətn.", "Azərbaycan və Özbəkistan görüşüb"),
        ("# Markdown headline\n\nBody.", "Markdown headline"),
        ("26 September 2023, 14:05\nReal headline\n\nBody.", "Real headline"),
        ("Is this a question?\nBody.", "Is this a question?"),
        ("12345\n\n---", "fallback-stem"),
    ],
)
def test_title_is_the_first_meaningful_line(text, title):
    assert find_title(text, fallback="fallback-stem") == title


@pytest.mark.parametrize(
    "text, date",
    [
        ("date 2023-06 Headline.", "2023-06"),
        ("Date: 2021-09-24\nHeadline", "2021-09-24"),
        ("Headline\nBAKU, 26 September 2023 — The minister said.", "2023-09-26"),
        ("Headline\nBaku, September 26, 2023 (Reuters) - text", "2023-09-26"),
        ("Заголовок\nМОСКВА, 24 сентября 2021 г. — Министр заявил.", "2021-09-24"),
        ("Заголовок\nБАКУ, 25 сен 2021 — Sputnik.", "2021-09-25"),
        ("Başlıq\nBakı, 26 sentyabr 2023-cü il. Nazir bildirib.", "2023-09-26"),
        ("Başlıq\n2023-cü ilin iyunun 14-də Bakıda görüş keçirilib.", "2023-06-14"),
        ("Başlıq\n14.06.2023\nMətn.", "2023-06-14"),
        ("Headline\nJune 2023\nText.", "2023-06"),
        ("Headline\n" + "Body sentence.\n" * 8 + "Published 14 June 2023", "2023-06-14"),
        # A short line in the middle of the body names an event.
        ("Headline\n" + "Body.\n" * 6 + "Signed on 15 June 2019\n" + "Body.\n" * 6, None),
        # No year: never guessed.
        ("Заголовок\nБАКУ, 25 сен — Sputnik. Министр 24 сентября встретился с коллегой.", None),
        ("Başlıq\nBildirilib ki, iyunun 14-də görüş keçirilib.", None),
        ("Headline\nOn September 26 the minister called.", None),
        # Impossible dates are not dates.
        ("Headline\n31.02.2023", None),
        ("Headline\nNo date in this text at all.", None),
    ],
)
def test_date_as_precise_as_the_text_states(text, date):
    assert find_date(text) == date


def test_a_date_deep_inside_the_body_is_an_event_not_the_document_date():
    filler = "The minister spoke at length about the situation in the region and many other things. " * 3
    text = f"Headline\n\n{filler}It recalled the statement of November 10, 2020.\n\n" + "More text.\n" * 6
    assert find_date(text) is None


# Loading ----------------------------------------------------------------------------------------------------


def test_load_document_of_html_uses_its_metadata(tmp_path):
    page = (
        '<html><head><meta property="article:published_time" content="2023-06-14T10:00:00+04:00">'
        "<title>Görüş keçirilib</title></head><body><nav>Ana səhifə</nav><article>"
        "<h1>Azərbaycan və Özbəkistan arasında siyasi məsləhətləşmələr keçirilib</h1>"
        "<p>Bildirilib ki, iyunun 14-də Azərbaycan və Özbəkistan Xarici İşlər nazirlikləri arasında siyasi "
        "məsləhətləşmələr keçirilib. Nümayəndə heyətlərinə xarici işlər nazirinin müavini Xələf Xələfov "
        "rəhbərlik edib.</p></article></body></html>"
    )
    doc = load_document(write(tmp_path, "news/2023/page.html", page), tmp_path, LIMIT)
    assert doc.source == "news/2023/page.html"
    assert doc.doc_id == doc_id_for("news/2023/page.html")
    assert doc.title == "Azərbaycan və Özbəkistan arasında siyasi məsləhətləşmələr keçirilib"
    assert doc.date == "2023-06-14"
    assert doc.lang == "az"


def test_doc_id_depends_on_the_path_not_the_content(tmp_path):
    first = load_document(write(tmp_path, "a.txt", "Birinci mətn burada yazılıb."), tmp_path, LIMIT)
    second = load_document(write(tmp_path, "a.txt", "Tamamilə başqa mətn."), tmp_path, LIMIT)
    assert first.doc_id == second.doc_id and first.content_hash != second.content_hash


def test_load_document_skips_a_file_with_only_boilerplate(tmp_path):
    with pytest.raises(DocumentSkipped, match="no article text"):
        load_document(write(tmp_path, "x.txt", "Новости\nПодписывайтесь на Sputnik в Дзен\n"), tmp_path, LIMIT)


def test_load_document_passes_on_reader_skips(tmp_path):
    with pytest.raises(DocumentSkipped, match="file is empty"):
        load_document(write(tmp_path, "empty.txt", b""), tmp_path, LIMIT)


# Discovery --------------------------------------------------------------------------------------------------


def test_discover_recurses_sorts_and_skips_hidden_and_foreign_files(tmp_path):
    for name in (
        "b.txt",
        "a/z.md",
        "a/b/c.HTML",
        "A.TXT",
        ".hidden.txt",
        ".git/x.txt",
        "a/.cache/y.txt",
        "notes.xlsx",
        "~$draft.docx",
        "a/report.pdf",
    ):
        write(tmp_path, name, "x")
    found = [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path, EXTENSIONS)]
    assert found == ["A.TXT", "a/b/c.HTML", "a/report.pdf", "a/z.md", "b.txt"]


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_discover_follows_links_without_looping(tmp_path):
    outside = tmp_path / "outside"
    write(outside, "linked.txt", "Linked file text.")
    root = tmp_path / "corpus"
    write(root, "sub/own.txt", "Own text.")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "file_link.txt").symlink_to(outside / "linked.txt")
    (root / "ext").symlink_to(outside, target_is_directory=True)
    (root / "broken.txt").symlink_to(tmp_path / "missing.txt")
    found = [p.relative_to(root).as_posix() for p in discover(root, EXTENSIONS)]
    assert found == ["broken.txt", "ext/linked.txt", "file_link.txt", "sub/own.txt"]
    with pytest.raises(DocumentSkipped, match="symbolic link"):
        load_document(root / "broken.txt", root, LIMIT)


def test_discover_of_the_seeds():
    assert [p.name for p in discover(SEEDS, EXTENSIONS)] == sorted(SEED_FACTS)


# Language ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, lang",
    [
        ("Blinken İlham Əliyevə hansı tarixdə zəng edib?", "az"),
        ("Bayramov harada görüşüb?", "az"),
        ("Nazir müavini kimdir?", "az"),
        ("Bayramov Kazakbayev ilə görüşdü mü?", "az"),
        ("Qarabağda nə baş verib?", "az"),
        ("С каким министром Кыргызстана встретился Байрамов?", "ru"),
        ("Что сказал Блинкен?", "ru"),
        ("Когда?", "ru"),
        ("What did Uzbekistan say about territorial integrity?", "en"),
        ("What did Blinken tell Əliyev?", "en"),
        ("Where did Bayramov meet Maurer?", "en"),
    ],
)
def test_language_of_short_questions(question, lang):
    assert detect_language(question) == lang


@pytest.mark.parametrize(
    "text, lang",
    [
        (
            "Türkiye ile Azerbaycan arasındaki ilişkiler hızla gelişiyor ve iki ülke yeni anlaşmalar imzalıyor.",
            "tr",
        ),
        ("Україна є державою у Східній Європі. Столиця країни місто Київ.", "uk"),
        ("България е държава в Югоизточна Европа. Столицата на страната е град София.", "bg"),
        ("Die Minister trafen sich am Montag in Baku, um über neue Verkehrsverbindungen zu sprechen.", "de"),
        ("", "en"),
        ("12345 !!!", "en"),
    ],
)
def test_language_of_other_texts(text, lang):
    assert detect_language(text) == lang


def test_language_of_ntrex_articles_and_titles():
    path = EVAL / "ntrex_az_ru_en_docs.jsonl"
    if not path.exists():
        pytest.skip(f"evaluation data not found at {path}")
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    for record in records:
        for lang in ("az", "ru", "en"):
            assert detect_language(record[lang]) == lang, record[lang][:80]
            assert detect_language(record[f"title_{lang}"]) == lang, record[f"title_{lang}"]


def test_azerbaijani_sentences_never_come_out_as_turkish():
    path = EVAL / "sib200_flores_az_ru_en.jsonl"
    if not path.exists():
        pytest.skip(f"evaluation data not found at {path}")
    sentences = [json.loads(line)["az"] for line in path.open(encoding="utf-8")]
    wrong = [s for s in sentences if detect_language(s) != "az"]
    assert wrong == []
