"""One browser window in the kiosk: any other that the person opens (Ctrl+N, a link that
opens a window) is closed as a window manager would close it (WM_DELETE_WINDOW).

There is no window manager in the kiosk session, and Chromium has no policy against new
windows; a second window would cover the first, with no way to switch back. The session's
watcher calls `close_extra_windows` once a second.
"""

from __future__ import annotations

import logging
from typing import Any

from Xlib import X, error
from Xlib import display as xdisplay
from Xlib.ext import dpms, screensaver
from Xlib.protocol import event

log = logging.getLogger(__name__)

BROWSER_CLASSES = frozenset({"Chromium", "chromium", "Chromium-browser"})
MIN_SIZE = 100  # Chromium's own helper windows are tiny


class WindowGuard:
    """Watches the top-level windows of one X display."""

    def __init__(self, display: str) -> None:
        self.display_name = display
        self._display: Any = None
        self._browser_class: dict[int, bool] = {}  # window id -> of the browser (never changes)

    def close(self) -> None:
        if self._display is not None:
            try:
                self._display.close()
            except Exception:  # noqa: BLE001 - a display already gone
                pass
            self._display = None
            self._browser_class.clear()

    def browser_windows(self) -> list[Any]:
        """Viewable browser windows, bottom first (the X stacking order)."""
        display = self._connect()
        found = []
        children = display.screen().root.query_tree().children
        known = {window.id for window in children}
        for gone in set(self._browser_class) - known:
            del self._browser_class[gone]
        for window in children:
            try:
                browser = self._browser_class.get(window.id)
                if browser is None:
                    wm_class = window.get_wm_class()
                    browser = bool(wm_class) and wm_class[-1] in BROWSER_CLASSES
                    self._browser_class[window.id] = browser
                if not browser:
                    continue
                attributes = window.get_attributes()
                if attributes.map_state != X.IsViewable or attributes.override_redirect:
                    continue
                geometry = window.get_geometry()
            except error.XError:
                continue  # gone meanwhile
            if geometry.width < MIN_SIZE or geometry.height < MIN_SIZE:
                continue
            found.append(window)
        return found

    def close_extra_windows(self) -> int:
        """Ask every browser window but the first to close; how many were asked."""
        try:
            windows = self.browser_windows()
            display = self._connect()
            protocols = display.intern_atom("WM_PROTOCOLS")
            delete = display.intern_atom("WM_DELETE_WINDOW")
            for window in windows[1:]:
                message = event.ClientMessage(
                    window=window,
                    client_type=protocols,
                    data=(32, [delete, X.CurrentTime, 0, 0, 0]),
                )
                window.send_event(message, event_mask=X.NoEventMask)
                log.info("kiosk: closed a second browser window")
            display.flush()
            return max(len(windows) - 1, 0)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
            log.debug("kiosk: cannot look at the windows: %s", exc)
            self.close()
            return 0

    def screen_on(self) -> bool | None:
        """Whether the screen shows anything: not blanked by the X server's screen saver and
        not put to sleep by DPMS (on servers that have it: Xorg on a real screen, not Xvfb);
        None when the display cannot be asked."""
        try:
            display = self._connect()
            if display.has_extension("MIT-SCREEN-SAVER"):
                info = display.screen().root.screensaver_query_info()
                if info.state == screensaver.StateOn:
                    return False
            if display.has_extension("DPMS"):
                power = display.dpms_info()
                if power.state and power.power_level != dpms.DPMSModeOn:
                    return False
            return True
        except (error.DisplayError, error.ConnectionClosedError, error.XError, OSError) as exc:
            log.debug("kiosk: cannot ask whether the screen is on: %s", exc)
            self.close()
            return None

    def _connect(self) -> Any:
        if self._display is None:
            self._display = xdisplay.Display(self.display_name)
        return self._display
