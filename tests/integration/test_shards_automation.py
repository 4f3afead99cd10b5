"""The zombie automation on the session's real Prefect server: applied twice it is still one, and a deploy
from a shell without the heartbeat setting keeps it (a dead worker's shard must still be marked Crashed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from prefect.client.orchestration import get_client

from vqa_distill.ops.deploy import (
    DEFAULT_HEARTBEAT_S,
    ZOMBIE_AUTOMATION,
    apply_zombie_automation,
    zombie_automation,
)


async def _apply_and_read(*heartbeats: float | None) -> list[object]:
    async with get_client() as client:
        for heartbeat in heartbeats:
            await apply_zombie_automation(client, heartbeat)
        return list(await client.read_automations_by_name(ZOMBIE_AUTOMATION))


def test_the_zombie_automation_is_upserted_by_name_and_follows_the_heartbeat() -> None:
    (automation,) = asyncio.run(_apply_and_read(30, 60))  # two deploys, the frequency changed between them
    assert automation.trigger.within == timedelta(seconds=180)  # type: ignore[attr-defined]
    assert automation.enabled  # type: ignore[attr-defined]

    async def add_twin() -> None:  # two deploys that raced
        async with get_client() as client:
            await client.create_automation(zombie_automation(60))

    asyncio.run(add_twin())
    assert len(asyncio.run(_apply_and_read(60))) == 1
    (kept,) = asyncio.run(_apply_and_read(None))  # a shell without the heartbeat setting deploys again
    assert kept.trigger.within == timedelta(seconds=180)  # type: ignore[attr-defined]


def test_a_deploy_without_the_heartbeat_setting_creates_the_automation_for_the_default_period() -> None:
    async def delete_all() -> None:
        async with get_client() as client:
            for automation in await client.read_automations_by_name(ZOMBIE_AUTOMATION):
                await client.delete_automation(automation.id)

    asyncio.run(delete_all())
    (created,) = asyncio.run(_apply_and_read(None))
    assert created.trigger.within == timedelta(seconds=3 * DEFAULT_HEARTBEAT_S)  # type: ignore[attr-defined]
