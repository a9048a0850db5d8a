"""A real kiosk tablet per module: Xvfb, a client account, Chromium and the overlay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.kiosk import Kiosk, kiosk_tablet


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with kiosk_tablet(tmp_path_factory.mktemp("kiosk")) as tablet:
        yield tablet
