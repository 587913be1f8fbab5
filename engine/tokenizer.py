"""Tokenizer built from a GGUF file's ``tokenizer.ggml.*`` metadata alone, on the ``tokenizers`` library.

It reproduces llama.cpp's tokenizer (``src/llama-vocab.cpp``), which is the behavioural reference:

* ``tokenizer.ggml.model = "gpt2"``: byte-level BPE. The text is split by the pre-tokenizer regexes that
  llama.cpp uses for ``tokenizer.ggml.pre`` (applied one after the other, like ``unicode_regex_split``),
  each piece is mapped byte -> printable unicode character (GPT-2's byte encoder), then BPE merges from
  ``tokenizer.ggml.merges`` are applied by rank. Every pre-tokenizer name of llama.cpp's
  ``src/llama-vocab.cpp`` is known (:data:`_PRE_TYPES`), with its regexes (:data:`_PRE_REGEXES`, adapted
  to Oniguruma by :func:`_onig` where llama.cpp's ``src/unicode.cpp`` reads them its own way) and its
  flags: ``ignore_merges`` (a piece that is a whole token is taken as is: llama3, glm4, tekken...), the
  default ``add_bos`` and ``clean_spaces``. A few (gemma4, sarvam-moe, whitespace) run BPE on the UTF-8
  text itself, spaces written "▁" for the first two, with ``<0xXX>`` byte-token fallback;
  ``tokenizer.ggml.model = "gemma4"`` is such a BPE.
* ``tokenizer.ggml.model = "llama"``: SentencePiece (llama.cpp's "SPM" tokenizer). Spaces become U+2581
  ("▁"), "▁" is prepended to each run of text only when ``tokenizer.ggml.add_space_prefix`` is true (it
  is false for Gemma), then the highest-scoring adjacent pair whose concatenation is a token is merged,
  again and again; characters left without a token fall back to ``<0xXX>`` byte tokens. This is a BPE
  whose merges are every split ``(a, b)`` of every token ``a + b`` with both halves in the vocabulary,
  ranked by the merged token's score - the standard conversion (transformers' GGUF converter does the
  same). Deriving those ~515k merges for Gemma 3's 262k vocabulary is vectorized with numpy (see
  :func:`_spm_merge_ids`), and the ~30% that can never fire are left out (:func:`_dead_merges`: no
  token id changes, the Rust merge table halves). Building takes about 1 s on a small 2-core machine,
  half of it in the ``tokenizers`` BPE constructor.

Memory (Gemma 3): the Rust BPE (vocabulary twice, as ``vocab`` and ``vocab_r``, and the merge table)
is the only large thing kept, about 60 MB; token texts stay in the metadata's compact
:class:`~engine.gguf_file.StringArray`. The build's temporaries (a ``list[str]`` of the vocabulary, a
``dict``, numpy arrays; merges are streamed to Rust by :class:`_MergePairs`) peak about 80 MB above
that and are handed back to the OS afterwards (:func:`_release_freed_memory`).

Special tokens, as in llama.cpp's ``tokenizer_st_partition``: control (token type 3) and unknown (2)
tokens written in the text are parsed as single tokens only with ``parse_special=True``; user-defined
tokens (4: Gemma's ``"\\n"``, runs of spaces and tabs, HTML tags...) are always split out first.

Detokenizing mirrors llama.cpp's ``token_to_piece``: :meth:`Tokenizer.token_bytes` gives the raw bytes of
one token and text is assembled from bytes, so a multi-byte character split over several tokens (byte
fallback, byte-level BPE) comes out whole. :class:`StreamDecoder` never emits half a UTF-8 character.
llama.cpp's ``clean_spaces`` post-processing (" ," -> ",", set by many BPE pre-tokenizers) is applied
only when asked (``decode(..., clean_spaces=True)``, as ``llama_detokenize``): by default decoding gives
back the exact text that was encoded, as llama.cpp's token-by-token ``token_to_piece`` does.

End of generation (:attr:`Tokenizer.eog_ids`) follows llama.cpp's ``special_eog_ids`` exactly, quirks
included: SmolLM2's ``<reponame>`` (taken for a fill-in-the-middle token) and Gemma 3's ``</s>`` (an HTML
tag there) end generation and count as control tokens, as they do in llama.cpp.

Known approximations (both need contrived input): when two *different* merges of equal score compete,
llama.cpp takes the leftmost while a BPE takes the better-ranked; and when two special tokens overlap in
the text, llama.cpp matches the longer one first while ``tokenizers`` takes the leftmost-longest.
"""
from __future__ import annotations

import codecs
import ctypes
import gc
import itertools
import logging
import threading
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from .errors import FiresideError
from .gguf_file import StringArray

log = logging.getLogger(__name__)

# llama.cpp's token types (``llama_token_type``), as stored in ``tokenizer.ggml.token_type``.
TOKEN_UNDEFINED = 0
TOKEN_NORMAL = 1
TOKEN_UNKNOWN = 2
TOKEN_CONTROL = 3
TOKEN_USER_DEFINED = 4
TOKEN_UNUSED = 5
TOKEN_BYTE = 6

SUPPORTED_MODELS = {"gpt2": "byte-level BPE", "llama": "SentencePiece", "gemma4": "BPE on SentencePiece-style text"}

SPACE_MARK = "\u2581"  # "▁", SentencePiece's escaped space

# --- pre-tokenizers: llama.cpp's src/llama-vocab.cpp (as of llama.cpp 0c1e570, llama-cpp-python 0.3.36) --
# The regexes of each LLAMA_VOCAB_PRE_TYPE_*, as llm_tokenizer_bpe's constructor lists them (applied one
# after the other, each splitting the pieces the previous ones left, as unicode_regex_split does in
# src/unicode.cpp). They are written here as llama.cpp writes them; :func:`_onig` adapts the few
# constructs that llama.cpp reads differently from Oniguruma (the regex engine of ``tokenizers``), and
# :data:`_CUSTOM_SPLITS` stands in for the splitters that src/unicode.cpp hand-codes.
_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2 = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN35 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+"
           r"|\s+(?!\S)|\s+")
_JAIS2 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)"
          r"|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}")
_DEEPSEEK_LETTERS = (  # (escapes: characters that Unicode normalization would change)
    "\\s?[A-Za-z\u00b5À-ÖØ-öø-ƺƼ-ƿ\u01c4-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-\u03f5Ϸ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ"
    "-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼ\u2102\u2107\u210a-\u2113"
    "\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149ⅎ"
    "ↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿ\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀"
    "-𐳲𑢠-𑣟𞤀-𞥃]+")
_DEEPSEEK_CJK = "[一-龥ࠀ-一가-\ud7ff]+"
_KANA_CJK = "[一-龥\u3040-ゟ゠-ヿ]+"
_DEEPSEEK3 = (r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"""
              r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_SPARK2_5 = (r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"""
             r"| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+")
_BLOOM = r" ?[^(\s|.,!?…。，、।۔،)]+"
_GPT4O = (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+" + _CONTRACTIONS
          + r"?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*" + _CONTRACTIONS
          + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_CASED_WORDS = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+" + _CONTRACTIONS
                + r"?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*" + _CONTRACTIONS
                + "?")
_NEWLINE_RUNS = r"[^\n]+|[\n]+"
_PRE_REGEXES: dict[str, tuple[str, ...]] = {  # LLAMA_VOCAB_PRE_TYPE_* (lower case) -> regex_exprs
    "default": (r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"),
    "llama3": (_LLAMA3,), "dbrx": (_LLAMA3,), "smaug": (_LLAMA3,), "chatglm4": (_LLAMA3,),
    "jais2": (_JAIS2,),
    "deepseek-llm": ("[\r\n]", _DEEPSEEK_LETTERS, "\\s?[!-/:-~！-／：-～‘-‟\u3000-。]+", r"\s+$", _DEEPSEEK_CJK,
                     r"\p{N}+"),
    "deepseek-coder": ("[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _DEEPSEEK_CJK, r"\p{N}"),
    **{name: (r"\p{N}{1,3}", _KANA_CJK, _DEEPSEEK3)
       for name in ("deepseek3-llm", "hunyuan-dense", "joyai-llm", "hy-v4")},
    "spark2-5": (r"\p{N}{1,3}", _KANA_CJK, _SPARK2_5, r"\p{N}"),
    "youtu": ("[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|" + _KANA_CJK[:-1] + "+",
              _CASED_WORDS + r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    "falcon": (r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, r"[0-9][0-9][0-9]"),
    **{name: (r"\p{N}", _GPT2) for name in (
        "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva", "mellum2")},
    **{name: (_GPT2,) for name in ("gpt2", "mpt", "olmo", "jais", "trillion", "granite-docling")},
    **{name: (_QWEN2,) for name in ("stablelm2", "qwen2", "hunyuan", "solar-open", "grok-2")},
    "qwen35": (_QWEN35,),
    **{name: (_BLOOM,) for name in ("poro", "bloom", "gpt3-finnish")},
    "viking": (_BLOOM, r"\p{N}"),
    "tekken": (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])"
               r"([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",),
    "chameleon": (r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )", r"\p{N}",
                  r"[\p{P}!-/:-@\[-`{-~]", _GPT2),
    "gpt4o": (_GPT4O,), "minimax-m2": (_GPT4O,),
    "granite-emb-multi": (_GPT4O.replace(r"(?=[\p{L}])", r"(?=[\p{L}\p{M}])"),),
    "tiny-aya": (r"\d{1,3}(?=(?:\d{3})*\b)",
                 _CASED_WORDS + r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    "kimi-k2": (r"\p{Han}+",),
    "superbpe": (r"\p{N}+", r"(?=(\d{3})+(?!\d))"),
    "bailingmoe": (r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                   r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",),
    "seed-coder": (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+"
                   r"|\s+(?!\S)|\s+",),
    "ufakzeka": (_QWEN2[len(_CONTRACTIONS) + 1:],),
    "afmoe": (r"\p{AFMoE_digits}",
              "[一-鿿㐀-䶿豈-\ufaff\u3040-ゟ゠-ヿ･-ﾟ⼀-\u2fdfเ-\u0e7f\u0e80-\u0effក-\u17ffက-႟ꩠ-ꩿꧠ-\ua9ff가-\ud7afᄀ-ᇿ]+",
              _DEEPSEEK3),
    "laguna": (_NEWLINE_RUNS, _QWEN2),
    "exaone-moe": (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
                   r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+",),
    "gemma4": (_NEWLINE_RUNS,), "sarvam-moe": (_NEWLINE_RUNS,),
    "minicpm5": (r"\p{N}{1,3}", _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+"),
    "whitespace": (r"\S+",),
}
# Pre-types whose words are not GPT-2 byte-encoded (llm_tokenizer_bpe's byte_encode = false): BPE runs on
# the UTF-8 text itself and characters without a token fall back to <0xXX> byte tokens.
_RAW_PRE_TYPES = frozenset({"gemma4", "sarvam-moe", "whitespace"})

# Han characters as src/unicode.cpp's unicode_cpt_is_han counts them (not Unicode's Script=Han).
_HAN = (r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}"
        r"\x{2B820}-\x{2CEAF}\x{2CEB0}-\x{2EBEF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}")
# src/unicode.cpp's unicode_regex_split_custom runs hand-written code for some regexes. For most (GPT-2,
# llama3, qwen2, qwen35, the newline runs) the code does what the regex says, and the regex is used here;
# these three do something else, written here as the regex that splits the same way:
_AFMOE_DIGITS = r"\P{N}*\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))|\P{N}+"
_CUSTOM_SPLITS = {
    # Kimi K2's whole pattern (unicode_regex_split_custom_kimi_k2): Han runs, then words of other letters
    # (upper/lower case not told apart, combining marks not included) with a contraction, digits by three...
    r"\p{Han}+": (rf"[{_HAN}]+|[^\r\n\p{{L}}\p{{N}}]?(?:(?![{_HAN}])\p{{L}})+{_CONTRACTIONS}?|\p{{N}}{{1,3}}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    # unicode_regex_split_custom_afmoe: each run of digits is cut into groups of three from the right (the
    # first group has the 1-2 left over), and the text before a run stays glued to its first group.
    r"\p{AFMoE_digits}": _AFMOE_DIGITS,
    r"\d{1,3}(?=(?:\d{3})*\b)": _AFMOE_DIGITS,  # tiny_aya: llama.cpp runs the AFMoE code for it
}


# The non-ASCII characters of src/unicode-data.cpp's unicode_set_whitespace.
_WIDE_SPACES = r"\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"


def _onig(regex: str) -> str:
    """One of llama.cpp's pre-tokenizer regexes as an Oniguruma regex that splits text the same way.

    llama.cpp runs the regexes that have Unicode classes on a "collapsed" text (``unicode_regex_split``,
    src/unicode.cpp): every non-ASCII character is replaced by one byte standing for its category, and
    ``\\p{Lu}``, ``\\p{Ll}``, ``\\p{Lt}``, ``\\p{Lm}``, ``\\p{Lo}`` all become "any letter" (so the
    upper/lower-case word patterns of tiny_aya and youtu do not tell case apart there). The others run on
    ``std::wregex`` over the text with every non-ASCII space replaced by U+000B: ``[一-龥ࠀ-一]`` then does
    not match U+2028 or U+3000 (taken out of such classes here), ``\\d`` is an ASCII digit and ``$`` is
    the end of the piece only. Oniguruma's ``\\p{N}``, ``\\p{L}``, ``\\p{P}``, ``\\p{S}``, ``\\p{M}`` and
    ``\\s`` are the same classes as llama.cpp's.
    """
    regex = _CUSTOM_SPLITS.get(regex, regex)
    if r"\p{" in regex:
        for letters in (r"\p{Lu}", r"\p{Ll}", r"\p{Lt}", r"\p{Lm}", r"\p{Lo}"):
            regex = regex.replace(letters, r"\p{L}")
        return regex
    regex = _without_wide_spaces(regex.replace(r"\d", "[0-9]"))
    if regex.endswith("$"):
        regex = regex[:-1] + r"\z"  # Oniguruma's $ also matches before a newline
    return regex


def _without_wide_spaces(regex: str) -> str:
    """``regex`` with the non-ASCII spaces taken out of each ``[...]`` class that lists non-ASCII
    characters (Oniguruma's class intersection ``[...&&[^...]]``); negated classes are left as they are."""
    out: list[str] = []
    start = None  # index in `out` of the "[" of the class being read
    i = 0
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            out.append(regex[i:i + 2])
            i += 2
            continue
        if c == "[" and start is None:
            start = len(out)
        elif c == "]" and start is not None:
            body = "".join(out[start + 1:])
            if not body.startswith("^") and any(ord(ch) > 127 for ch in body):
                c = f"&&[^{_WIDE_SPACES}]]"
            start = None
        out.append(c)
        i += 1
    return "".join(out)


class _PreType(NamedTuple):
    """What ``tokenizer.ggml.pre`` sets in llama.cpp (``llama_vocab::impl::load``): the regexes
    (a key of :data:`_PRE_REGEXES`) and the flags, before ``tokenizer.ggml.add_bos_token`` and
    ``add_space_prefix`` in the file override them."""
    regexes: str
    ignore_merges: bool = False  # a word that is a whole token is taken as is, without merges
    add_bos: bool = False
    clean_spaces: bool = True  # clean_up_tokenization_spaces, see _clean_spaces (llama.cpp's BPE default)
    escape_whitespaces: bool = False  # spaces become "▁" before splitting (SentencePiece-style BPE)


def _pre_types() -> dict[str, _PreType]:
    """``tokenizer.ggml.pre`` -> :class:`_PreType`, in the order of llama.cpp's ``tokenizer_pre ==`` chain."""
    table: dict[str, _PreType] = {"default": _PreType("default")}

    def add(names: str, *args, **flags) -> None:
        for name in names.split():
            table[name] = _PreType(*args, **flags)

    keep_spaces = {"clean_spaces": False}
    add("minicpm5", "minicpm5", ignore_merges=True)
    add("llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano", "llama3",
        ignore_merges=True, add_bos=True)
    add("deepseek-llm", "deepseek-llm", **keep_spaces)
    add("deepseek-coder", "deepseek-coder", **keep_spaces)
    add("deepseek-v3", "deepseek3-llm", **keep_spaces)
    add("spark2_5", "spark2-5", **keep_spaces)
    add("youtu", "youtu", ignore_merges=True, **keep_spaces)
    add("falcon", "falcon")
    add("mpt", "mpt")
    add("starcoder", "starcoder")
    add("gpt-2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert", "gpt2")
    add("jais-2", "jais2")
    add("gemma4 granite-embed-multi-311m", "gemma4", escape_whitespaces=True)
    add("sarvam-moe", "sarvam-moe", escape_whitespaces=True, **keep_spaces)
    add("jina-v1-en jina-v2-code roberta-bpe", "gpt2")  # (llama.cpp also sets add_sep: not used to tokenize)
    add("whitespace", "whitespace")
    add("refact", "refact")
    add("command-r", "command-r", **keep_spaces)
    add("qwen2 deepseek-r1-qwen kormo f2llmv2", "qwen2", **keep_spaces)
    add("qwen35", "qwen35", **keep_spaces)
    add("stablelm2", "stablelm2")
    add("olmo", "olmo")
    add("dbrx", "dbrx")
    add("smaug-bpe", "smaug")
    add("poro-chat", "poro", **keep_spaces)
    add("chatglm-bpe", "chatglm4")
    add("glm4 glm5", "chatglm4", ignore_merges=True)
    add("viking", "viking", **keep_spaces)
    add("jais", "jais")
    add("tekken", "tekken", ignore_merges=True, add_bos=True, **keep_spaces)
    add("smollm", "smollm", **keep_spaces)
    add("codeshell", "codeshell")
    add("bloom", "bloom")
    add("gpt3-finnish", "gpt3-finnish")
    add("exaone", "exaone")
    add("exaone4", "gpt2")
    add("exaone-moe", "exaone-moe")
    add("chameleon", "chameleon", add_bos=True, **keep_spaces)
    add("minerva-7b", "minerva")
    add("megrez", "qwen2")
    add("gpt-4o llama4 kanana2 talkie", "gpt4o", **keep_spaces)
    add("granite-embed-multi-97m", "granite-emb-multi", ignore_merges=True, **keep_spaces)
    add("tiny_aya cohere2moe", "tiny-aya", **keep_spaces)
    add("superbpe", "superbpe", **keep_spaces)
    add("trillion", "trillion", **keep_spaces)
    add("granite-docling", "granite-docling", **keep_spaces)
    add("bailingmoe bailingmoe2 llada-moe", "bailingmoe", **keep_spaces)
    add("seed-coder", "seed-coder", **keep_spaces)
    add("hunyuan", "hunyuan", **keep_spaces)
    add("hunyuan-dense", "hunyuan-dense", **keep_spaces)
    add("hy_v4", "hy-v4", **keep_spaces)
    add("joyai-llm", "joyai-llm", **keep_spaces)
    add("kimi-k2", "kimi-k2", **keep_spaces)
    add("ufakzeka", "ufakzeka", **keep_spaces)
    add("grok-2", "grok-2", **keep_spaces)
    add("afmoe", "afmoe", **keep_spaces)
    add("laguna", "laguna", **keep_spaces)
    add("minimax-m2", "minimax-m2", **keep_spaces)
    add("solar-open", "solar-open", **keep_spaces)
    add("mellum2", "mellum2")
    return table


_PRE_TYPES = _pre_types()


def _bpe_pre_type(model: str, pre: str | None, source: str) -> tuple[str, _PreType]:
    """The pre-tokenizer of a BPE vocabulary: ``(name, settings)``. As in llama.cpp, a missing
    ``tokenizer.ggml.pre`` is ``"default"`` and ``tokenizer.ggml.model = "gemma4"`` implies ``"gemma4"``;
    an unknown name (an error in llama.cpp) gets GPT-2's regex, with a warning."""
    pre = "gemma4" if model == "gemma4" else (pre or "default")
    pre_type = _PRE_TYPES.get(pre)
    if pre_type is None:
        log.warning("%s: unknown pre-tokenizer '%s', using GPT-2's; tokenization may differ from llama.cpp",
                    source, pre)
        pre_type = _PRE_TYPES["gpt-2"]
    return pre, pre_type


def _unknown_chars(vocab: dict[str, int]) -> str | None:
    """For BPE on plain UTF-8: a regex class of the characters that are not tokens, if some byte token
    ``<0xXX>`` is missing (else None).

    In llama.cpp such a character stays a symbol of its word, so its neighbours cannot merge across it,
    and it gives the byte tokens that exist. ``tokenizers`` gives the byte tokens when they all exist (and
    they block merges just as well) but otherwise drops the character and lets its neighbours merge: so
    when some are missing, each unknown character is made a word of its own."""
    if all(f"<0x{b:02X}>" in vocab for b in range(256)):
        return None
    known = sorted({ord(t) for t in vocab if len(t) == 1} | {ord("\n")})  # newline runs: words anyway
    ranges: list[list[int]] = []
    for cp in known:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "[^" + "".join(f"\\x{{{a:X}}}" + (f"-\\x{{{b:X}}}" if b > a else "") for a, b in ranges) + "]"


def _set_bpe_pipeline(hf: HFTokenizer, pre_type: _PreType, *, byte_level: bool, unknown: str | None = None) -> None:
    """Normalizer, pre-tokenizer and decoder of a BPE tokenizer: spaces to "▁" first if the pre-type
    escapes them, then the pre-type's regexes one after the other (each match and each gap between matches
    is a word), then GPT-2's byte encoding of each word unless the pre-type works on plain UTF-8 (then
    ``unknown``, from :func:`_unknown_chars`, isolates the characters that have no token)."""
    regexes = [_onig(rx) for rx in _PRE_REGEXES[pre_type.regexes]] + ([unknown] if unknown else [])
    splits = [pre_tokenizers.Split(Regex(rx), behavior="isolated") for rx in regexes]
    if byte_level:
        hf.pre_tokenizer = pre_tokenizers.Sequence(
            splits + [pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
        hf.decoder = decoders.ByteLevel()
        return
    hf.pre_tokenizer = pre_tokenizers.Sequence(splits)
    steps = [decoders.ByteFallback(), decoders.Fuse()]
    if pre_type.escape_whitespaces:
        hf.normalizer = normalizers.Replace(" ", SPACE_MARK)
        steps.insert(0, decoders.Replace(SPACE_MARK, " "))
    hf.decoder = decoders.Sequence(steps)


def _clean_spaces(text: str) -> str:
    """llama.cpp's ``clean_spaces`` (``llama_vocab::impl::detokenize``, after Hugging Face's
    ``clean_up_tokenization_spaces``): " ?", " !", " .", " ," lose their space, a lone " ' " loses both,
    and " 's", " 'm", " 're", " 've" theirs. Written as llama.cpp's three in-place passes."""
    buf = list(text)
    n = len(buf)
    total = 1 if n else 0  # first pass: " ?", " !", " .", " ,"
    for i in range(1, n):
        x = buf[i]
        if buf[i - 1] == " " and x in "?!.,":
            total -= 1
        buf[total] = x
        total += 1
    n, total = total, 1 if total else 0  # second pass: " ' " -> "'"
    i = 1
    while i < n:
        x = buf[i]
        if x == "'" and i + 1 < n and buf[i - 1] == " " and buf[i + 1] == " ":
            total -= 1
            i += 1
            buf[i] = "\0"
        buf[total] = x
        total += 1
        i += 1
    n, total = total, 1 if total else 0  # third pass: " 's", " 'm", " 're", " 've"
    for i in range(1, n):
        x = buf[i]
        if buf[i - 1] == " " and x == "'" and i + 1 < n:
            x1 = buf[i + 1]
            if x1 in "sm" or (x1 not in "td" and i + 2 < n and x1 + buf[i + 2] in ("re", "ve")):
                total -= 1
        buf[total] = x
        total += 1
    return "".join(buf[:total])

# Token texts that end generation (llama.cpp's special_eog_ids is built from the same list).
_EOG_TEXTS = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>", "[e~[",
})
# Fill-in-the-middle pad/repo/separator tokens: llama.cpp also stops on these.
_FIM_TEXTS = {
    "tokenizer.ggml.fim_pad_token_id": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "tokenizer.ggml.fim_rep_token_id": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "tokenizer.ggml.fim_sep_token_id": ("<|file_sep|>",),
}


class TokenizerError(FiresideError, ValueError):
    """The GGUF metadata does not describe a tokenizer Fireside can run; the message says why."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}


def _as_str_list(value, key: str, source: str) -> list[str]:
    """A metadata array of strings (a list, or the :class:`StringArray` that GGUFFile gives) as a list."""
    if isinstance(value, StringArray):
        return value.tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value[:1]):
        raise TokenizerError(f"{source}: {key} must be an array of strings")
    return list(value) if isinstance(value, tuple) else value


def _scalar(metadata: dict, key: str, kind: type, default, source: str):
    """A scalar metadata value of type ``kind`` (``str`` or ``bool``), or ``default`` when absent.

    Raises:
        TokenizerError: the value has another type (an array, a number where a string belongs...).
    """
    value = metadata.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        shown = "an array" if isinstance(value, (list, tuple, np.ndarray, StringArray)) else repr(value)
        raise TokenizerError(f"{source}: {key} = {shown} must be {'a string' if kind is str else 'true or false'}")
    return value


def _as_array(value, key: str, n: int, dtype, source: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        raise TokenizerError(f"{source}: {key} must be a numeric array")
    if arr.shape[0] < n:
        raise TokenizerError(f"{source}: {key} has {arr.shape[0]} entries for {n} tokens")
    return arr[:n].astype(dtype, copy=False)


_HASH_BASES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD6E8FEB86659FD93))
_HASH_SALT = np.uint64(0x5BD1E995)  # the second hash sees the code points xor-ed with this
_HASH_EXACT_ABOVE = 256  # merges of tokens longer than this are also checked string by string


# Table slot of a hash: the top bits of hash * this odd constant (multiplicative hashing). The hashes
# themselves cannot be used directly: texts differing in their last character differ in low bits only.
_SLOT_MULT = np.uint64(0xD1B54A32D192ED03)


class _HashIndex:
    """Token ids by (hash1, hash2, length) of their text; built by :func:`_spm_merge_ids`."""

    def __init__(self, full1: np.ndarray, full2: np.ndarray, lens: np.ndarray):
        n = full1.shape[0]
        self.full1, self.full2, self.lens = full1, full2, lens
        self.sorted_idx = np.argsort(full1).astype(np.int32)
        self.sorted_full = full1[self.sorted_idx]
        self.unique = not np.any(self.sorted_full[1:] == self.sorted_full[:-1])
        bits = max(16, int(np.ceil(np.log2(max(n, 2)))) + 3)  # an eighth full: few crowded slots
        self.shift = np.uint64(64 - bits)
        slots = self._slots(full1)
        self.table = np.full(1 << bits, -1, dtype=np.int32)
        self.table[slots] = np.arange(n, dtype=np.int32)
        slots.sort()
        self.crowded = np.zeros(1 << bits, dtype=bool)  # slots holding several tokens
        self.crowded[slots[1:][slots[1:] == slots[:-1]]] = True

    def _slots(self, h: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return ((h * _SLOT_MULT) >> self.shift).astype(np.intp)

    def lookup(self, q1: np.ndarray, q2: np.ndarray, qlen) -> np.ndarray:
        """Index (int32) of the token with hashes (q1, q2) and length qlen (array or int), or -1."""
        slot = self._slots(q1)
        j = self.table[slot]
        again = np.nonzero(self.crowded[slot])[0]
        if again.size:  # several tokens in that slot: binary search instead
            p = np.minimum(np.searchsorted(self.sorted_full, q1[again]), self.sorted_full.shape[0] - 1)
            j[again] = self.sorted_idx[p]
        cand = np.nonzero(j >= 0)[0]
        jc = j[cand]
        ok = self.full1[jc] == q1[cand]  # then the second hash and the length, on the few left
        cand, jc = cand[ok], jc[ok]
        qlen = qlen[cand] if isinstance(qlen, np.ndarray) else qlen
        ok = (self.full2[jc] == q2[cand]) & (self.lens[jc] == qlen)
        out = np.full(q1.shape[0], -1, dtype=np.int32)
        out[cand[ok]] = jc[ok]
        return out


def _spm_merge_ids(tokens: Sequence[str], scores: np.ndarray, *, prune: bool = False,
                   edge_texts: Iterable[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """SentencePiece merges as token ids: ``(left, right)``, int32 arrays, best merge first.

    The merges are every split ``(a, b)`` of every token ``t = a + b`` where both halves are tokens,
    ranked by ``t``'s score (ties: lower id of ``t``, then the longer left half first). A Python loop over
    the ~1.5M split points of Gemma 3's 262k vocabulary takes about a second, so this is vectorized with
    numpy: two independent polynomial hashes (mod 2**64) of every prefix are computed column by column,
    halves are looked up by hash in an open table, and a split is kept only if both hashes and the
    lengths of both halves agree (merges of very long tokens are also compared as strings). Each
    column's lookups are done at once so that no array over all split points is ever held.

    With ``prune``, merges that can never fire are left out (see :func:`_dead_merges`); ``edge_texts``
    are the texts of the symbols the BPE starts from that are not single characters (byte-fallback
    tokens, the unknown token). Falls back to :func:`_spm_merges_slow` if two tokens of the vocabulary
    share a hash.
    """
    n = len(tokens)
    empty = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32))
    lens = np.fromiter(map(len, tokens), dtype=np.int64, count=n)
    maxlen = int(lens.max()) if n else 0
    if maxlen < 2:
        return empty
    cps = np.frombuffer("".join(tokens).encode("utf-32-le"), dtype=np.uint32)
    offs = np.zeros(n, dtype=np.int64)
    np.cumsum(lens[:-1], out=offs[1:])
    p1, p2 = _HASH_BASES
    one = np.uint64(1)
    order = np.argsort(-lens, kind="stable").astype(np.int32)  # longest first: tokens longer than k lead
    n_longer = np.searchsorted(-lens[order], -np.arange(maxlen + 1), side="left")
    starts_o, lens_o = offs[order], lens[order]

    def step(h1: np.ndarray, h2: np.ndarray, k: int) -> None:
        """Extend the prefix hashes of the tokens longer than k by their character k."""
        m = int(n_longer[k])
        c = cps[starts_o[:m] + k].astype(np.uint64)
        h1[:m] = h1[:m] * p1 + c + one
        h2[:m] = h2[:m] * p2 + (c ^ _HASH_SALT) + one

    with np.errstate(over="ignore"):
        f1 = np.zeros(n, dtype=np.uint64)  # full-text hashes, in `order`
        f2 = np.zeros(n, dtype=np.uint64)
        for k in range(maxlen):
            step(f1, f2, k)
        full1 = np.empty(n, dtype=np.uint64)
        full2 = np.empty(n, dtype=np.uint64)
        full1[order] = f1
        full2[order] = f2
        index = _HashIndex(full1, full2, lens)
        if not index.unique:
            return _merge_ids_of(_spm_merges_slow(tokens, scores, prune=prune, edge_texts=edge_texts), tokens)
        pow1 = np.ones(maxlen + 1, dtype=np.uint64)
        pow2 = np.ones(maxlen + 1, dtype=np.uint64)
        for i in range(1, maxlen + 1):
            pow1[i] = pow1[i - 1] * p1
            pow2[i] = pow2[i - 1] * p2

        h1 = np.zeros(n, dtype=np.uint64)  # prefix hashes, in `order`
        h2 = np.zeros(n, dtype=np.uint64)
        found: list[tuple[np.ndarray, ...]] = []
        prefixes: list[tuple[np.ndarray, np.ndarray]] = []  # (token, a prefix of it that is a token)
        suffixes: list[tuple[np.ndarray, np.ndarray]] = []
        for k in range(1, maxlen):  # cut after k characters
            step(h1, h2, k - 1)
            m = int(n_longer[k])  # tokens longer than k
            if not m:
                break
            ja = index.lookup(h1[:m], h2[:m], k)
            rest = lens_o[:m] - k
            jb = index.lookup(f1[:m] - h1[:m] * pow1[rest], f2[:m] - h2[:m] * pow2[rest], rest)
            hit = np.nonzero((ja >= 0) & (jb >= 0))[0]
            found.append((order[hit], np.full(hit.size, k, dtype=np.int32), ja[hit], jb[hit]))
            if prune:
                if k >= 2:
                    hit = np.nonzero(ja >= 0)[0]
                    prefixes.append((order[hit], ja[hit]))
                hit = np.nonzero((jb >= 0) & (rest >= 2))[0]
                suffixes.append((order[hit], jb[hit]))
    del h1, h2, f1, f2, starts_o, lens_o
    tok, k, ja, jb = (np.concatenate(parts) for parts in zip(*found))
    del found

    long_ = np.nonzero(lens[tok] > _HASH_EXACT_ABOVE)[0]
    if long_.size:
        bad = [i for i in long_.tolist() if tokens[ja[i]] + tokens[jb[i]] != tokens[tok[i]]]
        if bad:
            ok = np.ones(tok.size, dtype=bool)
            ok[bad] = False
            tok, k, ja, jb = tok[ok], k[ok], ja[ok], jb[ok]
    # rank by the merged token's score, best first (ties: lower token id, then a longer left half first)
    by_score = np.empty(n, dtype=np.int64)  # token -> its place in (score descending, id) order
    by_score[np.argsort(-scores.astype(np.float64), kind="stable")] = np.arange(n)
    best = np.argsort(by_score[tok] * (maxlen + 1) + (maxlen - k), kind="stable")
    tok, k, ja, jb = tok[best], k[best], ja[best], jb[best]
    if prune:
        live = ~_dead_merges(tok, k, ja, jb, lens, cps, offs, index, prefixes, suffixes, edge_texts)
        ja, jb = ja[live], jb[live]
    return ja, jb


def _dead_merges(tok, k, ja, jb, lens, cps, offs, index: _HashIndex, prefixes, suffixes,
                 edge_texts: Iterable[str]) -> np.ndarray:
    """Which merges (in rank order, ranks unique) can never fire in ``tokenizers``' BPE; a bool array.

    The BPE (``Word::merge_all`` in tokenizers' ``models/bpe/word.rs``) starts from one symbol per
    character, queues every adjacent pair that has a merge in a priority queue (best rank first, then
    leftmost), then pops and applies merges, queueing the pairs each new symbol forms with its
    neighbours; symbols only ever grow. Take a merge ``(x, y)`` that is not a pair of characters, ``a``
    the last character of ``x`` and ``b`` the first of ``y``. For it to fire, ``x`` must sit right next
    to ``y``, so the two neighbouring characters ``a`` and ``b`` must never have been merged together.
    If ``(a, b)`` is a merge, it is queued from the very start, so until it is popped only merges ranked
    at or before it can be applied; when popped it fires unless ``a`` or ``b`` already belongs to a
    larger symbol. Before ``x`` and ``y`` meet, the symbol holding ``a`` can only grow leftwards, into
    suffixes of ``x`` (first through a merge ``(s, a)``), and the one holding ``b`` only rightwards, into
    prefixes of ``y`` (through a merge ``(b, p)``). So if ``(a, b)`` ranks strictly before every merge
    ``(s, a)`` making a suffix of ``x`` and every merge ``(b, p)`` making a prefix of ``y``, ``(x, y)``
    never fires: its pair is never even queued, and leaving it out changes no token id. (Strictly: in
    "aaa" the merge (a, a) itself can take ``a`` away first.) This removes about 30% of Gemma 3's
    merges. Characters that may start as something other than their own token (a byte-fallback
    ``<0xXX>``, the unknown token: ``edge_texts``) are never taken as ``a`` or ``b``.
    """
    n_merges = tok.size
    n = lens.size
    rank = np.arange(n_merges, dtype=np.int64)
    never = np.int64(n_merges)
    first = np.full(n, never, dtype=np.int64)  # rank of the merge (t[0], t[1:]) -> t
    last = np.full(n, never, dtype=np.int64)   # rank of the merge (t[:-1], t[-1]) -> t
    sel = k == 1
    first[tok[sel]] = rank[sel]
    sel = k == lens[tok] - 1
    last[tok[sel]] = rank[sel]
    pre = first.copy()  # best rank of a merge (b, p) that makes a prefix of t (t included)
    for t, p in prefixes:
        np.minimum.at(pre, t, first[p])
    suf = last.copy()  # best rank of a merge (s, a) that makes a suffix of t (t included)
    for t, s in suffixes:
        np.minimum.at(suf, t, last[s])
    a = cps[offs[ja] + lens[ja] - 1].astype(np.uint64)
    b = cps[offs[jb]].astype(np.uint64)
    p1, p2 = _HASH_BASES
    one = np.uint64(1)
    with np.errstate(over="ignore"):
        ab = index.lookup((a + one) * p1 + b + one,
                          ((a ^ _HASH_SALT) + one) * p2 + (b ^ _HASH_SALT) + one, 2)
    r_ab = np.where(ab >= 0, first[np.maximum(ab, 0)], never)
    dead = (lens[ja] + lens[jb] > 2) & (r_ab < suf[ja]) & (r_ab < pre[jb])
    edge_texts = [t for t in edge_texts if t]
    if edge_texts:
        dead &= ~np.isin(a, [ord(t[-1]) for t in edge_texts])
        dead &= ~np.isin(b, [ord(t[0]) for t in edge_texts])
    return dead


def _initial_symbol_texts(unk: str | None) -> list[str]:
    """Texts of the symbols the SentencePiece BPE may start from other than single characters: the
    byte-fallback tokens ``<0x00>``...``<0xFF>`` (tokenizers looks them up by that text) and ``unk``."""
    return [f"<0x{b:02X}>" for b in range(256)] + ([unk] if unk else [])


def _merge_ids_of(merges: list[tuple[str, str]], tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    vocab = dict(zip(reversed(tokens), range(len(tokens) - 1, -1, -1)))
    return (np.array([vocab[a] for a, _ in merges], dtype=np.int32),
            np.array([vocab[b] for _, b in merges], dtype=np.int32))


def _spm_merges(tokens: Sequence[str], scores: np.ndarray, *, prune: bool = False,
                edge_texts: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The merges of :func:`_spm_merge_ids` as ``(left, right)`` strings (the vocabulary's own objects)."""
    ja, jb = _spm_merge_ids(tokens, scores, prune=prune, edge_texts=edge_texts)
    return list(zip(map(tokens.__getitem__, ja.tolist()), map(tokens.__getitem__, jb.tolist())))


def _spm_merges_slow(tokens: Sequence[str], scores: np.ndarray, *, prune: bool = False,
                     edge_texts: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Plain-Python :func:`_spm_merges`, string by string: the reference in the tests."""
    vocab = set(tokens)
    found = [(-float(scores[i]), i, -k, t[:k], t[k:]) for i, t in enumerate(tokens)
             for k in range(1, len(t)) if t[:k] in vocab and t[k:] in vocab]
    found.sort(key=lambda x: x[:3])
    merges = [(a, b) for _, _, _, a, b in found]
    if not prune:
        return merges
    rank = {m: r for r, m in enumerate(merges)}
    never = len(merges)
    edge_last = {t[-1] for t in edge_texts if t}
    edge_first = {t[0] for t in edge_texts if t}

    def live(x: str, y: str) -> bool:
        a, b = x[-1], y[0]
        if len(x) + len(y) == 2 or a in edge_last or b in edge_first:
            return True
        r_ab = rank.get((a, b), never)
        suf = min((rank.get((x[j:-1], a), never) for j in range(len(x) - 1)), default=never)
        pre = min((rank.get((b, y[1:j]), never) for j in range(2, len(y) + 1)), default=never)
        return not (r_ab < suf and r_ab < pre)

    return [m for m in merges if live(*m)]


class _MergePairs(Sequence):
    """The merges ``(tokens[left[i]], tokens[right[i]])``, made as they are read.

    ``tokenizers.models.BPE`` reads its merges once, in order, into Rust strings: handing it this
    instead of a list means the ~360k tuples of Gemma 3 never exist together (about 25 MB less at the
    peak). The strings are the vocabulary's own objects.
    """

    _CHUNK = 8192

    def __init__(self, tokens: Sequence[str], left: np.ndarray, right: np.ndarray):
        self._tokens, self._left, self._right = tokens, left, right

    def __len__(self) -> int:
        return len(self._left)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._tokens[self._left[i]], self._tokens[self._right[i]]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        get = self._tokens.__getitem__
        left, right, step = self._left, self._right, self._CHUNK
        # C-level iterators end to end (no Python frame per merge), over chunks of the id arrays.
        return itertools.chain.from_iterable(
            zip(map(get, left[i:i + step].tolist()), map(get, right[i:i + step].tolist()))
            for i in range(0, len(left), step))


_malloc_trim = None


def _release_freed_memory() -> None:
    """Hand the heap memory freed so far back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

    Building a large vocabulary allocates and frees some 100 MB of numpy temporaries, Python objects
    and Rust strings; glibc keeps such freed pages mapped, and without this the process' resident
    memory would stay near the build's peak for the rest of its life.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl)
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


class Tokenizer:
    """A GGUF model's tokenizer; build it with :meth:`from_metadata` or :meth:`from_gguf`.

    Attributes:
        model: ``tokenizer.ggml.model`` (``"gpt2"``, ``"llama"`` or ``"gemma4"``).
        pre: ``tokenizer.ggml.pre`` as used (``"default"`` when absent).
        n_vocab: number of tokens.
        bos_id, eos_id: beginning/end of sequence ids, or ``None``.
        add_bos, add_eos: whether :meth:`encode` adds them when ``add_special=True``.
        add_space_prefix: SentencePiece only, "▁" is prepended to each run of text.
        clean_spaces: llama.cpp's ``clean_spaces`` for this pre-tokenizer (``decode(..., clean_spaces=True)``
            applies it).
        eog_ids: ids that end generation: EOS plus end-of-turn-like tokens present in the vocabulary
            (``<|im_end|>``, ``<end_of_turn>``, ``<|eot_id|>``, ``<|endoftext|>``...) and FIM pad/repo/
            separator tokens, as llama.cpp's ``special_eog_ids``.
        hf: the underlying ``tokenizers.Tokenizer`` (BOS/EOS are not in its post-processor: use
            :meth:`encode`).
    """

    def __init__(self) -> None:  # use from_metadata / from_gguf
        self.model = ""
        self.pre = ""
        self.n_vocab = 0
        self.bos_id: int | None = None
        self.eos_id: int | None = None
        self.unk_id: int | None = None
        self.add_bos = False
        self.add_eos = False
        self.add_space_prefix = False
        self.clean_spaces = False
        self.eog_ids: frozenset[int] = frozenset()
        self.hf: HFTokenizer | None = None
        self._tokens: Sequence[str] = []  # the metadata's own list, not a copy
        self._types = np.zeros(0, dtype=np.int8)
        self._pieces: dict[int, bytes] = {}  # token_bytes of the tokens asked for so far
        self._byte_level = False  # token texts are GPT-2 byte-encoded (byte-level BPE)
        self._escape_spaces = False  # token texts write spaces as "▁" (SentencePiece, Gemma 4's BPE)
        self._whole_newlines = False  # Gemma 4: a run of newlines that is a token is taken whole
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_gguf(cls, path: str | Path) -> "Tokenizer":
        """Read the tokenizer of a GGUF file (a full model or a vocab-only file)."""
        from .gguf_file import GGUFFile

        gf = GGUFFile(path)
        try:
            return cls.from_metadata(gf.metadata, source=str(path))
        finally:
            gf.close()

    @classmethod
    def from_metadata(cls, metadata: dict, source: str = "<metadata>") -> "Tokenizer":
        """Build the tokenizer from GGUF metadata (``tokenizer.ggml.*`` keys).

        Raises:
            TokenizerError: unsupported ``tokenizer.ggml.model`` (the message names it and lists the
                supported ones), missing or inconsistent vocabulary data.
        """
        model = _scalar(metadata, "tokenizer.ggml.model", str, None, source)
        if model is None:
            raise TokenizerError(f"{source}: the file has no tokenizer (tokenizer.ggml.model is missing)")
        if model not in SUPPORTED_MODELS:
            supported = ", ".join(f"'{k}' ({v})" for k, v in SUPPORTED_MODELS.items())
            raise TokenizerError(f"{source}: tokenizer model '{model}' is not supported; supported: {supported}")
        stored = metadata.get("tokenizer.ggml.tokens")
        if stored is None:
            raise TokenizerError(f"{source}: tokenizer.ggml.tokens is missing")
        # `tokens` (a list of str) is only needed while building: the Rust side keeps its own copy.
        tokens = _as_str_list(stored, "tokenizer.ggml.tokens", source)
        n = len(tokens)
        if n == 0:
            raise TokenizerError(f"{source}: tokenizer.ggml.tokens is empty")
        if "" in tokens:  # llama.cpp does the same
            tokens = [t or f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
            stored = StringArray.from_strings(tokens)

        self = cls()
        self.model = model
        self.n_vocab = n
        # Texts for token_text/token_bytes: the metadata's own array (compact when it comes from a file).
        self._tokens = stored if isinstance(stored, (list, StringArray)) else StringArray.from_strings(tokens)
        types = _as_array(metadata.get("tokenizer.ggml.token_type"), "tokenizer.ggml.token_type", n, np.int32, source)
        if types is None:
            self._types = np.full(n, TOKEN_NORMAL, dtype=np.int8)
        else:  # int8 keeps 262k types in 256 KiB; a type outside llama.cpp's list is "undefined"
            self._types = np.where((types >= 0) & (types <= TOKEN_BYTE), types, TOKEN_UNDEFINED).astype(np.int8)

        def token_id(key: str, default: int | None) -> int | None:
            value = metadata.get(key)
            if value is None:
                return default if default is not None and 0 <= default < n else None
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < n:
                log.warning("%s: %s = %r is not a token id of this vocabulary, ignored", source, key, value)
                return default if default is not None and 0 <= default < n else None
            return int(value)

        spm = model == "llama"
        if spm:
            self.pre = "default"
            pre_type = _PreType("default", add_bos=True, clean_spaces=False, escape_whitespaces=True)
            self.add_space_prefix = _scalar(metadata, "tokenizer.ggml.add_space_prefix", bool, True, source)
        else:
            self.pre, pre_type = _bpe_pre_type(model, _scalar(metadata, "tokenizer.ggml.pre", str, None, source),
                                               source)
            self.add_space_prefix = _scalar(metadata, "tokenizer.ggml.add_space_prefix", bool, False, source)
        self.clean_spaces = pre_type.clean_spaces
        self._escape_spaces = pre_type.escape_whitespaces
        self._byte_level = not spm and pre_type.regexes not in _RAW_PRE_TYPES
        self._whole_newlines = pre_type.regexes == "gemma4"
        self.bos_id = token_id("tokenizer.ggml.bos_token_id", 1 if spm else None)
        self.eos_id = token_id("tokenizer.ggml.eos_token_id", 2 if spm else None)
        self.unk_id = token_id("tokenizer.ggml.unknown_token_id", 0 if spm else None)
        self.add_bos = _scalar(metadata, "tokenizer.ggml.add_bos_token", bool, pre_type.add_bos, source)
        if pre_type.regexes == "gemma4":
            self.add_bos = True  # llama.cpp overrides add_bos_token = false for Gemma 4 (llama-vocab.cpp)
        self.add_eos = _scalar(metadata, "tokenizer.ggml.add_eos_token", bool, False, source)
        if self.add_bos and self.bos_id is None:
            raise TokenizerError(f"{source}: tokenizer.ggml.add_bos_token is true but there is no BOS token")
        if self.add_eos and self.eos_id is None:
            raise TokenizerError(f"{source}: tokenizer.ggml.add_eos_token is true but there is no EOS token")

        vocab = dict(zip(reversed(tokens), range(n - 1, -1, -1)))  # the first id of a duplicated text
        if len(vocab) != n:
            log.warning("%s: %d duplicate token texts in the vocabulary; the first id of each is used",
                        source, n - len(vocab))
        self.eog_ids = self._find_eog(metadata, vocab, token_id)

        gc_was_enabled = gc.isenabled()
        gc.disable()  # hundreds of thousands of small objects: the collector would only slow this down
        try:
            if spm:
                scores = _as_array(metadata.get("tokenizer.ggml.scores"), "tokenizer.ggml.scores", n,
                                   np.float32, source)
                if scores is None:
                    raise TokenizerError(f"{source}: tokenizer.ggml.scores is missing (needed by SentencePiece)")
                unk = tokens[self.unk_id] if self.unk_id is not None else None
                left, right = _spm_merge_ids(tokens, scores, prune=True, edge_texts=_initial_symbol_texts(unk))
                bpe = models.BPE(vocab, _MergePairs(tokens, left, right), unk_token=unk, fuse_unk=True,
                                 byte_fallback=True)
                del left, right
                hf = HFTokenizer(bpe)
                steps = [normalizers.Replace(" ", SPACE_MARK)]
                if self.add_space_prefix:
                    steps.insert(0, normalizers.Prepend(SPACE_MARK))
                hf.normalizer = normalizers.Sequence(steps)
                dec = [decoders.Replace(SPACE_MARK, " "), decoders.ByteFallback(), decoders.Fuse()]
                if self.add_space_prefix:
                    dec.append(decoders.Strip(" ", 1, 0))
                hf.decoder = decoders.Sequence(dec)
            else:
                raw_merges = metadata.get("tokenizer.ggml.merges")
                if raw_merges is None and self.pre == "kimi-k2":
                    raw_merges = []  # llama.cpp lets Kimi K2 go without merges
                if raw_merges is None:
                    raise TokenizerError(f"{source}: tokenizer.ggml.merges is missing (needed by BPE)")
                merges = []
                dropped = 0
                for m in _as_str_list(raw_merges, "tokenizer.ggml.merges", source):
                    cut = m.find(" ", 1)
                    a, b = (m[:cut], m[cut + 1:]) if cut >= 0 else ("", "")
                    if a in vocab and b in vocab and a + b in vocab:
                        merges.append((a, b))
                    else:
                        dropped += 1
                if dropped:
                    log.warning("%s: %d merges refer to tokens outside the vocabulary, ignored", source, dropped)
                bpe = models.BPE(vocab, merges, ignore_merges=pre_type.ignore_merges,
                                 byte_fallback=not self._byte_level)
                hf = HFTokenizer(bpe)
                _set_bpe_pipeline(hf, pre_type, byte_level=self._byte_level,
                                  unknown=None if self._byte_level else _unknown_chars(vocab))
        except TokenizerError:
            raise
        except Exception as exc:  # tokenizers reports bad vocabularies as plain Exceptions
            raise TokenizerError(f"{source}: cannot build the tokenizer: {exc}") from exc
        finally:
            if gc_was_enabled:
                gc.enable()

        # Special tokens are split out of the text before the model runs (llama.cpp's st_partition):
        # control/unknown ones only with parse_special, user-defined ones always.
        types = self._types
        special = np.nonzero((types == TOKEN_CONTROL) | (types == TOKEN_UNKNOWN))[0].tolist()
        user = np.nonzero(types == TOKEN_USER_DEFINED)[0].tolist()
        hf.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in special
                               if vocab[tokens[i]] == i])
        hf.add_tokens([AddedToken(tokens[i], special=False, normalized=False) for i in user
                       if vocab[tokens[i]] == i])
        self.hf = hf
        self._encode_special = False
        hf.encode_special_tokens = False
        del vocab, hf, tokens
        _release_freed_memory()
        return self

    def _find_eog(self, metadata: dict, vocab: dict[str, int], token_id) -> frozenset[int]:
        """End-of-generation ids, following llama.cpp's ``special_eog_ids``; marks them as control."""
        types = self._types
        eog: set[int] = set()
        for key, texts in _FIM_TEXTS.items():
            tid = token_id(key, None)
            if tid is None:
                tid = next((vocab[t] for t in texts if t in vocab), None)
            if tid is not None:
                eog.add(tid)
        for key in ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
            tid = token_id(key, None)
            if tid is not None:
                eog.add(tid)
        if self.eos_id is not None:
            eog.add(self.eos_id)
        for text in _EOG_TEXTS:
            tid = vocab.get(text)
            if tid is None:
                continue
            # (Gemma 3's "</s>" is a user-defined HTML tag, strikethrough; llama.cpp stops on it all the
            # same and makes it a control token, and so does Fireside, to tokenize exactly like it.)
            eog.add(tid)
        texts = {self._tokens[i]: i for i in eog}
        if ({"<|return|>", "<|call|>", "<|end|>"} <= texts.keys()
                or {"<|calls|>", "<|flush|>", "<|end|>"} <= texts.keys()):
            eog.discard(texts["<|end|>"])  # gpt-oss / solar-open: <|end|> ends a message, not the turn
        if "<|tool_response>" in texts and "</s>" in texts:
            eog.discard(texts["</s>"])
        for i in eog:
            types[i] = TOKEN_CONTROL  # llama.cpp overrides their type the same way
        return frozenset(eog)

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``.

        Args:
            add_special: add BOS (and EOS) as ``tokenizer.ggml.add_bos_token`` / ``add_eos_token`` say.
            parse_special: control tokens written in the text (``<|im_start|>``, ``<start_of_turn>``) become
                single tokens; otherwise they are tokenized as plain text. User-defined tokens are always
                parsed, as in llama.cpp.
        """
        with self._lock:
            if self._encode_special == parse_special:
                self._encode_special = not parse_special
                self.hf.encode_special_tokens = not parse_special
            enc = self.hf.encode(text, add_special_tokens=False) if text else None
        ids = enc.ids if enc is not None else []
        if self._whole_newlines and "\n\n" in text:
            ids = self._join_newline_words(ids, enc.word_ids)
        if add_special:
            if self.add_bos:
                ids.insert(0, self.bos_id)
            if self.add_eos:
                ids.append(self.eos_id)
        return ids

    def _join_newline_words(self, ids: list[int], word_ids: list[int | None]) -> list[int]:
        """Gemma 4 (llama.cpp's ``llm_tokenizer_bpe_session::tokenize``): a word made only of newlines
        that is itself a token becomes that token, whatever the merges say."""
        out: list[int] = []
        i = 0
        while i < len(ids):
            j = i + 1
            while j < len(ids) and word_ids[i] is not None and word_ids[j] == word_ids[i]:
                j += 1
            whole = None
            if j - i > 1:
                piece = b"".join(self.token_bytes(t) for t in ids[i:j])
                if not piece.strip(b"\n"):
                    whole = self.hf.token_to_id(piece.decode("ascii"))
            out.extend(ids[i:j] if whole is None else (whole,))
            i = j
        return out

    # ------------------------------------------------------------------ decoding
    def token_text(self, token_id: int) -> str:
        """The token's text as stored in the vocabulary (``"▁the"``, ``"Ġthe"``, ``"<0x0A>"``)."""
        return self._tokens[token_id]

    def token_type(self, token_id: int) -> int:
        """llama.cpp token type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte."""
        return int(self._types[token_id])

    def is_control(self, token_id: int) -> bool:
        """Whether the token is a control token (BOS, EOS, ``<|im_end|>``, ``<start_of_turn>``...)."""
        return 0 <= token_id < self.n_vocab and int(self._types[token_id]) == TOKEN_CONTROL

    def is_eog(self, token_id: int) -> bool:
        return token_id in self.eog_ids

    def token_bytes(self, token_id: int) -> bytes:
        """Raw bytes the token contributes to the output text (llama.cpp's ``token_to_piece``).

        Byte-level BPE tokens are mapped back to bytes, SentencePiece's "▁" becomes a space and ``<0xXX>``
        that byte; control, unknown and user-defined tokens give their text (``b"<|im_end|>"``); unused
        tokens give nothing. A multi-byte character may be spread over several tokens.
        """
        if not 0 <= token_id < self.n_vocab:
            raise IndexError(f"token id {token_id} is out of range (vocabulary of {self.n_vocab})")
        piece = self._pieces.get(token_id)
        if piece is None:
            piece = self._pieces[token_id] = self._make_piece(token_id)
        return piece

    def _make_piece(self, token_id: int) -> bytes:
        text = self._tokens[token_id]
        ttype = int(self._types[token_id])
        if ttype in (TOKEN_CONTROL, TOKEN_UNKNOWN, TOKEN_USER_DEFINED):
            return text.encode("utf-8")
        if ttype == TOKEN_BYTE:
            try:
                return bytes([int(text[3:5], 16)])
            except ValueError:
                return text.encode("utf-8")
        if ttype != TOKEN_NORMAL:
            return b""
        if not self._byte_level:
            return (text.replace(SPACE_MARK, " ") if self._escape_spaces else text).encode("utf-8")
        dec = _BYTE_DECODER
        if all(c in dec for c in text):
            return bytes(dec[c] for c in text)
        return b"".join(bytes([dec[c]]) if c in dec else c.encode("utf-8") for c in text)

    def _skipped(self, token_id: int) -> bool:
        return int(self._types[token_id]) in (TOKEN_CONTROL, TOKEN_UNKNOWN)

    def decode(self, ids: Iterable[int], *, skip_special: bool = False, clean_spaces: bool = False) -> str:
        """Text of a token sequence; invalid UTF-8 is replaced with U+FFFD.

        ``skip_special`` leaves out control and unknown tokens (BOS, ``<|im_end|>``...). As in llama.cpp,
        when ``add_space_prefix`` is set the space that encoding put in front of the text is removed again
        (unless the sequence starts with BOS). With ``clean_spaces``, the text is tidied as llama.cpp's
        ``llama_detokenize`` does for the pre-tokenizers that ask for it (:attr:`clean_spaces`: " ," -> ","
        and the like, see :func:`_clean_spaces`); by default it is the exact text, as token by token
        (``token_to_piece``, what llama.cpp streams).
        """
        ids = [int(i) for i in ids]
        if not ids:
            return ""
        strip = self.add_space_prefix and ids[0] != self.bos_id
        parts = []
        for n, tid in enumerate(ids):
            if skip_special and self._skipped(tid):
                piece = b""
            else:
                piece = self.token_bytes(tid)
            if n == 0 and strip and piece.startswith(b" "):
                piece = piece[1:]
            parts.append(piece)
        text = b"".join(parts).decode("utf-8", errors="replace")
        return _clean_spaces(text) if clean_spaces and self.clean_spaces else text

    def stream_decoder(self, *, skip_special: bool = False) -> "StreamDecoder":
        """An incremental detokenizer for generated tokens (see :class:`StreamDecoder`)."""
        return StreamDecoder(self, skip_special=skip_special)

    def __repr__(self) -> str:
        return (f"Tokenizer(model={self.model!r}, pre={self.pre!r}, n_vocab={self.n_vocab}, bos={self.bos_id}, "
                f"eos={self.eos_id}, add_bos={self.add_bos})")


class StreamDecoder:
    """Turns tokens into text one at a time, never emitting half a UTF-8 character.

    The pieces pushed so far, joined, always decode to what :meth:`push` returned plus what is pending:
    ``"".join(push(t) for t in ids) + flush() == tokenizer.decode(ids)`` (for models without
    ``add_space_prefix``; the stream keeps a leading space, since generated text continues a prompt).
    """

    def __init__(self, tokenizer: Tokenizer, *, skip_special: bool = False):
        self._tok = tokenizer
        self._skip = skip_special
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Add a token; return the text it completes (may be ``""`` inside a multi-byte character)."""
        if self._skip and self._tok._skipped(token_id):
            return ""
        return self._dec.decode(self._tok.token_bytes(token_id))

    def flush(self) -> str:
        """Whatever is still pending (an incomplete character becomes U+FFFD); the decoder is reset."""
        out = self._dec.decode(b"", final=True)
        self._dec.reset()
        return out

    @property
    def pending(self) -> bytes:
        """Bytes of an incomplete character held back so far."""
        return self._dec.getstate()[0]
