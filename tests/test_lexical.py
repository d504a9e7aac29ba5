from rag.lexical import LexicalIndex, name_terms, tokenize
from rag.text import fold_dotted_i


def test_azerbaijani_lowercasing_maps_dotted_and_dotless_i():
    assert tokenize("İLHAM")[0] == tokenize("ilham")[0] == "ilham"
    # "I" is the capital of dotless "ı" in Azerbaijani; both fold to the same term as plain "i".
    assert tokenize("IŞIQ")[0] == tokenize("ışıq")[0] == tokenize("isiq")[0] == "isiq"


def test_the_four_azerbaijani_i_fold_to_one_letter_and_nothing_else_changes():
    assert fold_dotted_i("İ I ı i") == "i i i i"
    assert fold_dotted_i("İLHAM".lower()) == "ilham"  # str.lower() leaves a combining dot after the i
    assert fold_dotted_i("Əliyev, Bakı, Москва") == "Əliyev, Baki, Москва"


def test_a_name_is_matched_by_its_terms_across_scripts_and_word_forms():
    assert name_terms("Özbəkistanın") & name_terms("Uzbekistan")
    assert name_terms("Байрамов") & name_terms("Bayramov встретился с министром")
    assert not name_terms("Bayramov") & name_terms("Blinken")
    assert name_terms("the") == frozenset()  # a stopword names nothing


def test_letters_fold_so_people_typing_without_diacritics_match():
    assert tokenize("Xələfov") == tokenize("Xelefov")
    assert tokenize("Özbəkistan") == tokenize("Ozbekistan")


def test_names_meet_across_scripts():
    assert tokenize("Байрамов") == tokenize("Bayramov")
    assert tokenize("Блинкен") == tokenize("Blinken")


def test_capitalised_names_get_a_consonant_key_shared_across_spellings():
    keys = {tokenize(name)[-1] for name in ("Özbəkistan", "Uzbekistan", "Узбекистана", "Özbəkistanın")}
    assert keys == {"~zpks"}
    assert {tokenize(n)[-1] for n in ("Xələfov", "Khalafov", "Халафов")} == {"~hlfv"}
    assert {tokenize(n)[-1] for n in ("Ceyhun", "Jeyhun", "Джейхун")} == {"~jhn"}
    assert not any(t.startswith("~") for t in tokenize("lowercase words only"))


def test_suffixed_word_forms_share_a_term():
    assert tokenize("Özbəkistanla")[0] == tokenize("Özbəkistanın")[0]
    assert tokenize("консультациях")[0] == tokenize("консультации")[0]
    assert tokenize("territorial")[0] == tokenize("territory")[0]


def test_numbers_are_kept_whole_and_stopwords_dropped():
    assert tokenize("the 2023 and 14") == ["2023", "14"]
    assert tokenize("и в və") == []


def test_bm25_ranks_the_passage_with_the_rare_terms_first():
    index = LexicalIndex.build(
        [
            "Azərbaycan və Özbəkistan arasında siyasi məsləhətləşmələr keçirilib.",
            "Blinken Əliyevə zəng edib.",
            "Байрамов встретился с Казакбаевым.",
        ]
    )
    scores = index.scores("Казакбаев Bayramov")
    assert scores.argmax() == 2
    assert index.scores("zzzz unknown").sum() == 0


def test_empty_index_scores_nothing(tmp_path):
    index = LexicalIndex.build([])
    assert index.scores("anything").size == 0
    index.save(tmp_path / "lex")
    assert LexicalIndex.load(tmp_path / "lex", 0).size == 0


def test_save_and_load_round_trip(tmp_path):
    texts = ["Baku news today", "Tashkent statement", "Bishkek meeting"]
    index = LexicalIndex.build(texts)
    index.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex", len(texts))
    assert (loaded.scores("Tashkent") == index.scores("Tashkent")).all()


def test_passages_without_a_single_term_still_index(tmp_path, make_assistant):
    """A corpus whose text holds no index term at all (only stopwords and punctuation) builds, loads and is
    searched; before the fix BM25 failed on the empty vocabulary ("max() arg is an empty sequence")."""
    index = LexicalIndex.build(["и в на", "— … —"])
    assert index.size == 2 and list(index.scores("Baku")) == [0.0, 0.0]
    index.save(tmp_path / "lex")
    assert list(LexicalIndex.load(tmp_path / "lex", 2).scores("на Baku")) == [0.0, 0.0]

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dashes.txt").write_text("— … —\n\n!!! ???\n", encoding="utf-8")
    assistant = make_assistant(corpus)
    assert assistant.build_index().passages >= 1
    assert [hit.source for hit in assistant.search("dashes and marks", k=1)] == ["dashes.txt"]
