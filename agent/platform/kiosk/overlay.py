"""The kiosk's own screens, drawn above the browser: `python -m agent.platform.kiosk.overlay`.

Started by the kiosk platform in the client's X session (it runs as the agent's user, not the
client's, so the client cannot end it). It reads one JSON object per line on stdin, each
setting one part of what is shown, and writes one JSON object per line on stdout for what the
person did. End of stdin ends it.

    in:  {"lang": "fi"}
         {"lock": null | {"lost": bool, "message": str|null, "phone": str|null}}
         {"banner": null | str}
         {"message": {"id": int, "text": str}}
         {"consent": null | {"id": str, "caller": str, "purpose": str, "mode": "view"|"control"}}
         {"indicator": null | {"caller": str}}
         {"chat": str}
         {"pointer": null | [x, y]}          fractions of the screen
    out: {"event": "ready", "width": int, "height": int}
         {"event": "dismissed", "id": int}
         {"event": "asked", "id": str, "allow": [x, y], "deny": [x, y]}   the question is shown
         {"event": "consent", "id": str, "accepted": bool}
         {"event": "end"}                    the indicator's end button
         {"event": "chat", "text": str}      the person's answer

There is no window manager in the kiosk session, so the windows are override-redirect: no
title bar, nothing to close or move them with. The lock screen and the questions take the
keyboard and pointer (a global grab, as screen lockers do), and every window is raised again
in its order a few times a second, so a browser window opened later cannot cover them.
Stacking, lowest first: banner, indicator, pointer, message, lock screen, consent question
(the person must be able to answer a remote-support request even on a locked device).
"""

from __future__ import annotations

import json
import os
import sys
import tkinter as tk
from typing import Any

from agent.platform.kiosk.texts import consent_purpose, text

FONT = "DejaVu Sans"
RAISE_MS = 400

# Colours with at least 7:1 contrast for their text (WCAG AAA for large text).
LOCK_BG, LOCK_FG = "#1b2733", "#ffffff"
LOST_BG = "#3b1d1d"
BANNER_BG, BANNER_FG = "#ffe08a", "#1a1a1a"
SHARE_BG, SHARE_FG = "#0b5394", "#ffffff"
DIALOG_BG, DIALOG_FG = "#ffffff", "#111111"
BUTTON_BG, BUTTON_FG = "#0b5394", "#ffffff"
DENY_BG = "#4a4f55"
ENTRY_BG = "#fafafa"
BAR_BUTTON_BG, BAR_BUTTON_FG = "#ffd166", "#111111"  # on the indicator
POINTER = "#e6007e"


class Overlay:
    """The windows of the kiosk's own screens, driven by JSON lines."""

    def __init__(self, root: tk.Tk, out: Any = sys.stdout) -> None:
        self.root = root
        self.out = out
        self.lang = "fi"
        self.width = root.winfo_screenwidth()
        self.height = root.winfo_screenheight()
        self.windows: dict[str, tk.Toplevel] = {}
        self.messages: list[dict[str, Any]] = []
        self.consent: dict[str, Any] | None = None
        self.chat_lines: list[str] = []
        self.caller: str | None = None
        self.grabbed: str | None = None

    # --- input

    def handle(self, command: dict[str, Any]) -> None:
        for key, value in command.items():
            method = getattr(self, f"set_{key}", None)
            if method is None:
                raise ValueError(f"unknown overlay command {key!r}")
            method(value)
        self._regrab()

    def set_lang(self, value: str) -> None:
        self.lang = value

    def set_lock(self, value: dict[str, Any] | None) -> None:
        self._close("lock")
        if value is None:
            return
        lost = bool(value.get("lost"))
        win = self._window("lock", 0, 0, self.width, self.height, LOST_BG if lost else LOCK_BG)
        title = text("lost_title" if lost else "locked_title", self.lang)
        message = value.get("message") or (text("lost_default", self.lang) if lost else "")
        self._label(win, title, 44, LOCK_FG, bold=True).pack(pady=(self.height // 5, 30))
        if message:
            self._label(win, message, 28, LOCK_FG).pack(padx=80, pady=10)
        if value.get("phone"):
            phone = f"{text('phone', self.lang)}: {value['phone']}"
            self._label(win, phone, 34, LOCK_FG, bold=True).pack(pady=30)

    def set_banner(self, value: str | None) -> None:
        self._close("banner")
        if value:
            win = self._window("banner", 0, 0, self.width, 72, BANNER_BG)
            self._label(win, value, 22, BANNER_FG).pack(expand=True, padx=20, pady=14)
            win.update_idletasks()
            win.geometry(f"{self.width}x{max(72, win.winfo_reqheight())}+0+0")

    def set_message(self, value: dict[str, Any]) -> None:
        self.messages.append(value)
        if "message" not in self.windows:
            self._show_message()

    def set_consent(self, value: dict[str, Any] | None) -> None:
        self._close("consent")
        self.consent = value
        if value is None:
            return
        win = self._window("consent", 0, 0, self.width, self.height, DIALOG_BG)
        key = "consent_control" if value.get("mode") == "control" else "consent_view"
        self._label(win, text("consent_title", self.lang), 36, DIALOG_FG, bold=True).pack(
            pady=(self.height // 6, 20)
        )
        self._label(win, text(key, self.lang, caller=value["caller"]), 28, DIALOG_FG).pack(
            padx=60, pady=20
        )
        # Why, in the professional's words, or a neutral sentence when they gave none.
        why = consent_purpose(value.get("purpose"), self.lang)
        self._label(win, why, 26, DIALOG_FG).pack(padx=60, pady=10)
        buttons = tk.Frame(win, bg=DIALOG_BG)
        buttons.pack(pady=40)
        allow = self._button(buttons, text("allow", self.lang), lambda: self._answer(True))
        allow.pack(side="left", padx=30)
        deny = self._button(
            buttons, text("deny", self.lang), lambda: self._answer(False), bg=DENY_BG
        )
        deny.pack(side="left", padx=30)
        win.update_idletasks()
        # Where the answers are on the screen (for benchmarks and tests that tap them).
        self._emit(
            {"event": "asked", "id": value["id"], "allow": _centre(allow), "deny": _centre(deny)}
        )

    def set_indicator(self, value: dict[str, Any] | None) -> None:
        self._close("indicator")
        self.caller = None if value is None else value["caller"]
        self.chat_lines = []
        if value is not None:
            self._draw_indicator()

    def set_chat(self, value: str) -> None:
        self.chat_lines = [*self.chat_lines, value][-3:]
        if self.caller is not None:
            self._close("indicator")
            self._draw_indicator()

    def set_pointer(self, value: list[float] | None) -> None:
        if value is None:
            self._close("pointer")
            return
        x = min(max(float(value[0]), 0.0), 1.0) * self.width
        y = min(max(float(value[1]), 0.0), 1.0) * self.height
        size = 28
        left, top = int(x) - size // 2, int(y) - size // 2
        win = self.windows.get("pointer")
        if win is None:
            self._window("pointer", left, top, size, size, POINTER)
        else:
            win.geometry(f"{size}x{size}+{left}+{top}")

    # --- the windows

    def _draw_indicator(self) -> None:
        win = self._window("indicator", 0, self.height - 96, self.width, 96, SHARE_BG)
        row = tk.Frame(win, bg=SHARE_BG)
        row.pack(fill="x", padx=20, pady=10)
        self._label(
            row, text("sharing", self.lang, caller=self.caller or ""), 22, SHARE_FG, bold=True
        ).pack(side="left")
        end = self._button(
            row,
            text("end", self.lang),
            lambda: self._emit({"event": "end"}),
            bg=BAR_BUTTON_BG,
            fg=BAR_BUTTON_FG,
        )
        end.pack(side="right")
        for line in self.chat_lines:
            self._label(win, f"{self.caller}: {line}", 20, SHARE_FG).pack(anchor="w", padx=20)
        if self.chat_lines:
            answer = tk.Frame(win, bg=SHARE_BG)
            answer.pack(fill="x", padx=20, pady=(4, 10))
            entry = tk.Entry(answer, font=(FONT, 20), bg=ENTRY_BG, relief="flat")
            entry.pack(side="left", fill="x", expand=True, ipady=8)
            # No window manager gives the keyboard to a window that is tapped, and Tk never
            # gives it to an override-redirect window: take it through Xlib.
            entry.bind("<Button-1>", lambda _event: self._take_keyboard(entry))

            def send(_event: object = None) -> None:
                reply = entry.get().strip()
                if reply:
                    entry.delete(0, "end")
                    self._emit({"event": "chat", "text": reply})

            entry.bind("<Return>", send)
            self._button(
                answer, text("send", self.lang), send, bg=BAR_BUTTON_BG, fg=BAR_BUTTON_FG
            ).pack(side="left", padx=10)
        win.update_idletasks()
        height = win.winfo_reqheight()
        win.geometry(f"{self.width}x{height}+0+{self.height - height}")

    def _show_message(self) -> None:
        if not self.messages:
            return
        message = self.messages[0]
        win = self._window("message", 0, 0, self.width, self.height, DIALOG_BG)
        self._label(win, text("message_title", self.lang), 36, DIALOG_FG, bold=True).pack(
            pady=(self.height // 5, 20)
        )
        self._label(win, message["text"], 28, DIALOG_FG).pack(padx=60, pady=20)

        def dismiss() -> None:
            self.messages.pop(0)
            self._close("message")
            self._emit({"event": "dismissed", "id": message["id"]})
            self._show_message()
            self._regrab()

        self._button(win, text("ok", self.lang), dismiss).pack(pady=40)

    def _answer(self, accepted: bool) -> None:
        consent = self.consent
        self.set_consent(None)
        self._regrab()
        if consent is not None:
            self._emit({"event": "consent", "id": consent["id"], "accepted": accepted})

    def _window(self, name: str, x: int, y: int, w: int, h: int, bg: str) -> tk.Toplevel:
        self._close(name)
        win = tk.Toplevel(self.root, bg=bg)
        win.overrideredirect(True)
        win.geometry(f"{w}x{h}+{x}+{y}")
        self.windows[name] = win
        win.update_idletasks()
        self._raise()
        return win

    def _close(self, name: str) -> None:
        win = self.windows.pop(name, None)
        if win is not None:
            if self.grabbed == name:
                win.grab_release()
                self.grabbed = None
            win.destroy()

    def _label(
        self, parent: tk.Misc, words: str, size: int, fg: str, bold: bool = False
    ) -> tk.Label:
        font = (FONT, size, "bold") if bold else (FONT, size)
        return tk.Label(
            parent, text=words, font=font, fg=fg, bg=parent["bg"], wraplength=self.width - 160
        )

    def _button(
        self,
        parent: tk.Misc,
        words: str,
        command: Any,
        bg: str = BUTTON_BG,
        fg: str = BUTTON_FG,
    ) -> tk.Button:
        return tk.Button(
            parent,
            text=words,
            command=command,
            font=(FONT, 26, "bold"),
            bg=bg,
            fg=fg,
            activebackground=bg,
            activeforeground=fg,
            padx=36,
            pady=18,
            borderwidth=0,
        )

    def _take_keyboard(self, widget: tk.Widget) -> None:
        widget.focus_set()
        try:
            from Xlib import X
            from Xlib import display as xdisplay

            connection = xdisplay.Display()
            try:
                # The keyboard follows the pointer, which is on the tapped box (the browser
                # takes the keyboard back when it is tapped).
                connection.set_input_focus(X.PointerRoot, X.RevertToPointerRoot, X.CurrentTime)
                connection.sync()
            finally:
                connection.close()
        except Exception as exc:  # noqa: BLE001 - typing then goes where the pointer is
            sys.stderr.write(f"overlay: cannot take the keyboard: {exc}\n")

    def _regrab(self) -> None:
        """The topmost window that takes all input gets the grab (questions before the lock)."""
        for name in ("consent", "lock", "message"):
            win = self.windows.get(name)
            if win is None:
                continue
            if self.grabbed != name:
                win.update_idletasks()
                try:
                    win.grab_set_global()
                    win.focus_force()
                    self.grabbed = name
                except tk.TclError:
                    self.grabbed = None  # not viewable yet: tried again on the next raise
            return
        self.grabbed = None

    def _raise(self) -> None:
        for name in ("banner", "indicator", "pointer", "message", "lock", "consent"):
            win = self.windows.get(name)
            if win is not None:
                win.lift()

    def _emit(self, event: dict[str, Any]) -> None:
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()


def _centre(widget: tk.Widget) -> list[int]:
    return [
        widget.winfo_rootx() + widget.winfo_width() // 2,
        widget.winfo_rooty() + widget.winfo_height() // 2,
    ]


def main() -> int:
    root = tk.Tk()
    root.withdraw()
    overlay = Overlay(root)
    fd = sys.stdin.fileno()
    pending = bytearray()

    def readable(_file: object, _mask: int) -> None:
        """Tk's event loop calls this when stdin has data: no polling while nothing happens."""
        chunk = os.read(fd, 65536)
        if not chunk:
            root.tk.deletefilehandler(fd)
            root.quit()
            return
        pending.extend(chunk)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            try:
                overlay.handle(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                sys.stderr.write(f"overlay: bad command {line[:200]!r}: {exc}\n")

    def keep_on_top() -> None:
        if overlay.windows:
            overlay._raise()
            if overlay.grabbed is None:
                overlay._regrab()
        root.after(RAISE_MS, keep_on_top)

    overlay._emit({"event": "ready", "width": overlay.width, "height": overlay.height})
    root.tk.createfilehandler(fd, tk.READABLE, readable)
    root.after(RAISE_MS, keep_on_top)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
