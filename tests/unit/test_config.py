"""Settings: defaults, file, environment, validation, and the generated reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from lainaamo.config import Settings, markdown
from lainaamo.errors import ConfigError

ROOT = Path(__file__).parents[2]


def test_environment_overrides_file(tmp_path: Path) -> None:
    conf = tmp_path / "lainaamo.toml"
    conf.write_text('mqtt_port = 1884\nmqtt_host = "broker"\nmqtt_tls = true\n')
    settings = Settings.load({"LAINAAMO_CONFIG": str(conf), "LAINAAMO_MQTT_PORT": "1999"})
    assert (settings.mqtt_port, settings.mqtt_host, settings.mqtt_tls) == (1999, "broker", True)


def test_defaults_without_anything() -> None:
    settings = Settings.load({})
    assert settings.topic_prefix == "fleet/v1"
    assert settings.mqtt_protocol == "5"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAINAAMO_MQTT_PORT": "many"}, "mqtt_port must be int"),
        ({"LAINAAMO_MQTT_TLS": "perhaps"}, "mqtt_tls must be true or false"),
        ({"LAINAAMO_MQTT_PROTOCOL": "4"}, "mqtt_protocol"),
        (
            {"LAINAAMO_MQTT_PROTOCOL": "3.1.1", "LAINAAMO_INGEST_SHARED_GROUP": "g"},
            "needs mqtt_protocol 5",
        ),
        ({"LAINAAMO_INGEST_BATCH_SIZE": "0"}, "must be positive"),
    ],
)
def test_bad_values_are_explained(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(env)


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    conf = tmp_path / "lainaamo.toml"
    conf.write_text("mqtt_prot = 5\n")
    with pytest.raises(ConfigError, match="mqtt_prot"):
        Settings.load({}, config_file=str(conf))


def test_docs_list_every_setting_as_generated() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == markdown(), (
        "docs/configuration.md is out of date: "
        "run `lainaamo config --markdown > docs/configuration.md`"
    )
