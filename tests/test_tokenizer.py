"""Tokenizer on the real starter models: ids equal llama.cpp's (tests/reference/token_ids.json),
decoding round-trips, streaming never splits a character, special tokens, BOS, vocab-only files, every
pre-tokenizer llama.cpp knows (against llama.cpp itself, through llama-cpp-python, on vocab-only files
made from SmolLM2's vocabulary), the SentencePiece merge derivation and its pruning, the compact
token-text arrays, and memory use."""
from __future__ import annotations

import ctypes
import json
import logging
import random
import re
import subprocess
import sys

import gguf
import numpy as np
import pytest

import engine.tokenizer as tokenizer_module
from conftest import GEMMA3_FILE, REFERENCE_DIR, ROOT, SMOLLM2_FILE, model_path, reference_file
from engine.gguf_file import GGUFError, GGUFFile, StringArray
from engine.tokenizer import (StreamDecoder, Tokenizer, TokenizerError, _initial_symbol_texts, _spm_merges,
                              _spm_merges_slow)

MODELS = {"SmolLM2-135M-Instruct.Q4_1": SMOLLM2_FILE, "gemma-3-270m-q4_k_m": GEMMA3_FILE}

_metadata_cache: dict[str, dict] = {}
_tokenizer_cache: dict[str, Tokenizer] = {}


def metadata_for(filename: str) -> dict:
    if filename not in _metadata_cache:
        _metadata_cache[filename] = GGUFFile(model_path(filename)).metadata
    return _metadata_cache[filename]


def tokenizer_for(filename: str) -> Tokenizer:
    """The tokenizer of a starter model, built once per test session (fails if the file is missing)."""
    if filename not in _tokenizer_cache:
        _tokenizer_cache[filename] = Tokenizer.from_metadata(metadata_for(filename), source=filename)
    return _tokenizer_cache[filename]


def _reference_cases() -> list:
    path = REFERENCE_DIR / "token_ids.json"
    if not path.is_file():  # collected anyway, so that the test fails with a clear message
        return [pytest.param(None, 0, id="token_ids.json-missing")]
    data = json.loads(path.read_text())
    return [pytest.param(model, i, id=f"{model.split('-')[0]}-{i}")
            for model in MODELS for i in range(len(data.get(model, [])))] or \
        [pytest.param(None, 0, id="token_ids.json-empty")]


def reference(model: str) -> list[dict]:
    data = json.loads(reference_file("token_ids.json").read_text())
    if model not in data:
        pytest.fail(f"token_ids.json has no entry for {model}")
    return data[model]


EXTRA_TEXTS = ["", " ", "  x", "x  ", "\n", "\n\n\n", "a\tb\t\tc", "\r\n", "¿Qué tal?", "naïve ﬁ café",
               "e\u0301", "中文字符", "😀 👍🏽", "<b>bold</b>", "\x00\x01", "a" * 300 + " end",
               "<start_of_turn>user", "<|im_start|>x", "    indented\n\tcode()"]


each_model = pytest.mark.parametrize("filename", list(MODELS.values()), ids=["smollm2", "gemma3"])


# ---------------------------------------------------------------------------------------------- llama.cpp
@pytest.mark.parametrize(("model", "index"), _reference_cases())
def test_ids_match_llama_cpp(model, index):
    if model is None:
        reference_file("token_ids.json")  # fails, naming the file
        pytest.fail("token_ids.json holds no reference strings")
    case = reference(model)[index]
    tok = tokenizer_for(MODELS[model])
    assert tok.encode(case["text"], add_special=True, parse_special=True) == case["ids"], case["text"]


def test_reference_covers_both_models():
    for model in MODELS:
        assert len(reference(model)) >= 5


# ---------------------------------------------------------------------------------------------- decoding
def texts_for(filename: str) -> list[str]:
    model = next(m for m, f in MODELS.items() if f == filename)
    return [c["text"] for c in reference(model)] + EXTRA_TEXTS


@each_model
def test_round_trip(filename):
    tok = tokenizer_for(filename)
    for text in texts_for(filename):
        ids = tok.encode(text, add_special=False)
        assert tok.decode(ids) == text, text
        assert tok.decode(tok.encode(text, parse_special=False, add_special=False)) == text, text


@each_model
def test_decode_with_bos_and_skip_special(filename):
    tok = tokenizer_for(filename)
    ids = tok.encode("Hello there", add_special=True)
    text = tok.decode(ids)
    if tok.add_bos:
        assert text == tok.token_text(tok.bos_id) + "Hello there"
    assert tok.decode(ids, skip_special=True) == "Hello there"


def stream(tok: Tokenizer, ids: list[int]) -> list[str]:
    dec = tok.stream_decoder()
    assert isinstance(dec, StreamDecoder)
    return [dec.push(i) for i in ids] + [dec.flush()]


@each_model
def test_stream_decode_equals_decode_and_never_splits_a_character(filename):
    tok = tokenizer_for(filename)
    for text in texts_for(filename):
        ids = tok.encode(text, add_special=False)
        chunks = stream(tok, ids)
        assert "".join(chunks) == tok.decode(ids) == text
        done = ""
        for chunk in chunks:
            assert "\ufffd" not in chunk
            done += chunk
            assert text.startswith(done)  # every chunk ends on a character boundary


@each_model
def test_stream_holds_back_partial_characters(filename):
    tok = tokenizer_for(filename)
    model = next(m for m, f in MODELS.items() if f == filename)
    text = next(c["text"] for c in reference(model) if "🦙" in c["text"])
    ids = tok.encode(text, add_special=False)
    pieces = [tok.token_bytes(i) for i in ids]
    assert any(p and not _is_complete_utf8(p) for p in pieces), "expected a character split over tokens"
    dec = tok.stream_decoder()
    emitted = b""
    for i, tid in enumerate(ids):
        emitted += dec.push(tid).encode("utf-8")
        # everything complete so far is out, and nothing more
        assert emitted == _complete_prefix(b"".join(pieces[:i + 1]))
    assert dec.flush() == "" and emitted == text.encode("utf-8")
    # an incomplete character left at the end is flushed as U+FFFD
    cut = next(i for i in range(len(ids)) if not _is_complete_utf8(b"".join(pieces[:i + 1])))
    dec = tok.stream_decoder()
    out = "".join(dec.push(t) for t in ids[:cut + 1])
    assert "\ufffd" not in out
    assert dec.flush() == "\ufffd"


def _is_complete_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _complete_prefix(data: bytes) -> bytes:
    for cut in range(len(data), -1, -1):
        if _is_complete_utf8(data[:cut]):
            return data[:cut]
    return b""


def test_token_bytes():
    sm = tokenizer_for(SMOLLM2_FILE)
    assert sm.token_bytes(2) == b"<|im_end|>"
    assert sm.token_bytes(sm.encode(" the", add_special=False)[0]) == b" the"
    assert sm.token_bytes(sm.encode("\n", add_special=False)[0]) == b"\n"
    ge = tokenizer_for(GEMMA3_FILE)
    assert ge.token_text(248) == "<0x0A>" and ge.token_bytes(248) == b"\n"
    assert ge.token_bytes(105) == b"<start_of_turn>"
    assert ge.token_bytes(ge.encode(" world", add_special=False)[0]) == b" world"
    with pytest.raises(IndexError):
        ge.token_bytes(ge.n_vocab)


# ---------------------------------------------------------------------------------------------- specials
def test_special_tokens_parsed():
    sm = tokenizer_for(SMOLLM2_FILE)
    text = "<|im_start|>user\nHi<|im_end|>\n"
    ids = sm.encode(text)
    assert ids[0] == 1 and 2 in ids
    plain = sm.encode(text, parse_special=False)
    assert 1 not in plain and 2 not in plain and len(plain) > len(ids)
    assert sm.decode(plain) == text
    assert sm.is_control(1) and sm.is_control(2) and not sm.is_control(ids[1])

    ge = tokenizer_for(GEMMA3_FILE)
    ids = ge.encode("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
    assert ids[:2] == [2, 105] and ids.count(105) == 2 and ids.count(106) == 1
    plain = ge.encode("<start_of_turn>user\n\nHi", parse_special=False)
    assert 105 not in plain
    assert 108 in plain  # "\n\n" is a user-defined token: always parsed, as in llama.cpp
    assert ge.is_control(105) and ge.is_control(106) and not ge.is_control(108)


def test_bos_eos_and_eog():
    sm = tokenizer_for(SMOLLM2_FILE)
    assert (sm.bos_id, sm.eos_id, sm.add_bos, sm.add_eos) == (1, 2, False, False)
    assert sm.encode("Hi") == sm.encode("Hi", add_special=False)
    # <|endoftext|>, <|im_end|>, and <reponame> (a fill-in-the-middle token llama.cpp also stops on)
    assert sm.eog_ids == {0, 2, 4}

    ge = tokenizer_for(GEMMA3_FILE)
    assert (ge.bos_id, ge.eos_id, ge.add_bos, ge.add_eos) == (2, 1, True, False)
    assert ge.encode("Hi") == [2] + ge.encode("Hi", add_special=False)
    assert ge.encode("") == [2] and ge.encode("", add_special=False) == []
    # <eos>, <end_of_turn>, and "</s>": llama.cpp stops on it too (and makes it a control token)
    assert ge.eog_ids == {1, 106, 212} and ge.token_text(212) == "</s>" and ge.is_control(212)
    assert ge.n_vocab == 262144 and sm.n_vocab == 49152


# ---------------------------------------------------------------------------------------------- files
def write_vocab_only(src: dict, path) -> None:
    """A GGUF with only the tokenizer metadata of ``src`` (no tensors)."""
    w = gguf.GGUFWriter(str(path), src["general.architecture"])
    V = gguf.GGUFValueType
    for key, value in src.items():
        if not key.startswith("tokenizer."):
            continue
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, (list, StringArray)):
            w.add_key_value(key, list(value), V.ARRAY, sub_type=V.STRING)
        elif isinstance(value, np.ndarray):
            sub = V.FLOAT32 if value.dtype.kind == "f" else V.INT32
            w.add_key_value(key, value.tolist(), V.ARRAY, sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()


@each_model
def test_vocab_only_file(tmp_path, filename):
    path = tmp_path / "vocab-only.gguf"
    write_vocab_only(metadata_for(filename), path)
    assert GGUFFile(path).tensors == {}
    vocab_only = Tokenizer.from_gguf(path)
    full = tokenizer_for(filename)
    model = next(m for m, f in MODELS.items() if f == filename)
    for text in [c["text"] for c in reference(model)] + EXTRA_TEXTS:
        assert vocab_only.encode(text) == full.encode(text), text
    assert (vocab_only.bos_id, vocab_only.eos_id, vocab_only.add_bos, vocab_only.eog_ids) == \
        (full.bos_id, full.eos_id, full.add_bos, full.eog_ids)


def test_unsupported_tokenizer_model():
    meta = {"tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": ["[PAD]", "a"]}
    with pytest.raises(TokenizerError) as err:
        Tokenizer.from_metadata(meta, source="some.gguf")
    msg = str(err.value)
    assert "some.gguf" in msg and "'bert'" in msg and "gpt2" in msg and "llama" in msg
    with pytest.raises(TokenizerError, match="no tokenizer"):
        Tokenizer.from_metadata({"general.architecture": "llama"})
    with pytest.raises(TokenizerError, match="tokenizer.ggml.tokens"):
        Tokenizer.from_metadata({"tokenizer.ggml.model": "gpt2"})
    with pytest.raises(TokenizerError, match="merges"):
        Tokenizer.from_metadata({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a", "b"]})


def test_unknown_pre_tokenizer_falls_back_to_gpt2(caplog):
    meta = dict(metadata_for(SMOLLM2_FILE))
    meta["tokenizer.ggml.pre"] = "no-such-pre"
    with caplog.at_level(logging.WARNING, logger="engine.tokenizer"):
        tok = Tokenizer.from_metadata(meta, source="x.gguf")
    assert "no-such-pre" in caplog.text
    # GPT-2's regex keeps " 12" together where SmolLM2's isolates every digit
    pieces = [p for p, _ in tok.hf.pre_tokenizer.pre_tokenize_str(" 12")]
    assert pieces == ["\u012012"]
    smollm = tokenizer_for(SMOLLM2_FILE)
    assert [p for p, _ in smollm.hf.pre_tokenizer.pre_tokenize_str(" 12")] == ["\u0120", "1", "2"]
    assert tok.decode(tok.encode("Hello world! 12345")) == "Hello world! 12345"


# ---------------------------------------------------------------------------------------------- pre-tokenizers
# Every name of llama.cpp's `tokenizer_pre == "..."` chain (llama_vocab::impl::load in src/llama-vocab.cpp,
# the llama.cpp of llama-cpp-python 0.3.36), "default" standing for a missing tokenizer.ggml.pre.
LLAMA_CPP_PRE_NAMES = (
    "default minicpm5 llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano "
    "deepseek-llm deepseek-coder deepseek-v3 spark2_5 youtu falcon mpt starcoder gpt-2 phi-2 jina-es jina-de "
    "gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert jais-2 gemma4 granite-embed-multi-311m "
    "sarvam-moe jina-v1-en jina-v2-code roberta-bpe whitespace refact command-r qwen2 deepseek-r1-qwen kormo "
    "f2llmv2 qwen35 stablelm2 olmo dbrx smaug-bpe poro-chat chatglm-bpe glm4 glm5 viking jais tekken smollm "
    "codeshell bloom gpt3-finnish exaone exaone4 exaone-moe chameleon minerva-7b megrez gpt-4o llama4 kanana2 "
    "talkie granite-embed-multi-97m tiny_aya cohere2moe superbpe trillion granite-docling bailingmoe "
    "bailingmoe2 llada-moe seed-coder hunyuan hunyuan-dense hy_v4 joyai-llm kimi-k2 ufakzeka grok-2 afmoe "
    "laguna minimax-m2 solar-open mellum2").split()
# Pre-tokenizers on plain UTF-8 (no GPT-2 byte encoding): also tried with <0xXX> byte tokens in the vocabulary.
RAW_PRE_NAMES = ("gemma4", "sarvam-moe", "whitespace")
PRE_CASES = ([pytest.param("gpt2", name, False, id=name) for name in LLAMA_CPP_PRE_NAMES]
             + [pytest.param("gpt2", name, True, id=f"{name}+bytes") for name in RAW_PRE_NAMES]
             + [pytest.param("gemma4", "", True, id="model=gemma4"), pytest.param("gpt2", "", False, id="no-pre")])

PRE_TEXTS = [
    "Hello world", "1234567 and 12,345.678, x  1234 y 1 22 333 4444", "I'm, you'll, we'd, THEY'RE 's 'T 'Ve",
    "中文字符 한국어 日本語のテキスト カタカナ 々〆 \U00020001\uf900", "😀 👍🏽 🦙 ©®™ €", "a  b   c    d\t\te  \t f",
    "\n\n\nx\n \n", "line1\r\nline2\r\rend", "¿Qué tal? naïve café e\u0301 Straße Ωmega ĳ Ǆ ǅ ﬁ",
    "def f(x):\n    return x**2 + 1  # comment\n\n\n", "<|im_start|>user\nHi<|im_end|>\n", "  leading and trailing  ",
    " HelloWorld camelCase ABCdef XMLHttpRequest", "x = [1, 2, 3]; y = {'a': 4} // <b>", "<sentinel:12> IMGIMGABZ",
    "...!!! ??? ,,, —— 「引用」。、！", "١٢٣ ४५६ ²½ Ⅻ", "\u00a0nbsp\u3000ideographic\u2028line\u0085nel",
    "$100 + 50% = #1 @home ~tilde `tick` |pipe| ^caret", "", " ", "\t", "a" * 40 + " " + "9" * 20,
]


def _random_texts(count: int) -> list[str]:
    """Seeded jumbles of the characters the pre-tokenizers treat differently."""
    rng = random.Random(1234)
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + [" "] * 10
                + list("\n\r\t'sStTmMdDrReEvVlL!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + list("中文日本語のカナ한국어ㄱ々")
                + list("\u00a0\u3000\u2028\u0085\u000b\u001céßΩЖअ\u0301\u0903😀🦙€©…“”—。，！１２３٣²")
                + ["\U00020001", "\u0378", "<|im_end|>", "  ", "   ", "1234"])
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(count)]


PRE_TEXTS += _random_texts(48)


def import_llama_cpp():
    """llama-cpp-python, the reference these tests compare with: its absence fails them, never skips."""
    try:
        import llama_cpp
    except ImportError as exc:
        pytest.fail(f"llama-cpp-python is not installed ({exc}); the tokenizer tests compare with llama.cpp "
                    "through it (it is part of the test extra: pip install -e '.[test]')")
    return llama_cpp


class PreVocabFiles:
    """Vocab-only GGUF files with SmolLM2's byte-level BPE vocabulary under any ``tokenizer.ggml.pre``.

    The vocabulary is SmolLM2's first 8000 tokens and the merges that make them (SmolLM2 numbers its
    tokens in merge order), plus " HelloWorld" and " camelCase" with no merge that makes them (so that
    ``ignore_merges`` shows) and, with ``byte_tokens``, the 256 ``<0xXX>`` tokens and two runs of plain
    newlines (Gemma 4's newline rule). No tokenizer.ggml.add_bos_token: each pre-tokenizer's default
    applies. The llama.* hyper-parameters are copied too: llama.cpp reads them even for vocab-only files.
    """

    N_TOKENS = 8000

    def __init__(self, folder):
        self.folder = folder
        meta = metadata_for(SMOLLM2_FILE)
        self.meta = meta
        tokens = meta["tokenizer.ggml.tokens"].tolist()[:self.N_TOKENS]
        known = set(tokens)
        self.merges = [m for m in meta["tokenizer.ggml.merges"].tolist()[:self.N_TOKENS]
                       if m.replace(" ", "") in known]
        self.tokens = tokens + ["\u0120HelloWorld", "\u0120camelCase"]
        self.types = meta["tokenizer.ggml.token_type"].tolist()[:self.N_TOKENS] + [1, 1]
        self.paths: dict[tuple, object] = {}

    def path(self, model: str, pre: str, byte_tokens: bool):
        key = (model, pre, byte_tokens)
        if key not in self.paths:
            path = self.folder / f"{model}-{pre or 'none'}{'-bytes' if byte_tokens else ''}.gguf"
            tokens, types = list(self.tokens), list(self.types)
            if byte_tokens:
                tokens += [f"<0x{b:02X}>" for b in range(256)] + ["\n\n", "\n\n\n"]
                types += [6] * 256 + [1, 1]
            w = gguf.GGUFWriter(str(path), "llama")
            for key_name, value in self.meta.items():
                if key_name.startswith("llama."):
                    (w.add_float32 if isinstance(value, float) else w.add_uint32)(key_name, value)
            w.add_string("tokenizer.ggml.model", model)
            if pre:
                w.add_string("tokenizer.ggml.pre", pre)
            w.add_token_list(tokens)
            w.add_token_types(types)
            w.add_token_merges(self.merges)
            w.add_bos_token_id(1)
            w.add_eos_token_id(2)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.close()
            self.paths[key] = path
        return self.paths[key]


@pytest.fixture(scope="session")
def pre_vocab_files(tmp_path_factory) -> PreVocabFiles:
    return PreVocabFiles(tmp_path_factory.mktemp("pre-vocab"))


def texts_llama_cpp_takes(pre: str) -> list[str]:
    """PRE_TEXTS, except that for "whitespace" a run of spaces and other white space is one space: llama.cpp
    aborts on it (a BPE word with a space fails the assertion in llama_vocab::find_bpe_rank)."""
    if pre != "whitespace":
        return PRE_TEXTS
    return [re.sub(r"\s*[ ]\s*", " ", text) for text in PRE_TEXTS]


@pytest.mark.parametrize(("model", "pre", "byte_tokens"), PRE_CASES)
def test_pre_tokenizer_ids_match_llama_cpp(pre_vocab_files, model, pre, byte_tokens):
    """Each pre-tokenizer llama.cpp knows gives llama.cpp's ids (llama.cpp live, from the same vocab-only
    file), with and without BOS (each pre-tokenizer's default add_bos), special tokens parsed."""
    llama_cpp = import_llama_cpp()
    assert (pre or "default") in tokenizer_module._PRE_TYPES, f"Fireside does not know pre-tokenizer {pre!r}"
    path = pre_vocab_files.path(model, pre, byte_tokens)
    tok = Tokenizer.from_gguf(path)
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        for text in texts_llama_cpp_takes(pre):
            for add_bos in (True, False):
                want = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
                got = tok.encode(text, add_special=add_bos)
                assert got == want, (text, add_bos, [tok.token_text(i) for i in got],
                                     [tok.token_text(i) for i in want])
            if pre != "whitespace":  # (llama.cpp byte-decodes its plain-UTF-8 tokens: mojibake)
                ids = tok.encode(text, add_special=False)
                assert b"".join(tok.token_bytes(i) for i in ids) == llm.detokenize(ids, special=True), text
    finally:
        llm.close()


def test_pre_tokenizer_settings():
    """The flags that go with a pre-tokenizer name, as llama-vocab.cpp sets them."""
    pre = tokenizer_module._PRE_TYPES
    assert sorted(pre) == sorted(LLAMA_CPP_PRE_NAMES)
    assert pre["llama3"].ignore_merges and pre["llama3"].add_bos and pre["llama3"].clean_spaces
    assert pre["glm4"].ignore_merges and not pre["chatglm-bpe"].ignore_merges
    assert pre["tekken"] == pre["tekken"]._replace(ignore_merges=True, add_bos=True, clean_spaces=False)
    assert not pre["deepseek-v3"].clean_spaces and pre["megrez"].clean_spaces and not pre["qwen2"].clean_spaces
    assert pre["gemma4"].escape_whitespaces and pre["sarvam-moe"].escape_whitespaces
    assert pre["deepseek-v3"].regexes == "deepseek3-llm" and pre["qwen35"].regexes == "qwen35"


def test_clean_spaces_as_llama_detokenize(pre_vocab_files):
    """decode(..., clean_spaces=True) is llama_detokenize's text; plain decode keeps the exact text."""
    llama_cpp = import_llama_cpp()
    text = "Hello , world ! It 's ok . You 're here ? I ' m don 't , a ,b .c ?d !"
    for pre, cleans in (("gpt-2", True), ("smollm", False), ("megrez", True), ("deepseek-llm", False)):
        path = pre_vocab_files.path("gpt2", pre, False)
        tok = Tokenizer.from_gguf(path)
        assert tok.clean_spaces == cleans
        ids = tok.encode(text, add_special=False)
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        try:
            tokens = (llama_cpp.llama_token * len(ids))(*ids)
            buf = ctypes.create_string_buffer(1024)
            n = llama_cpp.llama_detokenize(llm._model.vocab, tokens, len(ids), buf, len(buf), False, True)
        finally:
            llm.close()
        assert tok.decode(ids, clean_spaces=True) == buf.raw[:n].decode("utf-8")
        assert tok.decode(ids) == text
    assert tokenizer_module._clean_spaces("Hi , you ' re ' s") == "Hi, you're's"


def test_pre_tokenizer_quirks_of_llama_cpp():
    """Places where llama.cpp's splitting is not its regex read literally (src/unicode.cpp), kept here."""
    def pieces(pre: str, text: str) -> list[str]:
        tok = Tokenizer.from_metadata({**metadata_for(SMOLLM2_FILE), "tokenizer.ggml.pre": pre})
        dec = tokenizer_module._BYTE_DECODER
        return [bytes(dec[c] for c in p).decode("utf-8") for p, _ in tok.hf.pre_tokenizer.pre_tokenize_str(text)]

    # AFMoE (and tiny_aya): digits in threes from the right, the text before them glued to the first group
    assert pieces("afmoe", "x  1234") == ["x", " ", " ", "1", "234"]
    # tiny_aya: \p{Lu} and \p{Ll} are both "a letter", so camel case is not split
    assert pieces("tiny_aya", "HelloWorld") == ["HelloWorld"]
    assert pieces("gpt-4o", "HelloWorld") == ["Hello", "World"]
    # deepseek-coder: the CJK class [ࠀ-一] does not take U+2028 (llama.cpp makes it U+000B first)
    assert pieces("deepseek-coder", "> \u2028") == ["> \u2028"]
    # kimi-k2: Han runs apart from other letters
    assert pieces("kimi-k2", "abc中文def") == ["abc", "中文", "def"]


# ---------------------------------------------------------------------------------------------- SentencePiece
def tiny_spm(add_space_prefix: bool) -> Tokenizer:
    tokens = ["<unk>", "<s>", "</s>", "\u2581", "a", "b", "c", "ab", "bc", "abc", "\u2581a", "\u2581ab"] + \
        [f"<0x{b:02X}>" for b in range(256)]
    scores = [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -10.0, -5.0, -20.0, -6.0, -30.0] + [0.0] * 256
    types = [2, 3, 3] + [1] * 9 + [6] * 256
    return Tokenizer.from_metadata({
        "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": np.array(scores, dtype=np.float32),
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
        "tokenizer.ggml.add_space_prefix": add_space_prefix,
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
    }, source="tiny")


def test_spm_merges_highest_score_first():
    tok = tiny_spm(add_space_prefix=False)
    # "bc" (-5) beats "ab" (-10), then "a" + "bc" -> "abc"
    assert tok.encode("abc", add_special=False) == [tok.hf.token_to_id("abc")]
    # unknown characters fall back to bytes
    assert tok.encode("é", add_special=False) == [12 + 0xC3, 12 + 0xA9]
    assert tok.decode(tok.encode("ab é", add_special=False)) == "ab é"
    assert tok.encode("ab", add_special=True) == [1, 7]


def test_spm_add_space_prefix():
    tok = tiny_spm(add_space_prefix=True)
    ids = tok.encode("ab", add_special=False)
    assert [tok.token_text(i) for i in ids] == ["\u2581ab"]
    assert tok.decode(ids) == "ab"  # the added space is removed again, as llama.cpp does
    assert tok.decode(tok.encode("ab")) == "<s> ab"  # ... except after BOS (llama.cpp keeps it there)
    assert tok.decode(tok.encode("ab a")) == "<s> ab a"
    # as in llama.cpp, "▁" is prepended again to the text after a special token
    assert [tok.token_text(i) for i in tok.encode("a</s>a", add_special=False)] == ["\u2581a", "</s>", "\u2581a"]


def test_fast_merge_derivation_is_exact():
    rng = np.random.default_rng(0)
    edge = _initial_symbol_texts("<unk>")
    for filename, count in ((SMOLLM2_FILE, None), (GEMMA3_FILE, 60000)):
        tokens = metadata_for(filename)["tokenizer.ggml.tokens"].tolist()
        tokens = tokens if count is None else tokens[-count:]  # Gemma's tail: CJK, emoji, long words
        scores = rng.permutation(len(tokens)).astype(np.float32)
        assert _spm_merges(tokens, scores) == _spm_merges_slow(tokens, scores)
        pruned = _spm_merges(tokens, scores, prune=True, edge_texts=edge)
        assert pruned == _spm_merges_slow(tokens, scores, prune=True, edge_texts=edge)


def test_pruned_merges_change_no_token_id(monkeypatch):
    """The merges left out as dead never fire: Gemma 3's tokenizer built with every merge gives the same
    ids on text made of every left-out merge (alone, repeated, with random neighbours) and on ordinary
    text. (Pruning with "<=" instead of "<" in _dead_merges fails here, on runs like "\\x02" * 4.)"""
    meta = metadata_for(GEMMA3_FILE)
    tokens = meta["tokenizer.ggml.tokens"].tolist()
    types = meta["tokenizer.ggml.token_type"]
    every = _spm_merges(tokens, meta["tokenizer.ggml.scores"])
    kept = set(_spm_merges(tokens, meta["tokenizer.ggml.scores"], prune=True,
                           edge_texts=_initial_symbol_texts("<unk>")))
    left_out = [m for m in every if m not in kept]
    assert len(left_out) > len(every) // 5  # the pruning is at work (about 30% on Gemma 3)

    pruned = tokenizer_for(GEMMA3_FILE)  # built (or cached) before the patch below
    real = tokenizer_module._spm_merge_ids
    monkeypatch.setattr(tokenizer_module, "_spm_merge_ids", lambda *a, **k: real(*a, **{**k, "prune": False}))
    unpruned = Tokenizer.from_metadata(meta, source="every merge")
    assert unpruned.hf.get_vocab_size() == pruned.hf.get_vocab_size()

    rng = random.Random(0)
    normal = [t for t, ty in zip(tokens, types.tolist()) if ty == 1]

    def context() -> str:
        word = rng.choice(normal)
        return rng.choice(["", word, word[rng.randrange(len(word)):], word[:rng.randint(1, len(word))]])

    texts = texts_for(GEMMA3_FILE) + [reference_file("texts/apache-2.0.txt").read_text()]
    texts += [context() + x + y + context() for x, y in rng.sample(left_out, 1000)]
    for text in (t.replace("\u2581", " ") for t in texts):
        for parse_special in (True, False):
            assert pruned.encode(text, parse_special=parse_special) == \
                unpruned.encode(text, parse_special=parse_special), text
    for i in range(0, len(left_out), 64):  # every left-out merge, alone and repeated ("aaaa")
        group = left_out[i:i + 64]
        for text in (" ".join(x + y for x, y in group), "".join((x + y) * 2 for x, y in group)):
            text = text.replace("\u2581", " ")
            assert pruned.encode(text) == unpruned.encode(text), text


# ---------------------------------------------------------------------------------------------- memory
_MEMORY_PROBE = """
import json, sys
from engine.gguf_file import GGUFFile
from engine.tokenizer import Tokenizer

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))

start = status("RssAnon")
gf = GGUFFile(sys.argv[1])
opened_anon, opened_rss = status("RssAnon"), status("VmRSS")
tok = Tokenizer.from_metadata(gf.metadata)
assert tok.n_vocab > 0
print(json.dumps({"metadata": opened_anon - start, "steady": status("VmRSS") - opened_rss,
                  "peak": status("VmHWM") - opened_rss}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_gemma_vocabulary_memory(gemma3_path):
    """In a fresh process (MiB): the parsed metadata, the tokenizer kept after building it, and the
    peak while building (VmHWM; ru_maxrss would count the forked pytest process). Measured on Linux:
    about 8, 66 and 145 (they were 24, 150 and 310 with the metadata as a list of str and every merge
    built as Python tuples); the bounds leave room for other allocators and library versions, not for
    the old way."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(gemma3_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    mib = json.loads(out.stdout)
    assert mib["metadata"] < 16, mib
    assert mib["steady"] < 100, mib
    assert mib["peak"] < 220, mib


# ---------------------------------------------------------------------------------------------- string arrays
def write_strings(path, values: list) -> None:
    """A GGUF holding one array of strings (``str`` or raw ``bytes``) as tokenizer.ggml.tokens."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_key_value("tokenizer.ggml.tokens", values, gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.STRING)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()


def test_string_array_reads_like_a_list(tmp_path):
    values = ["<pad>", "", "a", "caf\u00e9", "\u4e2d\u6587", "\U0001f600 x", "\n", "<0x0A>", "a"]
    write_strings(tmp_path / "s.gguf", values)
    arr = GGUFFile(tmp_path / "s.gguf").metadata["tokenizer.ggml.tokens"]
    assert isinstance(arr, StringArray)
    assert len(arr) == len(values) and list(arr) == values and arr.tolist() == values
    assert arr == values and values == arr and arr != values[:-1] and arr != ["x"] * len(values)
    assert arr == StringArray.from_strings(values)
    assert [arr[i] for i in range(-len(values), len(values))] == values + values
    assert arr[2:6] == values[2:6] and arr[::-1] == values[::-1]
    assert "caf\u00e9" in arr and "" in arr and "\U0001f600 x" in arr
    assert "caf" not in arr and "b" not in arr and 3 not in arr
    assert arr.index("a") == 2 and arr.count("a") == 2
    assert arr.data == "".join(values).encode("utf-8") and arr.offsets[-1] == len(arr.data)
    with pytest.raises(IndexError):
        arr[len(values)]
    with pytest.raises(TypeError):
        hash(arr)
    # the Gemma vocabulary: the same strings as gguf's own reader on its first and last entries
    tokens = metadata_for(GEMMA3_FILE)["tokenizer.ggml.tokens"]
    assert isinstance(tokens, StringArray) and len(tokens) == 262144
    assert len(tokens.data) + tokens.offsets.nbytes < 6 * 2**20


def test_string_array_bad_utf8_and_truncation(tmp_path):
    # "a\xc3" + "\xa9b" is valid UTF-8 as a whole ("a\u00e9b") but not element by element
    for values, bad in (([b"ok", b"\xff", b"z"], 1), ([b"ok", b"a\xc3", b"\xa9b"], 1), ([b"\xa9"], 0)):
        write_strings(tmp_path / "bad.gguf", values)
        with pytest.raises(GGUFError, match=f"element {bad} of tokenizer.ggml.tokens is not valid UTF-8"):
            GGUFFile(tmp_path / "bad.gguf")
    write_strings(tmp_path / "cut.gguf", ["first", "second", "third"])
    data = (tmp_path / "cut.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:data.index(b"second") + 3])
    with pytest.raises(GGUFError, match="truncated .*element 1 of tokenizer.ggml.tokens"):
        GGUFFile(tmp_path / "cut.gguf")


def test_empty_token_texts_get_placeholders():
    """As in llama.cpp, an empty token text becomes "[EMPTY_<id>]"."""
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": StringArray.from_strings(["a", "", "b", "ab"]),
            "tokenizer.ggml.merges": ["a b"]}
    tok = Tokenizer.from_metadata(meta)
    assert tok.token_text(1) == "[EMPTY_1]" and tok.token_text(3) == "ab"
    assert tok.encode("ab") == [3]
