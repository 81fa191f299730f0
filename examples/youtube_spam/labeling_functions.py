"""Labeling functions for YouTube comment spam (the Snorkel spam tutorial's LF set).

The first seven follow the Snorkel tutorial (and WRENCH's "youtube" task) exactly. The tutorial's
last three use spaCy's named-entity recogniser and TextBlob's sentiment scores; those packages
are not dependencies of epoxy-beam, so they are written here as small, honest stand-ins with the
same intent (a short comment that names a person; a strongly positive comment; a subjective,
opinionated comment), each marked as such.
"""

import re

from transforms import ABSTAIN, labeling_function

CLASS_NAMES = ("HAM", "SPAM")
HAM, SPAM = 0, 1


def _lower(x) -> str:
    return x["text"].lower()


@labeling_function()
def keyword_my(x):
    """Spam comments talk about 'my channel', 'my video', etc."""
    return SPAM if "my" in _lower(x) else ABSTAIN


@labeling_function()
def keyword_subscribe(x):
    """Spam comments ask users to subscribe to their channels."""
    return SPAM if "subscribe" in _lower(x) else ABSTAIN


@labeling_function()
def keyword_link(x):
    """Spam comments post links to other channels."""
    return SPAM if "http" in _lower(x) else ABSTAIN


@labeling_function()
def keyword_please(x):
    """Spam comments make requests rather than commenting."""
    return SPAM if any(word in _lower(x) for word in ("please", "plz")) else ABSTAIN


@labeling_function()
def keyword_song(x):
    """Ham comments actually talk about the video's content."""
    return HAM if "song" in _lower(x) else ABSTAIN


@labeling_function()
def regex_check_out(x):
    """Spam comments request users check other links."""
    return SPAM if re.search(r"check.*out", x["text"], flags=re.IGNORECASE) else ABSTAIN


@labeling_function()
def short_comment(x):
    """Ham comments are often short, such as 'cool video!'."""
    return HAM if len(x["text"].split()) < 5 else ABSTAIN


_NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{2,}\b")
_NOT_NAMES = frozenset(
    "I The This That Youtube YouTube Video Song Love Like Please Check Subscribe Hi Hey Lol "
    "Omg Wow Thanks Thank Great Nice Good Best Awesome Amazing Who What When Where Why How "
    "Just And But So You Your My Me We It Its Is Are Was Channel Music Facebook Google Free "
    "Click Share Visit Watch Follow Guys Hello".split()
)


@labeling_function()
def has_person_nlp(x):
    """Stand-in for spaCy NER: short comments that mention a person by name are ham.

    A capitalised word inside a sentence (after a lower-case word) that is not a common word
    counts as a name; "short" is under ten words.
    """
    text = x["text"]
    if len(text.split()) >= 10:
        return ABSTAIN
    names = [m.group(0) for m in _NAME.finditer(text) if m.group(0) not in _NOT_NAMES]
    return HAM if names else ABSTAIN


_POSITIVE = frozenset(
    "love loved loves lovely amazing awesome best beautiful perfect great excellent "
    "wonderful fantastic brilliant incredible favorite favourite".split()
)
_SUBJECTIVE = frozenset(
    "i think feel believe love like hate beautiful amazing awesome best worst great "
    "good bad nice cool favorite favourite wow omg sad happy funny".split()
)
_WORD = re.compile(r"[a-z']+")


@labeling_function()
def textblob_polarity(x):
    """Stand-in for TextBlob polarity > 0.9: strongly positive comments are ham.

    Strongly positive here: at least one positive word and no request, link or channel talk.
    """
    words = _WORD.findall(_lower(x))
    if not words or not _POSITIVE.intersection(words):
        return ABSTAIN
    if {"subscribe", "channel", "check", "http", "please", "plz"}.intersection(words):
        return ABSTAIN
    return HAM


@labeling_function()
def textblob_subjectivity(x):
    """Stand-in for TextBlob subjectivity >= 0.5: opinionated comments are ham.

    Opinionated here: at least a fifth of the words are opinion words.
    """
    words = _WORD.findall(_lower(x))
    if not words:
        return ABSTAIN
    share = sum(word in _SUBJECTIVE for word in words) / len(words)
    return HAM if share >= 0.2 else ABSTAIN


LFS = (
    keyword_my,
    keyword_subscribe,
    keyword_link,
    keyword_please,
    keyword_song,
    regex_check_out,
    short_comment,
    has_person_nlp,
    textblob_polarity,
    textblob_subjectivity,
)
