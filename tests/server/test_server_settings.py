"""Settings from the environment and the model registry: good values parse, bad ones are
refused at start-up with a message naming what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidora.cli import app
from vidora.server.registry import BUILTIN_MODEL, Registry
from vidora.server.settings import Settings
from vidora.server.webhooks import generate_secret


def test_settings_read_the_environment_and_flags_win() -> None:
    settings = Settings.from_env(
        {
            "VIDORA_LEASE_SECONDS": "1.5",
            "VIDORA_AUTH": "false",
            "VIDORA_BATCH_SIZE": "8",
            "VIDORA_DATA_DIR": "/srv/vidora",
            "VIDORA_MODELS_FILE": "/etc/vidora/models.yaml",
        },
        batch_size=2,
        db_url=None,
    )
    assert settings.lease_seconds == 1.5 and settings.auth is False and settings.batch_size == 2
    assert settings.models_file == Path("/etc/vidora/models.yaml")
    assert settings.database_url == "sqlite:////srv/vidora/vidora.db"
    assert settings.heartbeat_seconds == 0.5
    assert Settings.from_env({}).auth is True  # keys are required unless turned off


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"VIDORA_BATCH_SIZE": "lots"}, "VIDORA_BATCH_SIZE='lots' is not valid"),
        ({"VIDORA_LEASE_SECONDS": "0"}, "VIDORA_LEASE_SECONDS must be positive"),
        ({"VIDORA_AUTH": "maybe"}, "VIDORA_AUTH='maybe' is not valid"),
        ({"VIDORA_RPM_LIMIT": "-5"}, "VIDORA_RPM_LIMIT must be 0 or more"),
        ({"VIDORA_LOG_FORMAT": "xml"}, "VIDORA_LOG_FORMAT"),
        ({"VIDORA_WEBHOOK_URL": "http://hooks.local/x"}, "VIDORA_WEBHOOK_SECRET is not"),
        (
            {"VIDORA_WEBHOOK_URL": "ftp://x", "VIDORA_WEBHOOK_SECRET": generate_secret()},
            "http(s) URL",
        ),
        ({"VIDORA_WEBHOOK_SECRET": "changeme"}, "placeholder"),
        ({"VIDORA_WEBHOOK_SECRET": "whsec_changeme"}, "placeholder"),
        ({"VIDORA_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "at least 24 random bytes"),
        (
            {"VIDORA_WEBHOOK_SECRET": "s3cr3t-but-not-whsec-xxxxxxxxxxxxxxx"},
            "must start with 'whsec_'",
        ),
        ({"VIDORA_WEBHOOK_SECRET": "whsec_not base64!"}, "base64"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(
    environ: dict[str, str], says: str
) -> None:
    with pytest.raises(ValueError) as error:
        Settings.from_env(environ)
    assert says in str(error.value)


def test_the_builtin_registry_maps_the_hosted_names_to_the_builtin_model() -> None:
    registry = Registry.builtin()
    assert registry.resolve("sora-2").id == BUILTIN_MODEL  # type: ignore[union-attr]
    assert registry.resolve(None).id == BUILTIN_MODEL  # type: ignore[union-attr]
    assert registry.resolve("sora-3") is None
    assert registry.models[BUILTIN_MODEL].sizes == ("64x64", "96x64", "64x96")
    assert registry.models[BUILTIN_MODEL].seconds == (4, 8, 12)


def test_a_registry_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "default: big\n"
        "models:\n"
        "  - {id: small, engine: 'pkg.mod:small', sizes: ['64x64'], seconds: [4]}\n"
        "  - {id: big, engine: 'pkg.mod:big', sizes: ['128x72', '72x128'], seconds: [4, 8],"
        " options: {checkpoint: /models/big}}\n"
        "aliases: {sora-2-pro: big}\n"
    )
    registry = Registry.from_yaml(path)
    assert registry.resolve(None).id == "big"  # type: ignore[union-attr]
    assert registry.resolve("sora-2-pro").options == {"checkpoint": "/models/big"}  # type: ignore[union-attr]
    assert registry.names() == ["small", "big", "sora-2-pro"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("models: []\n", "lists no model"),
        ("models:\n  - {id: a, sizes: ['64x64'], seconds: [4]}\n", "missing engine"),
        (
            "models:\n  - {id: a, engine: 'm:f', sizes: ['big'], seconds: [4]}\n",
            "is not WIDTHxHEIGHT",
        ),
        (
            "models:\n  - {id: a, engine: 'm:f', sizes: ['64x64'], seconds: [4]}\n"
            "aliases: {b: c}\n",
            "unknown model 'c'",
        ),
        (
            "default: z\nmodels:\n  - {id: a, engine: 'm:f', sizes: ['64x64'], seconds: [4]}\n",
            "default model 'z'",
        ),
        ("just a string", "expected a mapping"),
        ("models: [\n", "cannot read model registry"),
    ],
)
def test_a_bad_registry_file_names_what_to_fix(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        Registry.from_yaml(path)
    assert says in str(error.value) and str(path) in str(error.value)


def test_an_engine_that_is_not_module_colon_callable_is_refused() -> None:
    spec = Registry.builtin().models[BUILTIN_MODEL]
    with pytest.raises(ValueError, match="module:callable"):
        type(spec)(id="x", engine="no_colon", sizes=("64x64",), seconds=(4,)).build_engine()


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (
            ["serve"],
            {"VIDORA_WEBHOOK_URL": "http://h/x", "VIDORA_WEBHOOK_SECRET": "changeme"},
            "placeholder",
        ),
        (["serve", "--models", "/nonexistent/models.yaml"], {}, "cannot read model registry"),
        (["worker"], {"VIDORA_LEASE_SECONDS": "-1"}, "VIDORA_LEASE_SECONDS must be positive"),
    ],
)
def test_serve_and_worker_refuse_bad_configuration_before_starting(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())
