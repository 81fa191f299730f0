"""In-graph BERT tokenisation that mimics Hugging Face's ``BertTokenizer`` (uncased).

``tensorflow_text.BertTokenizer(lower_case=True)`` folds case with NFKC, which differs from
Hugging Face on compatibility characters (ligatures, full-width forms, superscripts...). This
module rebuilds Hugging Face's *basic* tokenizer from RE2 regular expressions and
``tensorflow_text.normalize_utf8`` so that the whole pipeline lives in the TF graph and is
saved with the model:

1. ``\\t\\n\\r`` and every Unicode space, line and paragraph separator become an ASCII space,
2. control/format/private-use/surrogate characters and U+FFFD are dropped,
3. lower-case (full Unicode), NFD, drop non-spacing marks (accents),
4. isolate punctuation (ASCII symbol ranges and Unicode ``P*``) and CJK ideographs,
5. split on spaces, then WordPiece with ``[UNK]`` for out-of-vocabulary words.

Like Hugging Face, the literal strings ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]`` and ``[MASK]``
in raw text are read as those special tokens: before normalisation each is replaced by a
lower-case letters-only sentinel word that survives every step, and mapped back to the special
token before WordPiece. The result is cut to ``max_seq_length - 2`` pieces and framed by
``[CLS]``/``[SEP]``.
"""

from __future__ import annotations

import re
from typing import Sequence

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the normalisation/wordpiece ops)

_DROPPED_CHARS = r"[\p{Cc}\p{Cf}\p{Co}\p{Cs}\x{FFFD}]"
_SPACE_CHARS = r"[\t\n\r\p{Zs}\p{Zl}\p{Zp}]"
_ACCENT_CHARS = r"\p{Mn}"
# Hugging Face treats the ASCII symbol ranges 33-47, 58-64, 91-96, 123-126 as punctuation too.
_PUNCTUATION_CHARS = r"[!-/:-@\[-`{-~\p{P}]"
_CJK_CHARS = (
    r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
    r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]"
)
MAX_BYTES_PER_WORD = 100
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")


def _sentinel(special_token: str) -> str:
    return f"qzxspecialtoken{special_token.strip('[]').lower()}qzx"


def read_vocab(vocab_path: str) -> list[str]:
    """Reads a BERT ``vocab.txt`` (one token per line, id = line number).

    Args:
        vocab_path: Path of the vocabulary file.

    Returns:
        The tokens in id order.
    """
    with tf.io.gfile.GFile(vocab_path, "r") as handle:
        return [line.rstrip("\n") for line in handle]


def basic_tokenize(texts: tf.Tensor) -> tf.RaggedTensor:
    """Splits raw strings into normalised words the way Hugging Face's basic tokenizer does.

    Args:
        texts: ``tf.string [batch]``.

    Returns:
        ``tf.string`` ragged ``[batch, (words)]``; special-token strings stay whole.
    """
    for special in SPECIAL_TOKENS:
        texts = tf.strings.regex_replace(texts, re.escape(special), f" {_sentinel(special)} ")
    texts = tf.strings.regex_replace(texts, _SPACE_CHARS, " ")
    texts = tf.strings.regex_replace(texts, _DROPPED_CHARS, "")
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tensorflow_text.normalize_utf8(texts, "NFD")
    texts = tf.strings.regex_replace(texts, _ACCENT_CHARS, "")
    texts = tf.strings.regex_replace(texts, f"({_PUNCTUATION_CHARS}|{_CJK_CHARS})", r" \1 ")
    words = tf.strings.split(texts)
    return tf.ragged.map_flat_values(_restore_special_tokens, words)


def _restore_special_tokens(words: tf.Tensor) -> tf.Tensor:
    for special in SPECIAL_TOKENS:
        words = tf.where(tf.equal(words, _sentinel(special)), special, words)
    return words


class WordPieceEncoder(tf.Module):
    """Raw strings to padded BERT input ids, entirely in TF ops (saved with the model).

    Args:
        vocab: Tokens in id order; must contain ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[PAD]``.
        max_seq_length: Maximum number of ids per text, ``[CLS]`` and ``[SEP]`` included.
    """

    def __init__(self, vocab: Sequence[str], max_seq_length: int) -> None:
        super().__init__(name="wordpiece_encoder")
        for special in ("[UNK]", "[CLS]", "[SEP]", "[PAD]"):
            if special not in vocab:
                raise ValueError(
                    f"vocabulary lacks the special token {special!r}; a BERT vocab.txt must "
                    "contain [UNK], [CLS], [SEP] and [PAD]: pass the model's own vocab.txt"
                )
        if max_seq_length < 3:
            raise ValueError(
                f"max_seq_length={max_seq_length} leaves no room for text between [CLS] and "
                "[SEP]; use a value >= 3 (all-MiniLM-L6-v2 uses 256)"
            )
        self.max_seq_length = max_seq_length
        self.cls_id = vocab.index("[CLS]")
        self.sep_id = vocab.index("[SEP]")
        self.pad_id = vocab.index("[PAD]")
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                keys=tf.constant(list(vocab)),
                values=tf.range(len(vocab), dtype=tf.int64),
            ),
            default_value=vocab.index("[UNK]"),
        )
        self.table = table  # tracked so that the SavedModel stores the vocabulary table
        self.wordpiece = tensorflow_text.WordpieceTokenizer(
            table,
            suffix_indicator="##",
            max_bytes_per_word=MAX_BYTES_PER_WORD,
            token_out_type=tf.int64,
            unknown_token="[UNK]",
        )

    def __call__(self, texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Tokenises a batch.

        Args:
            texts: ``tf.string [batch]``.

        Returns:
            ``(ids, lengths)``: ``int32 [batch, max_len]`` ids padded with ``[PAD]`` to the
            longest text of the batch (dynamic padding), and ``int32 [batch]`` real lengths.
        """
        words = basic_tokenize(texts)
        pieces = self.wordpiece.tokenize(words).merge_dims(1, 2)
        pieces = pieces[:, : self.max_seq_length - 2]
        rows = pieces.nrows()
        cls = tf.fill([rows, 1], tf.constant(self.cls_id, tf.int64))
        sep = tf.fill([rows, 1], tf.constant(self.sep_id, tf.int64))
        framed = tf.concat([cls, pieces, sep], axis=1)
        ids = tf.cast(framed.to_tensor(default_value=self.pad_id), tf.int32)
        lengths = tf.cast(framed.row_lengths(), tf.int32)
        return ids, lengths
