"""Model builders and text corpora shared by tests (and by the equivalence benchmark).

Builders take a pytest ``tmp_path_factory`` (anything with ``mktemp(name)``) and cache their
result per session, so any test module can do::

    from tests.model_fixtures import tiny_model_path
    def test_x(tmp_path_factory):
        path = tiny_model_path(tmp_path_factory)

>>> texts = varied_texts()
>>> len(texts) >= 500, "" in texts
(True, True)
"""

from __future__ import annotations

import os
import random
from typing import Protocol

_CACHE: dict[tuple[str, int], str] = {}


class TempDirFactory(Protocol):
    """What the builders need from pytest's ``tmp_path_factory``."""

    def mktemp(self, basename: str, numbered: bool = True) -> "os.PathLike[str]": ...


def tiny_model_path(tmp_path_factory: TempDirFactory, dim: int = 32) -> str:
    """Builds (once per session and ``dim``) the tiny test SavedModel and returns its path."""
    key = ("tiny", dim)
    if key not in _CACHE:
        from transforms.models.tiny import build_tiny_text_model

        _CACHE[key] = build_tiny_text_model(str(tmp_path_factory.mktemp(f"tiny_model_{dim}")), dim=dim)
    return _CACHE[key]


def minilm_model_path(tmp_path_factory: TempDirFactory) -> str:
    """Builds (once per session) the all-MiniLM-L6-v2 SavedModel and returns its path.

    When ``EPOXY_MINILM_DIR`` is set, the model is built (or found up to date) there instead,
    which lets repeated runs reuse one build.
    """
    key = ("minilm", 384)
    if key not in _CACHE:
        from transforms.models.build_minilm import build_minilm

        out_dir = os.environ.get("EPOXY_MINILM_DIR") or os.path.join(str(tmp_path_factory.mktemp("minilm")), "model")
        _CACHE[key] = build_minilm(out_dir)
    return _CACHE[key]


_EDGE_CASES = [
    "",
    " ",
    "\t\n\r",
    "Hello, world!",
    "HELLO WORLD",
    "Café au lait, naïve résumé, façade, Ångström, São Paulo, Zürich.",
    "Crème brûlée à la carte — déjà vu.",
    "İstanbul ıspanak ŞEHİR",
    "ﬁnance ﬂow oﬃce",
    "ＦＵＬＬ ｗｉｄｔｈ ｔｅｘｔ １２３",
    "x² + y³ = z⁴, ½ ¼ ¾",
    "😀😃😄 emoji only 🎉🔥👍🏽",
    "👨‍👩‍👧‍👦 family ZWJ sequence",
    "I ❤️ NY ☕ ♻️",
    "我爱自然语言处理。",
    "東京は日本の首都です。",
    "한국어 문장입니다.",
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "mixed 中文 and English 和日本語",
    "control\x00chars\x01here\x07and\x1bthere",
    "zero\u200bwidth\u200cjoiner\u200dand\ufeffBOM",
    "soft\u00adhyphen and non\u00a0breaking space",
    "line\u2028separator\u2029paragraph",
    "replacement \ufffd char",
    "private \ue000 use",
    "https://www.example.com/path?query=1&b=2#frag",
    "Check out http://bit.ly/3xYz and www.youtube.com/watch?v=dQw4w9WgXcQ !!!",
    "email me at someone@example.org",
    "$100 + 50% = ??? <tag> {json: [1,2]} a|b ~tilde ^caret `tick`",
    "...!!!???,,,;;;",
    "don't can't won't it's y'all",
    "C++ and C# and F# are languages",
    "2024-06-01 12:34:56 UTC",
    "3.14159 2.71828 1e-10 -42",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a" * 150,
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "CamelCaseWordsWithoutSpaces",
    "snake_case_identifier_names",
    "#hashtag @mention",
    "tab\tseparated\tvalues",
    "new\nline\nseparated",
    "trailing spaces    ",
    "   leading spaces",
    "e\u0301 combining acute, n\u0303 combining tilde",
    "Ωmega ohm Ω and Kelvin K sign",
    "ß straße STRASSE",
    "[CLS] [SEP] [PAD] [UNK] [MASK] special token strings",
    "subscribe to my channel!!! check out my videos",
]

_WORDS = {
    "en": (
        "the of and to in is you that it he was for on are as with his they at be this from have or "
        "by one had not but what all were when we there can an your which their said if do will each "
        "about how up out them then she many some so these would other into has more her two like him "
        "see time could no make than first been its who now people my made over did down only way "
        "find use may water long little very after words called just where most know get through "
        "back much before go good new write our used me man too any day same right look think also "
        "around another came come work three word must because does part even place well such here "
        "take why things help put years different away again off went old number great tell men say "
        "small every found still between name should home big give air line set own under read last "
        "never us left end along while might next sound below saw something thought both few those "
        "always looked show large often together asked house world going want school important until "
        "form food keep children feet land side without boy once animals life enough took sometimes "
        "four head above kind began almost live page got earth need far hand high year mother light "
        "parts country father let night following picture being study second eyes soon times story "
        "boys since white days ever paper hard near sentence better best across during today others "
        "however sure means knew its try told young miles sun ways thing whole hear example heard "
        "several change answer room sea against top turned learn point city play toward five using "
        "himself usually money guitar music video song channel subscribe love beautiful amazing"
    ).split(),
    "fr": "le la les un une des est sont avec pour dans sur être avoir très été où déjà français élève".split(),
    "de": "der die das und ist nicht mit für auf über schön Mädchen Größe Straße Bücher grüßen".split(),
    "es": "el la los las es son con para en sobre niño señor año mañana corazón canción".split(),
    "zh": "我 你 他 是 的 了 在 有 不 这 中国 学习 语言 电脑 音乐".split(),
    "ja": "私 は です ます 日本 東京 音楽 ありがとう こんにちは".split(),
    "ru": "я ты он она это быть в на с по для не музыка видео".split(),
    "emoji": "😀 😂 ❤️ 👍 🎵 🔥 ✨ 🙏 💯 🤔".split(),
    "url": ["http://example.com", "https://t.co/AbC123", "www.site.org/page?id=7", "user@mail.com"],
    "punct": list("!?.,;:'\"()[]{}-_/\\&*%$#@+=<>|~^`"),
}


def varied_texts(n_random: int = 460, seed: int = 7) -> list[str]:
    """A deterministic corpus of >= 500 varied texts for tokenizer/encoder equivalence checks.

    The hand-written edge cases (empty, whitespace, accents, ligatures, full-width, emoji, CJK,
    RTL scripts, control and zero-width characters, URLs, special-token strings) come first,
    then ``n_random`` mixed texts of 1 to ~600 words (many beyond 256 wordpieces).

    Args:
        n_random: Number of generated mixed texts.
        seed: Seed of the generator.

    Returns:
        The texts.
    """
    rng = random.Random(seed)
    texts = list(_EDGE_CASES)
    pools = list(_WORDS)
    for index in range(n_random):
        if index % 10 == 0:
            length = rng.randint(200, 600)
        elif index % 3 == 0:
            length = rng.randint(1, 8)
        else:
            length = rng.randint(5, 60)
        weights = [20 if pool == "en" else 1 for pool in pools]
        words = []
        for _ in range(length):
            pool = rng.choices(pools, weights=weights)[0]
            word = rng.choice(_WORDS[pool])
            if rng.random() < 0.1:
                word = word.capitalize() if rng.random() < 0.5 else word.upper()
            words.append(word)
        separator = rng.choice([" ", " ", " ", "  ", "\n"])
        texts.append(separator.join(words))
    return texts
