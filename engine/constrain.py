"""Constrained decoding with llguidance: JSON schemas and grammars over Fireside's own tokenizer.

:class:`GrammarConstraint` implements :class:`engine.generate.LogitsConstraint`: before each token it asks
an ``llguidance.LLMatcher`` for the set of tokens that keep the output inside the grammar and sets every
other logit to -inf; after the token is sampled it advances the matcher, and reports completion once the
grammar can take nothing more. End-of-generation tokens (the tokenizer's ``eog_ids``) are allowed only
where the grammar accepts, so a reply never ends half-way through its JSON.

llguidance (https://github.com/guidance-ai/llguidance, the library llama.cpp's ``common/llguidance.cpp``
uses) needs the vocabulary as bytes: each token's :meth:`Tokenizer.token_bytes`, with the control tokens
(BOS, EOS, ``<|im_end|>``...) and user-defined tokens written like ``<...>`` marked special, as
``llguidance/llamacpp.py``'s ``lltokenizer_from_vocab`` marks them, so that grammar text never matches
them (a special token is written ``<[id]>`` or by its name in a Lark grammar). Building that tokenizer
costs about half a second for a 50k vocabulary; :func:`ll_tokenizer` caches it per :class:`Tokenizer`.

JSON output is compact with Python's separators (``", "`` between items, ``": "`` after keys, no other
whitespace): a small model given free whitespace can emit newlines forever. A schema may override that
with llguidance's ``"x-guidance"`` key (https://github.com/guidance-ai/llguidance/blob/main/docs/json_schema.md).
"""
from __future__ import annotations

import json
import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FiresideError

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

#: Options of llguidance's JSON compiler (``JsonCompileOptions``), before a schema's own ``x-guidance``.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

#: The grammar of ``response_format: {"type": "json_object"}``: any JSON object.
ANY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}

_TOKEN_TYPE_USER_DEFINED = 4


class ConstraintError(FiresideError, ValueError):
    """A schema or grammar llguidance refuses (unsupported keyword, invalid regex, contradictory bounds...);
    the message is llguidance's."""


class _VocabView:
    """What ``llguidance.TokenizerWrapper`` reads from a tokenizer: token bytes, special ids, and a call that
    tokenizes text without BOS and without parsing special tokens (used for llguidance's canonical forms)."""

    def __init__(self, tok: "Tokenizer"):
        self.eos_token_id = tok.eos_id if tok.eos_id is not None else min(tok.eog_ids, default=0)
        self.bos_token_id = tok.bos_id
        self.tokens = [tok.token_bytes(i) for i in range(tok.n_vocab)]
        self.special_token_ids = [
            i for i in range(tok.n_vocab)
            if tok.is_control(i) or (tok.token_type(i) == _TOKEN_TYPE_USER_DEFINED
                                     and self.tokens[i].startswith(b"<") and self.tokens[i].endswith(b">"))]
        self._tok = tok

    def __call__(self, text):
        if isinstance(text, bytes):  # TypeError tells TokenizerWrapper to pass str instead
            raise TypeError("text, not bytes")
        return self._tok.encode(text, add_special=False, parse_special=False)


_cache: "weakref.WeakKeyDictionary[Tokenizer, Any]" = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def ll_tokenizer(tok: "Tokenizer"):
    """The ``llguidance.LLTokenizer`` of ``tok`` (built once per tokenizer, then cached; thread-safe).
    Its end-of-sequence tokens are all of ``tok.eog_ids``."""
    import llguidance

    with _cache_lock:
        cached = _cache.get(tok)
        if cached is None:
            eos = sorted(tok.eog_ids) or [_VocabView(tok).eos_token_id]
            cached = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_VocabView(tok)), n_vocab=tok.n_vocab,
                                            eos_token=eos)
            _cache[tok] = cached
        return cached


#: Bounds given to numbers a schema leaves unbounded, so a sampled reply cannot run on digit after digit
#: (``0.11377256569842348849999...`` until max_tokens): at most 15 integral digits and 9 decimals, the
#: same idea as llama.cpp's ``common/json-schema-to-grammar.cpp`` (16 and 16). Values within them still
#: validate against the original schema.
NUMBER_LIMIT = 10 ** 15 - 1
DECIMAL_STEP = 1e-9
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples", "x-guidance"})


def bounded_numbers(schema: Any) -> Any:
    """A copy of ``schema`` where every ``number`` / ``integer`` subschema without bounds gets
    ``minimum`` / ``maximum`` of :data:`NUMBER_LIMIT` and (numbers without ``multipleOf``) a ``multipleOf`` of
    :data:`DECIMAL_STEP`; everything else is unchanged."""
    if isinstance(schema, list):
        return [bounded_numbers(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in _DATA_KEYWORDS else bounded_numbers(v)) for k, v in schema.items()}
    types = out.get("type")
    types = {types} if isinstance(types, str) else set(types) if isinstance(types, list) else set()
    if types & {"number", "integer"} and not types - {"number", "integer", "null"}:
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = -NUMBER_LIMIT
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = NUMBER_LIMIT
        if "number" in types and "multipleOf" not in out:
            out["multipleOf"] = DECIMAL_STEP
    return out


def json_schema_grammar(schema: dict[str, Any] | bool, *, bound_numbers: bool = True) -> str:
    """The llguidance grammar of JSON values that validate against ``schema`` (compact, see the module doc;
    unbounded numbers bounded by :func:`bounded_numbers` unless ``bound_numbers`` is False).

    Raises:
        ConstraintError: ``schema`` is not a JSON object / boolean or cannot be serialized.
    """
    import llguidance

    if not isinstance(schema, (dict, bool)):
        raise ConstraintError("a JSON schema must be an object (or true / false)")
    try:
        if bound_numbers and isinstance(schema, dict):
            schema = bounded_numbers(schema)
        return llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema), defaults=dict(JSON_OPTIONS))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConstraintError(f"invalid JSON schema: {exc}") from None


def lark_grammar(lark: str) -> str:
    """The llguidance grammar of a Lark grammar text (llguidance's dialect: ``%json {...}`` embeds a JSON
    schema, ``<[id]>`` names a special token; https://github.com/guidance-ai/llguidance/blob/main/docs/syntax.md)."""
    import llguidance

    return llguidance.LLMatcher.grammar_from_lark(lark)


def check_grammar(tok: "Tokenizer", grammar: str) -> None:
    """Raise :class:`ConstraintError` with llguidance's message if ``grammar`` is invalid (bad schema...)."""
    import llguidance

    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, ll_tokenizer(tok))
    if is_error:
        raise ConstraintError(messages[0] if messages else "invalid grammar")


class GrammarConstraint:
    """A :class:`~engine.generate.LogitsConstraint` for one generation (stateful: make a fresh one per request).

    Args:
        tok: the model's tokenizer (logits have ``tok.n_vocab`` entries).
        grammar: an llguidance grammar (:func:`json_schema_grammar`, :func:`lark_grammar`).

    Raises:
        ConstraintError: the grammar is invalid.
    """

    def __init__(self, tok: "Tokenizer", grammar: str):
        import llguidance

        self.n_vocab = tok.n_vocab
        self._eog = np.array(sorted(tok.eog_ids), dtype=np.int64)
        self._matcher = llguidance.LLMatcher(ll_tokenizer(tok), grammar, log_level=0)
        if self._matcher.is_error():
            raise ConstraintError(self._matcher.get_error())
        self._bits = np.zeros((tok.n_vocab + 31) // 32, dtype=np.int32)
        self.error: str | None = None  # set if the matcher failed mid-generation (should not happen)

    @classmethod
    def for_json_schema(cls, tok: "Tokenizer", schema: dict[str, Any] | bool) -> "GrammarConstraint":
        """A constraint to JSON that validates against ``schema``."""
        return cls(tok, json_schema_grammar(schema))

    def mask(self, logits: np.ndarray) -> None:
        """Set the logits of tokens the grammar forbids now to -inf (in place)."""
        if self.error is not None or self._matcher.is_error():
            allowed = np.zeros(self.n_vocab, dtype=bool)
            allowed[self._eog] = True  # a broken matcher allows nothing; end the reply rather than emit NaN
        else:
            self._matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
            allowed = np.unpackbits(self._bits.view(np.uint8), bitorder="little")[:self.n_vocab].view(bool)
        logits[:self.n_vocab][~allowed] = -np.inf
        logits[self.n_vocab:] = -np.inf

    def accept(self, token: int) -> bool:
        """Advance past ``token``; True once the grammar is complete (only an end token could follow)."""
        if not self._matcher.consume_token(int(token)):
            self.error = self._matcher.get_error() or f"token {token} was refused"
            return True
        return self._matcher.is_stopped()

    @property
    def is_accepting(self) -> bool:
        """Whether the output so far is a complete sentence of the grammar."""
        return self.error is None and self._matcher.is_accepting()
