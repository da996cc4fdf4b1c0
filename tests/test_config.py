"""The accounts file: every mistake stops start-up with the account and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.config import load_accounts, parse_accounts
from dispatcher.errors import ConfigError

ENV = {"ITCLOUD_TOKEN": "tok-123456"}


def itcloud(**fields: object) -> dict:
    return {
        "accounts": {
            "co-main": {"vendor": "itcloud", "user": "ops@example.com", "token": "${ITCLOUD_TOKEN}", **fields}
        }
    }


def test_a_good_file_reads_secrets_from_the_environment(tmp_path: Path) -> None:
    # Given an accounts file whose token comes from the environment
    path = tmp_path / "accounts.toml"
    path.write_text(
        '[accounts.co-main]\nvendor = "itcloud"\nuser = "ops@example.com"\ntoken = "${ITCLOUD_TOKEN}"\n'
    )
    # When it is loaded
    accounts = load_accounts(path, ENV)
    # Then the token is the environment's, the window is Colombia's, and repr hides the secret
    config = accounts["co-main"]
    assert config.account.params["token"] == "tok-123456"
    assert config.policy.window.name == "co-crc"
    assert config.account.base_url == "https://contacto-masivo.com/sms/back_sms/public"
    assert "tok-123456" not in repr(config.account)
    assert config.account.secrets() == ["tok-123456"]


@pytest.mark.parametrize(
    ("document", "env", "names"),
    [
        (itcloud(vendor="twilio"), ENV, ("co-main", "vendor", "twilio")),
        (itcloud(), {}, ("co-main", "token", "ITCLOUD_TOKEN")),
        (itcloud(user=""), ENV, ("co-main", "user", "missing")),
        (itcloud(window="night-owl"), ENV, ("co-main", "window", "night-owl")),
        (itcloud(max_attempts="many"), ENV, ("co-main", "max_attempts")),
        (itcloud(retry_base=0), ENV, ("co-main", "retry_base")),
        ({**itcloud(), "windows": {"office": {"start": "25:00"}}}, ENV, ("office", "start")),
        ({**itcloud(), "windows": {"office": {"timezone": "Mars/Base"}}}, ENV, ("office", "timezone")),
        ({**itcloud(), "windows": {"office": {"start": "18:00", "end": "09:00"}}}, ENV, ("office", "end")),
        ({**itcloud(), "windows": {"office": {"holidays": "XX"}}}, ENV, ("office", "holidays")),
        (itcloud(webhook_secret="${HOOK}"), {**ENV, "HOOK": "short"}, ("co-main", "webhook_secret", "16")),
        (itcloud(webhook_secret="${HOOK}"), ENV, ("co-main", "webhook_secret", "HOOK")),
        (itcloud(stop_words="STOP"), ENV, ("co-main", "stop_words", "list")),
        (itcloud(start_words=["ALTA", "BAJA"]), ENV, ("co-main", "start_words", "'BAJA'")),
        (itcloud(allow_resubscribe="yes"), ENV, ("co-main", "allow_resubscribe")),
        (itcloud(keyword_replies={"PROMO": 3}), ENV, ("co-main", "keyword_replies")),
    ],
)
def test_a_bad_file_names_the_account_and_field(document: dict, env: dict, names: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_accounts(document, env)
    for name in names:
        assert name in str(raised.value)


def test_a_missing_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_accounts(tmp_path / "nope.toml", ENV)
    broken = tmp_path / "broken.toml"
    broken.write_text("[accounts.x\nvendor=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_accounts(broken, ENV)


def test_accounts_may_define_their_own_windows() -> None:
    document = itcloud(window="office", country="CO")
    document["windows"] = {
        "office": {"timezone": "America/Bogota", "days": ["mon", "tue"], "start": "09:00", "end": "17:00"}
    }
    window = parse_accounts(document, ENV)["co-main"].policy.window
    assert window.name == "office"
    assert window.days == frozenset({0, 1})


def test_reply_rules_default_to_the_listed_words_and_the_webhook_secret_is_a_secret() -> None:
    # Given one account with no reply settings and one with its own
    plain = parse_accounts(itcloud(), ENV)["co-main"]
    own = parse_accounts(
        itcloud(
            webhook_secret="${HOOK}",
            stop_words=[" salir ", "Basta"],
            start_words=["alta"],
            allow_resubscribe=True,
            keyword_replies={"promo": "Hola {celular}"},
        ),
        {**ENV, "HOOK": "hook-secret-0123456789"},
    )["co-main"]
    # Then the defaults are the documented words, no push URL, no resubscribing
    assert plain.replies.stop_words == {"STOP", "SALIR", "BAJA", "CANCELAR", "ALTO", "EXIT", "REMOVE"}
    assert plain.replies.start_words == {"START", "ALTA"}
    assert (plain.replies.allow_resubscribe, plain.webhook_secret) == (False, None)
    # And an account's own words replace them, compared upper case, with keywords upper case
    assert own.replies.stop_words == {"SALIR", "BASTA"} and own.replies.start_words == {"ALTA"}
    assert own.replies.allow_resubscribe and own.replies.keyword_replies == {"PROMO": "Hola {celular}"}
    # And the webhook secret is scrubbed like every other secret
    assert own.webhook_secret == "hook-secret-0123456789"
    assert "hook-secret-0123456789" in own.account.secrets()
    assert "hook-secret-0123456789" not in repr(own)
