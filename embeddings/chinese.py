"""Chinese descriptions for an English-only model: keep the themes we know, drop the noise.

The shipped model has no Chinese: a Chinese sentence and its English translation score about
0.29 cosine, so raw Chinese text mostly adds noise. Until a deployment points at a multilingual
model, the theme words the product knows (SDG names, education terms, countries, languages,
Taiwan's counties), in Traditional and Simplified forms, are mapped to their English labels
and only those reach the model. The original description stays in the profile untouched.
"""

from __future__ import annotations

import re
from functools import cache

import opencc
import pycountry

from data.taxonomies import (
    LANGUAGE_NAMES_ZH,
    LEVEL_LABELS,
    MODE_LABELS,
    SDGS,
    TAIWAN_COUNTIES,
    country_name,
    country_name_zh,
    language_name,
)

# A description counts as Chinese when at least this share of its words are Chinese, reckoning
# a Chinese word as two characters and counting each Latin (or other alphabetic) word as one.
CHINESE_SHARE = 0.5
CJK_CHARS_PER_WORD = 2

# Traditional Chinese (as written in Taiwan) -> English. Simplified forms are derived with OpenCC;
# mainland wordings that differ from Taiwan's are listed as entries of their own.
EDUCATION_TERMS: dict[str, str] = {
    "環境教育": "environmental education",
    "海洋教育": "ocean education",
    "閱讀": "reading",
    "程式設計": "coding",
    "程式": "coding",
    "編程": "coding",
    "程序設計": "coding",
    "英語": "English",
    "英文": "English",
    "雙語": "bilingual",
    "科學": "science",
    "數學": "math",
    "藝術": "art",
    "美術": "fine art",
    "音樂": "music",
    "體育": "sport",
    "運動": "sports",
    "文化": "culture",
    "多元文化": "multicultural education",
    "跨文化": "intercultural learning",
    "國際教育": "international education",
    "國際交流": "international exchange",
    "食農教育": "food and farming education",
    "原住民": "indigenous",
    "原住民族": "indigenous peoples",
    "阿美族": "Amis indigenous people",
    "泰雅族": "Atayal indigenous people",
    "排灣族": "Paiwan indigenous people",
    "布農族": "Bunun indigenous people",
    "卑南族": "Puyuma indigenous people",
    "魯凱族": "Rukai indigenous people",
    "鄒族": "Tsou indigenous people",
    "賽夏族": "Saisiyat indigenous people",
    "達悟族": "Tao indigenous people",
    "雅美族": "Tao indigenous people",
    "邵族": "Thao indigenous people",
    "噶瑪蘭族": "Kavalan indigenous people",
    "太魯閣族": "Truku indigenous people",
    "撒奇萊雅族": "Sakizaya indigenous people",
    "賽德克族": "Seediq indigenous people",
    "永續": "sustainability",
    "可持續": "sustainability",
    "永續發展": "sustainable development",
    "可持續發展": "sustainable development",
    "氣候變遷": "climate change",
    "氣候變化": "climate change",
    "能源": "energy",
    "再生能源": "renewable energy",
    "太陽能": "solar energy",
    "減碳": "carbon reduction",
    "淨零": "net zero",
    "機器人": "robotics",
    "人工智慧": "artificial intelligence",
    "人工智能": "artificial intelligence",
    "資訊": "information technology",
    "科技": "technology",
    "數位": "digital",
    "創客": "maker education",
    "新住民": "new immigrants",
    "偏鄉": "rural",
    "偏遠": "remote area",
    "閩南語": "Taiwanese Hokkien",
    "臺語": "Taiwanese Hokkien",
    "台語": "Taiwanese Hokkien",
    "客家": "Hakka",
    "客語": "Hakka language",
    "母語": "mother tongue",
    "茶": "tea",
    "社區": "community",
    "環保": "environmental protection",
    "回收": "recycling",
    "減塑": "plastic reduction",
    "淨灘": "beach clean-up",
    "生態": "ecology",
    "自然": "nature",
    "海洋": "ocean",
    "森林": "forest",
    "濕地": "wetland",
    "珊瑚": "coral",
    "鳥類": "birds",
    "昆蟲": "insects",
    "農業": "agriculture",
    "稻米": "rice",
    "咖啡": "coffee",
    "漁業": "fishing",
    "水資源": "water resources",
    "防災": "disaster preparedness",
    "健康": "health",
    "營養": "nutrition",
    "性別": "gender",
    "歷史": "history",
    "地理": "geography",
    "天文": "astronomy",
    "生物": "biology",
    "物理": "physics",
    "化學": "chemistry",
    "書法": "calligraphy",
    "舞蹈": "dance",
    "戲劇": "drama",
    "合唱": "choir",
    "管樂": "wind band",
    "國樂": "Chinese orchestra",
    "籃球": "basketball",
    "棒球": "baseball",
    "足球": "football",
    "游泳": "swimming",
    "田徑": "athletics",
    "烹飪": "cooking",
    "美食": "food",
    "木工": "woodwork",
    "手作": "handicraft",
    "設計": "design",
    "創新": "innovation",
    "創業": "entrepreneurship",
    "觀光": "tourism",
    "餐旅": "hospitality",
    "技職": "vocational education",
    "實驗教育": "experimental education",
    "專題": "project-based learning",
    "探究": "inquiry learning",
    "服務學習": "service learning",
    "志工": "volunteering",
    "領導": "leadership",
    "全球公民": "global citizenship",
    "世界公民": "global citizenship",
    "節慶": "festivals",
    "傳統": "tradition",
    "交換學生": "student exchange",
    "寄宿家庭": "homestay",
    "參訪": "study visit",
    "教育旅行": "educational travel",
    "姊妹校": "sister school",
    "姐妹校": "sister school",
    "視訊": "video call",
    "國民小學": "primary school",
    "小學": "primary school",
    "國民中學": "junior high school",
    "初中": "junior high school",
    "高級中學": "senior high school",
    "中學": "secondary school",
    "職業學校": "vocational high school",
    "幼兒園": "kindergarten",
    # Mainland names of New Southbound countries that differ from Taiwan's.
    "印度尼西亞": "Indonesia",
    "老撾": "Laos",
    "文萊": "Brunei",
    "澳大利亞": "Australia",
    "新西蘭": "New Zealand",
    "孟加拉國": "Bangladesh",
    "台灣": "Taiwan",
    "東南亞": "Southeast Asia",
    "南亞": "South Asia",
    "新南向": "New Southbound Policy",
}

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_OTHER_WORD = re.compile(rf"[^\W\d_{_CJK}]+")
# Latin-script phrases kept from a Chinese description (STEAM, SDGs, Minecraft Education).
_LATIN_PHRASE = re.compile(r"[A-Za-z][A-Za-z0-9&+'-]*(?:[ .][A-Za-z0-9][A-Za-z0-9&+'-]*)*")


def is_chinese(text: str) -> bool:
    """True when the text is written mainly in Chinese (see CHINESE_SHARE)."""
    chinese_words = len(_CJK_CHAR.findall(text)) / CJK_CHARS_PER_WORD
    if chinese_words == 0:
        return False
    return chinese_words / (chinese_words + len(_OTHER_WORD.findall(text))) >= CHINESE_SHARE


@cache
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@cache
def theme_terms() -> dict[str, str]:
    """Every Chinese spelling the product knows -> its English label, longest first."""
    terms: dict[str, str] = {}
    for code in (country.alpha_2 for country in pycountry.countries):
        if (zh := country_name_zh(code)) != country_name(code):
            terms[zh] = country_name(code)
            terms[zh.replace("臺", "台")] = country_name(code)
    for code, zh in LANGUAGE_NAMES_ZH.items():
        terms[zh] = language_name(code)
    for county_zh, county_en, _ in TAIWAN_COUNTIES.values():
        terms[county_zh] = county_en
        terms[county_zh.replace("臺", "台")] = county_en
    for english, zh in (*LEVEL_LABELS.values(), *MODE_LABELS.values()):
        terms[zh] = english
    terms.update(EDUCATION_TERMS)
    for english, zh, aliases in SDGS.values():
        for term in (zh, *aliases):
            terms[term] = english
    simplified = _to_simplified()
    for term, english in list(terms.items()):
        terms.setdefault(simplified.convert(term), english)
    return dict(sorted(terms.items(), key=lambda kv: (-len(kv[0]), kv[0])))


@cache
def _term_pattern() -> re.Pattern[str]:
    # Python tries alternatives in order, so longest-first gives 海洋教育 before 海洋.
    return re.compile("|".join(re.escape(term) for term in theme_terms()))


def translate_terms(text: str) -> tuple[str, list[str]]:
    """English rendering of a text for the English-only model, and the themes recognised in it.

    Mainly-Chinese text becomes the English labels of the known terms found in it, in order of
    first appearance, followed by any Latin-script phrases it contains. Other text keeps its words,
    with known Chinese terms replaced by their English labels and other Chinese dropped.
    """
    terms = theme_terms()
    found: list[str] = []
    for match in _term_pattern().finditer(text):
        if (label := terms[match.group()]) not in found:
            found.append(label)
    if is_chinese(text):
        latin = [phrase for phrase in _LATIN_PHRASE.findall(text) if phrase not in found]
        return ", ".join(dict.fromkeys([*found, *latin])), found
    replaced = _term_pattern().sub(lambda m: f" {terms[m.group()]} ", text)
    cleaned = _CJK_RUN.sub(" ", replaced)
    return re.sub(r"[ \t]+", " ", cleaned).strip(), found
