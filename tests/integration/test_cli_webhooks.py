"""`modelog webhooks redeliver` against a real platform and a receiver the test controls: it exits
non-zero, and says why, unless every event was accepted."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.test_audit_webhooks import Stack, create, run_cli, stack

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]


async def test_a_refused_redelivery_exits_non_zero_and_names_the_reason(stack: Stack) -> None:
    hook = await create(stack, "refusing")
    await stack.approve("r1", "refusing")
    await stack.hits("refusing", 1)
    stack.receiver.down.add("refusing")  # answers 503 from now on
    try:
        refused = await asyncio.to_thread(run_cli, stack, "webhooks", "redeliver", hook.id, "--from", "start")
    finally:
        stack.receiver.down.discard("refusing")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout.startswith("0 of 1 delivered")
    [line] = refused.stderr.splitlines()
    assert line.startswith("modelog: UNAVAILABLE: 1 of 1 not delivered; the first, delivery ")
    assert "registry#" in line and "TransitionApproved" in line and "503" in line

    again = await asyncio.to_thread(run_cli, stack, "webhooks", "redeliver", hook.id, "--from", "start")
    assert again.returncode == 0 and again.stdout.startswith("1 of 1 delivered") and again.stderr == ""
