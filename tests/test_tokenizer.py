"""Tokenizer on the real starter models: ids equal llama.cpp's (../shared/reference/token_ids.json),
decoding round-trips, streaming never splits a character, special tokens, BOS, vocab-only files, the
SentencePiece merge derivation and its pruning, the compact token-text arrays, and memory use."""
from __future__ import annotations

import json
import logging
import random
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
