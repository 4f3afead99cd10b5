"""The API key: from a Prefect Secret block named in the parameters, else ``OPENAI_API_KEY``.

Secrets are never parameters (Prefect stores and displays those) and never flags (``ps`` shows
those). The block is read with Prefect's async API, so it works inside an async flow on a worker
that has no ``OPENAI_API_KEY`` (the sync ``Secret.load`` returns a coroutine there).
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from vqa_distill.errors import ConfigError


class TeacherSecrets(BaseSettings):
    """The API key, read from the environment only (never from a flag, a file in the repo or a parameter)."""

    model_config = SettingsConfigDict(extra="ignore")

    openai_api_key: SecretStr | None = None


async def resolve_api_key(api_key_block: str | None) -> SecretStr:
    """Return the API key from the named Prefect Secret block, else ``OPENAI_API_KEY``."""
    if api_key_block:
        from prefect.blocks.system import Secret

        try:
            block = await Secret.aload(api_key_block)
        except ValueError:
            raise ConfigError(
                f"Prefect Secret block {api_key_block!r} not found: create it "
                f"(prefect block create secret, or Secret(value=...).save({api_key_block!r})) or unset api_key_block"
            ) from None
        return SecretStr(str(block.get()))  # type: ignore[attr-defined]
    key = TeacherSecrets().openai_api_key
    if key is None or not key.get_secret_value():
        raise ConfigError("no API key: set OPENAI_API_KEY or pass --api-key-block NAME (a Prefect Secret block)")
    return key
