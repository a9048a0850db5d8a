"""The kiosk browser's managed policy (Chromium's enterprise policies) for a kiosk profile.

Chromium reads JSON files in `/etc/chromium/policies/managed/` (Debian, Ubuntu's deb) and
notices a changed file by itself; nothing the person does in the browser can override them.
See https://chromeenterprise.google/policies/ for each name.

Chromium (ConfigDirPolicyLoader) watches the directory and reads a changed file once it has
stayed unchanged for five seconds (and every 15 minutes anyway): a remote group's join link is
allowed a few seconds after the file is written, so the launcher shows its Join tile only then
(tablet.py). A changed policy applies to the next navigation; a page already open stays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.policy import KioskProfile

POLICY_FILE = "lainaamo-kiosk.json"


def allowed_origin(url: str) -> str | None:
    """The URLAllowlist entry of a shortcut: its scheme and host (and port); None if not web."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def managed_policy(
    launcher_origin: str, profile: KioskProfile | None, join_urls: Iterable[str] = ()
) -> dict[str, Any]:
    """Everything blocked but the launcher, the profile's shortcuts (None: launcher only) and
    the join links of the remote groups whose window is open now (`join_urls`)."""
    shortcuts = profile.shortcuts if profile is not None else ()
    allowed = [launcher_origin]
    for url in (*(shortcut.url for shortcut in shortcuts), *join_urls):
        origin = allowed_origin(url)
        if origin is not None and origin not in allowed:
            allowed.append(origin)
    return {
        "URLBlocklist": ["*"],
        "URLAllowlist": allowed,
        "HomepageLocation": launcher_origin + "/",
        "HomepageIsNewTabPage": False,
        "NewTabPageLocation": launcher_origin + "/",
        "RestoreOnStartup": 4,
        "RestoreOnStartupURLs": [launcher_origin + "/"],
        "DeveloperToolsAvailability": 2,
        "IncognitoModeAvailability": 1,
        "BrowserGuestModeEnabled": False,
        "BrowserAddPersonEnabled": False,
        "BrowserSignin": 0,
        "SyncDisabled": True,
        "DownloadRestrictions": 3,
        "AllowFileSelectionDialogs": False,
        "PrintingEnabled": False,
        "TaskManagerEnabled": False,
        "EditBookmarksEnabled": False,
        "BookmarkBarEnabled": False,
        "ExtensionInstallBlocklist": ["*"],
        "PasswordManagerEnabled": False,
        "AutofillAddressEnabled": False,
        "AutofillCreditCardEnabled": False,
        "DefaultBrowserSettingEnabled": False,
        "MetricsReportingEnabled": False,
        "PromotionalTabsEnabled": False,
        "TranslateEnabled": False,
        "SpellcheckEnabled": False,
        "DefaultNotificationsSetting": 2,
        "DefaultGeolocationSetting": 2,
        "CommandLineFlagSecurityWarningsEnabled": False,
        "HardwareAccelerationModeEnabled": True,
    }


def write_policy(directory: str | Path, policy: dict[str, Any]) -> bool:
    """Write the policy file atomically; False when it was already the same."""
    path = Path(directory) / POLICY_FILE
    body = json.dumps(policy, indent=1, sort_keys=True)
    try:
        if path.read_text() == body:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(body)
    temporary.chmod(0o644)
    os.replace(temporary, path)
    return True


def remove_policy(directory: str | Path) -> None:
    (Path(directory) / POLICY_FILE).unlink(missing_ok=True)
