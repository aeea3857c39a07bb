"""The studio's switches: on by default, off with VIDORA_STUDIO=false (no gradio import)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidora.server.app import create_app
from vidora.server.settings import Settings


def test_the_studio_can_be_switched_off_and_capped_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"VIDORA_STUDIO": "false", "VIDORA_STUDIO_IN_FLIGHT_LIMIT": "2"}, data_dir=tmp_path
    )
    assert (settings.studio, settings.studio_in_flight_limit) == (False, 2)
    assert Settings().studio and Settings().studio_in_flight_limit == 4
    app = create_app(settings)
    assert "/studio" not in {getattr(route, "path", None) for route in app.routes}
    app.state.services.db.dispose()


def test_a_negative_studio_cap_names_the_variable() -> None:
    with pytest.raises(ValueError, match="VIDORA_STUDIO_IN_FLIGHT_LIMIT must be 0 or more"):
        Settings.from_env({"VIDORA_STUDIO_IN_FLIGHT_LIMIT": "-1"})
