"""Tokenizer built from a GGUF file's ``tokenizer.ggml.*`` metadata alone, on the ``tokenizers`` library.

It reproduces llama.cpp's tokenizer (``src/llama-vocab.cpp``), which is the behavioural reference:

* ``tokenizer.ggml.model = "gpt2"``: byte-level BPE. The text is split by the pre-tokenizer regexes that
  llama.cpp uses for ``tokenizer.ggml.pre`` (applied one after the other, like ``unicode_regex_split``),
  each piece is mapped byte -> printable unicode character (GPT-2's byte encoder), then BPE merges from
  ``tokenizer.ggml.merges`` are applied by rank. Pre-tokenizers ``llama3``/``llama-bpe`` and friends also
  set ``ignore_merges`` (a piece that is a whole token is taken as is), as llama.cpp does.
* ``tokenizer.ggml.model = "llama"``: SentencePiece (llama.cpp's "SPM" tokenizer). Spaces become U+2581
  ("▁"), "▁" is prepended to each run of text only when ``tokenizer.ggml.add_space_prefix`` is true (it
  is false for Gemma), then the highest-scoring adjacent pair whose concatenation is a token is merged,
  again and again; characters left without a token fall back to ``<0xXX>`` byte tokens. This is a BPE
  whose merges are every split ``(a, b)`` of every token ``a + b`` with both halves in the vocabulary,
  ranked by the merged token's score - the standard conversion (transformers' GGUF converter does the
  same). Deriving those ~515k merges for Gemma 3's 262k vocabulary is vectorized with numpy (see
  :func:`_spm_merges`); with the ``tokenizers`` BPE constructor, which needs about as long again, the
  whole build takes about 1.5 s on a small 2-core machine.

Special tokens, as in llama.cpp's ``tokenizer_st_partition``: control (token type 3) and unknown (2)
tokens written in the text are parsed as single tokens only with ``parse_special=True``; user-defined
tokens (4: Gemma's ``"\\n"``, runs of spaces and tabs, HTML tags...) are always split out first.

Detokenizing mirrors llama.cpp's ``token_to_piece``: :meth:`Tokenizer.token_bytes` gives the raw bytes of
one token and text is assembled from bytes, so a multi-byte character split over several tokens (byte
fallback, byte-level BPE) comes out whole. :class:`StreamDecoder` never emits half a UTF-8 character.
llama.cpp's ``clean_spaces`` post-processing (" ," -> ",", used by a few BPE pre-tokenizers) is not
applied: decoding here always gives back the exact text that was encoded.

End of generation (:attr:`Tokenizer.eog_ids`) follows llama.cpp's ``special_eog_ids`` exactly, quirks
included: SmolLM2's ``<reponame>`` (taken for a fill-in-the-middle token) and Gemma 3's ``</s>`` (an HTML
tag there) end generation and count as control tokens, as they do in llama.cpp.

Known approximations (both need contrived input): when two *different* merges of equal score compete,
llama.cpp takes the leftmost while a BPE takes the better-ranked; and when two special tokens overlap in
the text, llama.cpp matches the longer one first while ``tokenizers`` takes the leftmost-longest.
"""
from __future__ import annotations

import codecs
import gc
import logging
import threading
from pathlib import Path
from typing import Iterable

import numpy as np
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

log = logging.getLogger(__name__)

# llama.cpp's token types (``llama_token_type``), as stored in ``tokenizer.ggml.token_type``.
TOKEN_UNDEFINED = 0
TOKEN_NORMAL = 1
TOKEN_UNKNOWN = 2
TOKEN_CONTROL = 3
TOKEN_USER_DEFINED = 4
TOKEN_UNUSED = 5
TOKEN_BYTE = 6

SUPPORTED_MODELS = {"gpt2": "byte-level BPE", "llama": "SentencePiece"}

SPACE_MARK = "\u2581"  # "▁", SentencePiece's escaped space

# --- pre-tokenizer regexes, as in llama.cpp's llm_tokenizer_bpe (one after the other) -------------------
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_REGEXES: dict[str, tuple[str, ...]] = {
    "default": (r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"),
    "gpt2": (_GPT2,),
    "llama3": (_LLAMA3,),
    "smollm": (r"\p{N}", _GPT2),
    "qwen2": (_QWEN2,),
    "falcon": (r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, r"[0-9][0-9][0-9]"),
}
# tokenizer.ggml.pre -> (regex family, ignore_merges, default add_bos)
_PRE_TYPES: dict[str, tuple[str, bool, bool]] = {
    "default": ("default", False, False),
    **{name: ("llama3", True, True) for name in (
        "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2")},
    **{name: ("llama3", False, False) for name in ("dbrx", "smaug-bpe", "chatglm-bpe", "glm4")},
    **{name: ("gpt2", False, False) for name in (
        "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
        "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais",
        "exaone4", "trillion", "granite-docling")},
    **{name: ("smollm", False, False) for name in (
        "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b")},
    **{name: ("qwen2", False, False) for name in (
        "qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan", "grok-2")},
    "falcon": ("falcon", False, False),
}

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


class TokenizerError(ValueError):
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
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value[:1]):
        raise TokenizerError(f"{source}: {key} must be an array of strings")
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
_HASH_EXACT_ABOVE = 256  # merges of tokens longer than this are also checked string by string


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads a polynomial hash so that its top bits can index a table."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _spm_merges(tokens: list[str], scores: np.ndarray) -> list[tuple[str, str]]:
    """Every split ``(a, b)`` of every token ``t = a + b`` where both halves are tokens, best score first.

    A Python loop over the ~1.5M split points of Gemma 3's 262k vocabulary takes about a second, so this
    is vectorized with numpy: two independent polynomial hashes (mod 2**64) of every prefix are computed
    column by column, halves are looked up by hash in an open table, and a split is kept only if both
    hashes and the lengths of both halves agree (merges of very long tokens are also compared as strings).
    Falls back to the plain loop if two tokens of the vocabulary share a hash.
    """
    n = len(tokens)
    lens = np.fromiter(map(len, tokens), dtype=np.int64, count=n)
    maxlen = int(lens.max()) if n else 0
    if maxlen < 2:
        return []
    cps = np.frombuffer("".join(tokens).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    offs = np.zeros(n, dtype=np.int64)
    np.cumsum(lens[:-1], out=offs[1:])
    p1, p2 = _HASH_BASES
    one = np.uint64(1)
    with np.errstate(over="ignore"):
        order = np.argsort(-lens, kind="stable")  # longest first: the tokens longer than k lead
        n_longer = np.searchsorted(-lens[order], -np.arange(maxlen + 1), side="left")
        offs_o = offs[order]
        h1 = np.zeros(n, dtype=np.uint64)
        h2 = np.zeros(n, dtype=np.uint64)
        cand_tok, cand_k, cand_h1, cand_h2 = [], [], [], []
        for k in range(maxlen):
            m = int(n_longer[k])
            c = cps[offs_o[:m] + k]
            h1[:m] = h1[:m] * p1 + c + one
            h2[:m] = h2[:m] * p2 + (c ^ np.uint64(0x5BD1E995)) + one
            split = int(n_longer[k + 1])  # tokens longer than k + 1 can be cut after k + 1 characters
            if split:
                cand_tok.append(order[:split])
                cand_k.append(np.full(split, k + 1, dtype=np.int64))
                cand_h1.append(h1[:split].copy())
                cand_h2.append(h2[:split].copy())
        full1 = np.empty(n, dtype=np.uint64)
        full2 = np.empty(n, dtype=np.uint64)
        full1[order] = h1
        full2[order] = h2
        tok = np.concatenate(cand_tok)
        k = np.concatenate(cand_k)
        a1 = np.concatenate(cand_h1)
        a2 = np.concatenate(cand_h2)
        pow1 = np.ones(maxlen + 1, dtype=np.uint64)
        pow2 = np.ones(maxlen + 1, dtype=np.uint64)
        for i in range(1, maxlen + 1):
            pow1[i] = pow1[i - 1] * p1
            pow2[i] = pow2[i - 1] * p2

        sorted_idx = np.argsort(full1)
        sorted_full = full1[sorted_idx]
        if np.any(sorted_full[1:] == sorted_full[:-1]):
            return _spm_merges_slow(tokens, scores)
        bits = max(16, int(np.ceil(np.log2(n))) + 4)
        shift = np.uint64(64 - bits)
        slots = (_mix64(full1) >> shift).astype(np.int64)
        table = np.full(1 << bits, -1, dtype=np.int32)
        table[slots] = np.arange(n, dtype=np.int32)
        crowded = np.bincount(slots, minlength=1 << bits) > 1

        def lookup(q1: np.ndarray, q2: np.ndarray, qlen: np.ndarray) -> np.ndarray:
            """Index of the token with hashes (q1, q2) and length qlen, or -1."""
            slot = (_mix64(q1) >> shift).astype(np.int64)
            j = table[slot]
            again = np.nonzero(crowded[slot])[0]
            if again.size:  # several tokens in that slot: binary search instead
                p = np.minimum(np.searchsorted(sorted_full, q1[again]), n - 1)
                j[again] = sorted_idx[p]
            jj = np.maximum(j, 0)
            hit = (j >= 0) & (full1[jj] == q1) & (full2[jj] == q2) & (lens[jj] == qlen)
            return np.where(hit, jj, -1)

        ja = lookup(a1, a2, k)
        keep = np.nonzero(ja >= 0)[0]
        tok, k, ja, a1, a2 = tok[keep], k[keep], ja[keep], a1[keep], a2[keep]
        rest = lens[tok] - k
        jb = lookup(full1[tok] - a1 * pow1[rest], full2[tok] - a2 * pow2[rest], rest)
        keep = np.nonzero(jb >= 0)[0]
        tok, k, ja, jb = tok[keep], k[keep], ja[keep], jb[keep]

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
    rank = np.argsort(by_score[tok] * (maxlen + 1) + (maxlen - k), kind="stable")
    tok, k = tok[rank], k[rank]
    # Build all halves at once: gather their characters (each followed by a separator that no token
    # contains) into one UTF-32 buffer, decode it and split it. Much faster than slicing 1M strings.
    sep = next((c for c in (0, 1, 0xFFFF, 0x10FFFF) if not np.any(cps == c)), None)
    if sep is None:
        return [(tokens[t][:i], tokens[t][i:]) for t, i in zip(tok.tolist(), k.tolist())]
    lefts = _gather_strings(cps, offs[tok], k, sep)
    rights = _gather_strings(cps, offs[tok] + k, lens[tok] - k, sep)
    return list(zip(lefts, rights))


def _gather_strings(cps: np.ndarray, starts: np.ndarray, lengths: np.ndarray, sep: int) -> list[str]:
    """The strings ``cps[starts[i]:starts[i] + lengths[i]]`` (code points), as a list of str."""
    ends = np.cumsum(lengths + 1) - 1  # where each string's separator goes
    src = np.arange(int(ends[-1]) + 1) + np.repeat(starts - (ends - lengths), lengths + 1)
    out = np.take(cps, src, mode="clip").astype(np.uint32)
    out[ends] = sep
    return out[:-1].tobytes().decode("utf-32-le").split(chr(sep))


def _spm_merges_slow(tokens: list[str], scores: np.ndarray) -> list[tuple[str, str]]:
    vocab = set(tokens)
    found = [(-float(scores[i]), i, -k, t[:k], t[k:]) for i, t in enumerate(tokens)
             for k in range(1, len(t)) if t[:k] in vocab and t[k:] in vocab]
    found.sort(key=lambda x: x[:3])
    return [(a, b) for _, _, _, a, b in found]


class Tokenizer:
    """A GGUF model's tokenizer; build it with :meth:`from_metadata` or :meth:`from_gguf`.

    Attributes:
        model: ``tokenizer.ggml.model`` (``"gpt2"`` or ``"llama"``).
        pre: ``tokenizer.ggml.pre`` as used (``"default"`` when absent).
        n_vocab: number of tokens.
        bos_id, eos_id: beginning/end of sequence ids, or ``None``.
        add_bos, add_eos: whether :meth:`encode` adds them when ``add_special=True``.
        add_space_prefix: SentencePiece only, "▁" is prepended to each run of text.
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
        self.eog_ids: frozenset[int] = frozenset()
        self.hf: HFTokenizer | None = None
        self._tokens: list[str] = []
        self._types = np.zeros(0, dtype=np.int32)
        self._pieces: list[bytes | None] = []
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
        model = metadata.get("tokenizer.ggml.model")
        if model is None:
            raise TokenizerError(f"{source}: the file has no tokenizer (tokenizer.ggml.model is missing)")
        if model not in SUPPORTED_MODELS:
            supported = ", ".join(f"'{k}' ({v})" for k, v in SUPPORTED_MODELS.items())
            raise TokenizerError(f"{source}: tokenizer model '{model}' is not supported; supported: {supported}")
        tokens = metadata.get("tokenizer.ggml.tokens")
        if tokens is None:
            raise TokenizerError(f"{source}: tokenizer.ggml.tokens is missing")
        tokens = _as_str_list(tokens, "tokenizer.ggml.tokens", source)
        n = len(tokens)
        if n == 0:
            raise TokenizerError(f"{source}: tokenizer.ggml.tokens is empty")
        if "" in tokens:  # llama.cpp does the same
            tokens = [t or f"[EMPTY_{i}]" for i, t in enumerate(tokens)]

        self = cls()
        self.model = model
        self.n_vocab = n
        self._tokens = tokens
        types = _as_array(metadata.get("tokenizer.ggml.token_type"), "tokenizer.ggml.token_type", n, np.int32, source)
        self._types = np.full(n, TOKEN_NORMAL, dtype=np.int32) if types is None else types.copy()
        self._pieces = [None] * n

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
            ignore_merges, default_add_bos = False, True
            self.add_space_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", True))
        else:
            pre = metadata.get("tokenizer.ggml.pre") or "default"
            if pre not in _PRE_TYPES:
                log.warning("%s: unknown pre-tokenizer '%s', using GPT-2's; tokenization may differ from "
                            "llama.cpp", source, pre)
                family, ignore_merges, default_add_bos = "gpt2", False, False
            else:
                family, ignore_merges, default_add_bos = _PRE_TYPES[pre]
            self.pre = pre
            self.add_space_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", False))
        self.bos_id = token_id("tokenizer.ggml.bos_token_id", 1 if spm else None)
        self.eos_id = token_id("tokenizer.ggml.eos_token_id", 2 if spm else None)
        self.unk_id = token_id("tokenizer.ggml.unknown_token_id", 0 if spm else None)
        self.add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", default_add_bos))
        self.add_eos = bool(metadata.get("tokenizer.ggml.add_eos_token", False))
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
                merges = _spm_merges(tokens, scores)
                unk = tokens[self.unk_id] if self.unk_id is not None else None
                bpe = models.BPE(vocab, merges, unk_token=unk, fuse_unk=True, byte_fallback=True)
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
                bpe = models.BPE(vocab, merges, ignore_merges=ignore_merges)
                hf = HFTokenizer(bpe)
                hf.pre_tokenizer = pre_tokenizers.Sequence(
                    [pre_tokenizers.Split(Regex(rx), behavior="isolated") for rx in _REGEXES[family]]
                    + [pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
                hf.decoder = decoders.ByteLevel()
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
            ids = self.hf.encode(text, add_special_tokens=False).ids if text else []
        if add_special:
            if self.add_bos:
                ids.insert(0, self.bos_id)
            if self.add_eos:
                ids.append(self.eos_id)
        return ids

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
        piece = self._pieces[token_id]
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
        if self.model == "llama":
            return text.replace(SPACE_MARK, " ").encode("utf-8")
        dec = _BYTE_DECODER
        if all(c in dec for c in text):
            return bytes(dec[c] for c in text)
        return b"".join(bytes([dec[c]]) if c in dec else c.encode("utf-8") for c in text)

    def _skipped(self, token_id: int) -> bool:
        return int(self._types[token_id]) in (TOKEN_CONTROL, TOKEN_UNKNOWN)

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        """Text of a token sequence; invalid UTF-8 is replaced with U+FFFD.

        ``skip_special`` leaves out control and unknown tokens (BOS, ``<|im_end|>``...). As in llama.cpp,
        when ``add_space_prefix`` is set the space that encoding put in front of the text is removed again
        (unless the sequence starts with BOS).
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
        return b"".join(parts).decode("utf-8", errors="replace")

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
