"""The desktop app in a real X window (a script, not a test: ``make real-window``).

Starts Xvfb, runs ``fireside gui`` on Qt's xcb platform (not offscreen), drives it with xdotool as a
person would (keys typed into whatever has the focus, no widget calls), and saves screenshots of the
main states to ``build/screenshots/``: the welcome page, a chat with a code block, the settings dialog,
the model library, and a chat whose reply has a ``<think>`` section (collapsed, with its stats line).
No reasoning model is on the package registry, so that chat is written to the app's store before the
window opens, as an imported chat would be: the window renders what it reads. Then it checks, from the app's own SQLite store, that the words typed right
after the model loaded reached the chat (focus in the input) and that Ctrl+Q quit with status 0.

    .venv/bin/python tests/real_window.py [-m MODEL.gguf] [-o build/screenshots]

Needs Xvfb, xdotool, xwd and the libraries of Qt's xcb plugin (``make real-window`` installs Debian's
packages when it can). Exit status 1 with a message when a step fails. Conversations and settings live in a temporary data dir.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "Write a Python function that returns the square of a number."
REASONING_QUESTION = "Is 97 a prime number?"
REASONING_REPLY = ("<think>\nThe user asks whether 97 is prime. Its square root is below 10, so it is enough to try "
                   "2, 3, 5 and 7: 97 is odd, its digits sum to 16, it does not end in 0 or 5, and 7 x 13 = 91, "
                   "7 x 14 = 98. No divisor, so it is prime.\n</think>\n\nYes. **97 is prime**: no whole number "
                   "from 2 to 9 divides it evenly.")


class Step(Exception):
    """A step of the walk-through failed (its message says which)."""


def _run(*cmd: str, env: dict, timeout: float = 30) -> str:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=True).stdout


def _window(env: dict, timeout_s: float = 60, name: str = "Fireside$") -> str:
    """The id of the visible window whose title matches ``name`` (default: the main window)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], env=env,
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.split():
            return r.stdout.split()[0]
        time.sleep(0.5)
    raise Step(f"no window titled {name!r} appeared")


def xwd_to_png(data: bytes, png: Path) -> None:
    """Write an X window dump (xwd's ZPixmap, 24/32 bits per pixel, X11's XWDFile.h header) as an RGB PNG
    (PNG spec: IHDR, one zlib IDAT, IEND), with numpy and zlib only."""
    import struct
    import zlib

    import numpy as np

    h = struct.unpack(">25I", data[:100])
    header_size, width, height, byte_order = h[0], h[4], h[5], h[7]
    bits_per_pixel, bytes_per_line, ncolors = h[11], h[12], h[19]
    masks = h[14:17]
    if bits_per_pixel not in (24, 32):
        raise Step(f"xwd: {bits_per_pixel} bits per pixel is not handled (run Xvfb at depth 24)")
    start, bpp = header_size + 12 * ncolors, bits_per_pixel // 8
    lines = np.frombuffer(data, np.uint8, count=height * bytes_per_line, offset=start).reshape(height, bytes_per_line)
    px = lines[:, :width * bpp].reshape(height, width, bpp).astype(np.uint32)
    order = range(bpp) if byte_order == 0 else reversed(range(bpp))  # 0: least significant byte first
    rows = sum(px[..., i] << np.uint32(8 * k) for k, i in enumerate(order))
    rgb = np.stack([(rows & m) >> (int(m).bit_length() - 8) for m in masks], axis=-1).astype(np.uint8)
    raw = b"".join(b"\0" + rgb[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _shot(env: dict, out: Path, name: str, window: str | None = None) -> Path:
    """Save the screen (or one window: dialogs are captured by id, as Xvfb has no compositor) as PNG."""
    where = ["-id", window] if window else ["-root"]
    dump = subprocess.run(["xwd", *where, "-silent"], env=env, capture_output=True, check=True, timeout=30).stdout
    png = out / f"{name}.png"
    xwd_to_png(dump, png)
    print(f"  {png}")
    return png


def _focus(env: dict, name: str = "Fireside$") -> None:
    """Give a window the X keyboard focus (Xvfb has no window manager to do it): which widget inside it
    gets the keys is the app's own business, and what the walk-through checks."""
    _run("xdotool", "windowfocus", "--sync", _window(env, name=name), env=env)


def _key(env: dict, *keys: str, window: str = "Fireside$") -> None:
    _focus(env, window)
    _run("xdotool", "key", "--clearmodifiers", *keys, env=env)


def _messages(data: Path) -> list[tuple[str, str]]:
    db = data / "conversations.sqlite3"
    if not db.is_file():
        return []
    with sqlite3.connect(db) as c:
        return c.execute("SELECT role, content FROM messages ORDER BY id").fetchall()


def _app(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", "gui", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _quit(env: dict, proc: subprocess.Popen) -> None:
    _key(env, "ctrl+q")
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Step("Ctrl+Q did not quit within 30 s") from None
    if rc != 0:
        raise Step(f"the app exited with status {rc}: {proc.stderr.read()[-2000:]}")


def walk(model: Path, out: Path, env: dict, data: Path) -> None:
    """The walk-through; raises Step when something is not as a user would expect."""
    print("welcome page (no model yet)")
    app = _app(env)
    _window(env)
    time.sleep(2)
    _shot(env, out, "welcome")
    _quit(env, app)

    print(f"chat with {model.name}")
    app = _app(env, str(model))
    _window(env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # loaded: the settings file records it as the last model
        if (data / "settings.ini").is_file() and model.name in (data / "settings.ini").read_text(errors="replace"):
            break
        time.sleep(0.5)
    time.sleep(1)
    # Typed at once, with no click: the focus must be in the message input after the load.
    _focus(env)
    _run("xdotool", "type", "--delay", "15", PROMPT, env=env)
    _key(env, "Return")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        msgs = _messages(data)
        if any(r == "assistant" for r, _ in msgs):
            break
        time.sleep(1)
    msgs = _messages(data)
    if ("user", PROMPT) not in msgs:
        raise Step(f"the typed message did not reach the chat (focus not in the input?): {msgs}")
    if not any(r == "assistant" and c.strip() for r, c in msgs):
        raise Step("no reply within 180 s")
    time.sleep(1)
    _shot(env, out, "chat")

    print("settings")
    _key(env, "ctrl+comma")
    dialog = _window(env, 20, "^Settings$")
    time.sleep(2)
    _shot(env, out, "settings", dialog)
    _key(env, "Escape", window="^Settings$")
    time.sleep(1)

    print("model library")
    _key(env, "ctrl+m")
    dialog = _window(env, 20, "^Model library$")
    time.sleep(4)
    _shot(env, out, "model-library", dialog)
    _key(env, "Escape", window="^Model library$")
    time.sleep(1)
    _quit(env, app)

    print("a reply with a <think> section (a saved chat: no reasoning model on the registry)")
    from gui.conversations import ConversationStore

    store = ConversationStore(data / "conversations.sqlite3")
    conv = store.create(REASONING_QUESTION)
    store.append(conv.id, "user", REASONING_QUESTION)
    store.append(conv.id, "assistant", REASONING_REPLY,
                 stats={"n_prompt": 31, "n_reused": 0, "n_generated": 96, "prefill_s": 0.06, "decode_s": 0.71,
                        "finish_reason": "stop", "context_full": False})
    store.close()
    app = _app(env, str(model))  # the most recent chat opens with the window
    _window(env)
    time.sleep(4)
    _shot(env, out, "reasoning")
    if not any(c == REASONING_REPLY for r, c in _messages(data) if r == "assistant"):
        raise Step("the saved chat with reasoning was not kept")
    _quit(env, app)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", default=None, help="the .gguf (default: the starter model)")
    p.add_argument("-o", "--output", default=str(ROOT / "build" / "screenshots"))
    p.add_argument("--display", default=":77")
    args = p.parse_args(argv)
    missing = [t for t in ("Xvfb", "xdotool", "xwd") if shutil.which(t) is None]
    if missing:
        print(f"real_window: missing {', '.join(missing)} (Debian: apt-get install xvfb xdotool x11-apps)",
              file=sys.stderr)
        return 1
    from engine.cli import resolve_model

    model = resolve_model(args.model) if args.model else resolve_model(None)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="fireside-real-window-"))
    env = {**os.environ, "DISPLAY": args.display, "QT_QPA_PLATFORM": "xcb", "FIRESIDE_DATA_DIR": str(data)}
    env.pop("WAYLAND_DISPLAY", None)
    # Greedy and short: the same reply each run.
    from gui.settings import AppSettings, Settings

    os.environ["FIRESIDE_DATA_DIR"] = str(data)
    Settings().save(AppSettings(temperature=0.0, seed=1, max_tokens=120, n_ctx=1024, theme="light",
                                models_dir=str(model.parent)))
    xvfb = subprocess.Popen(["Xvfb", args.display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        if xvfb.poll() is not None:
            print(f"real_window: Xvfb did not start on {args.display}", file=sys.stderr)
            return 1
        walk(model, out, env, data)
    except (Step, subprocess.SubprocessError) as exc:
        print(f"real_window: {exc}", file=sys.stderr)
        return 1
    finally:
        xvfb.terminate()
        xvfb.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    print(f"real window: all steps passed; screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
