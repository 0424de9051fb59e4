"""The README's settings table and the code's settings table must agree."""

from __future__ import annotations

from scriptbox.config import SETTINGS_TABLE, ConfigError, load_settings
from support import REPO


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for spec in SETTINGS_TABLE:
        assert f"`{spec.env}`" in readme or spec.env in readme, spec.env
        if spec.flag:
            assert f"`{spec.flag}`" in readme, spec.flag


def test_flags_win_over_the_environment_which_wins_over_defaults() -> None:
    settings = load_settings({"port": "9000"}, {"SCRIPTBOX_PORT": "9100", "SCRIPTBOX_DB_NAME": "other"})
    assert settings.port == 9000 and settings.db_name == "other" and settings.host == "127.0.0.1"


def test_a_secret_can_come_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert load_settings({}, {"SCRIPTBOX_ADMIN_PASSWORD_FILE": str(secret)}).admin_password == "s3cret"
    try:
        load_settings({}, {"SCRIPTBOX_ADMIN_PASSWORD_FILE": str(tmp_path / "missing")})
    except ConfigError as exc:
        assert "SCRIPTBOX_ADMIN_PASSWORD_FILE" in str(exc)
    else:
        raise AssertionError("a missing secret file must be refused")
