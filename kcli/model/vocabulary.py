"""The string side of Keras' StringLookup and TextVectorization, in plain Python (no TF, no torch).

Keras computes these with TensorFlow ops, which kcli does not use: the data stage calls these
functions on the train split's strings (adapt) and on every split's (encode), and the model's
module then sees integer ids only. What each function reproduces:

- `standardize`: `tf.strings.lower` (ASCII letters only: TF lowers bytes when no encoding is
  given, as Keras calls it) and Keras' punctuation regex, the 32 ASCII punctuation characters.
- `split_text`: `tf.strings.split` (runs of ASCII whitespace) or `unicode_split` (code points).
- `ngrams`: `tf.strings.ngrams` with " " as separator: every width's n-grams in turn, none for a
  sample shorter than the width.
- `adapt_vocabulary`: IndexLookup's adapt: counts of every token, the mask and OOV tokens
  removed, sorted by count (high first), ties by the token (high first, as numpy's lexsort
  reversed), cut to `max_tokens` less the special tokens; tf-idf's
  `log(1 + documents / (1 + document frequency))`, the OOV slots given the mean weight.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

# Keras' regex is exactly string.punctuation (ASCII); RE2 and Python's re agree on it.
_PUNCTUATION = re.compile("[" + re.escape(string.punctuation) + "]")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ASCII_SPACE = re.compile(r"[ \t\n\v\f\r]+")


class OutOfVocabulary(ValueError):
    """A token with no index: num_oov_indices is 0 (Keras raises in the layer's call)."""

    def __init__(self, sample: int, token: str) -> None:
        super().__init__(f"sample {sample}: '{token}' is not in the vocabulary")
        self.sample = sample
        self.token = token


def standardize(text: str, how: str | None) -> str:
    """TextVectorization's `standardize` step."""
    if how in ("lower", "lower_and_strip_punctuation"):
        text = text.translate(_ASCII_LOWER)
    if how in ("strip_punctuation", "lower_and_strip_punctuation"):
        text = _PUNCTUATION.sub("", text)
    return text


def split_text(text: str, how: str | None) -> list[str]:
    """TextVectorization's `split` step: whitespace, character, or None (the whole string)."""
    if how == "whitespace":
        return [token for token in _ASCII_SPACE.split(text) if token]
    if how == "character":
        return list(text)
    return [text]


def ngrams(tokens: list[str], widths: Sequence[int] | None) -> list[str]:
    """The n-grams of each width in `widths`, in order, joined by a space (None: the tokens)."""
    if widths is None:
        return tokens
    out: list[str] = []
    for width in widths:
        out += [" ".join(tokens[i : i + width]) for i in range(len(tokens) - width + 1)]
    return out


def adapt_vocabulary(
    documents: Iterable[list[str]],
    *,
    specials: list[str],
    removed: Sequence[str | None],
    max_tokens: int | None,
    tf_idf: bool,
) -> tuple[list[str], list[float] | None]:
    """(vocabulary with the special tokens first, idf weights or None) from tokenized samples.

    `specials` are the mask/OOV entries that open the vocabulary; `removed` the tokens never
    learned (the mask and OOV tokens, as Keras removes them from its counts)."""
    counts: Counter[str] = Counter()
    document_counts: Counter[str] = Counter()
    n_documents = 0
    for tokens in documents:
        counts.update(tokens)
        document_counts.update(set(tokens))
        n_documents += 1
    for token in removed:
        if token is not None:
            counts.pop(token, None)
    # Count high to low, then the token itself high to low (Keras: lexsort(...)[::-1]).
    learned = sorted(counts, key=lambda token: (counts[token], token), reverse=True)
    if max_tokens:
        learned = learned[: max(max_tokens - len(specials), 0)]
    if not tf_idf:
        return specials + learned, None
    weights = [math.log(1 + n_documents / (1 + document_counts[t])) for t in learned]
    mean = sum(weights) / len(weights) if weights else 0.0
    return specials + learned, [mean] * len(specials) + weights


def lookup_table(vocabulary: list[str], start: int) -> dict[str, int]:
    """Learned token -> index; the special tokens before `start` are not looked up (Keras'
    table holds the learned tokens only: an input equal to the OOV token is out of vocabulary)."""
    return {token: index for index, token in enumerate(vocabulary) if index >= start}


def token_ids(
    samples: Iterable[list[str]],
    table: dict[str, int],
    *,
    mask_token: str | None,
    mask_id: int,
    oov_id: int | None,
) -> list[list[int]]:
    """Each sample's tokens as ids: the mask token -> `mask_id`, an unknown token -> `oov_id`
    (None: an OutOfVocabulary error, Keras' behaviour with num_oov_indices=0)."""
    out = []
    for number, tokens in enumerate(samples):
        ids = []
        for token in tokens:
            if mask_token is not None and token == mask_token:
                ids.append(mask_id)
                continue
            index = table.get(token, oov_id)
            if index is None:
                raise OutOfVocabulary(number, token)
            ids.append(index)
        out.append(ids)
    return out
