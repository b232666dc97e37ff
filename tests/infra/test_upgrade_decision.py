"""Which plans `deploy` turns into an in-place upgrade (SSM Run Command on the single instance)."""

from __future__ import annotations

from pathlib import Path

from eventstate.deploy.session import image_only_change
from eventstate.deploy.terraform import Plan, PlannedChange


def plan(*changes: tuple[str, str]) -> Plan:
    return Plan(tuple(PlannedChange(address, (action,)) for address, action in changes), Path("plan"))


def test_new_image_on_the_single_instance_is_an_in_place_upgrade() -> None:
    assert image_only_change(plan(("aws_ssm_parameter.image", "update")))


def test_new_image_with_a_new_single_instance_needs_no_upgrade_command() -> None:
    """A new instance boots the new image by itself (both the old and the counted address)."""
    assert not image_only_change(
        plan(("aws_ssm_parameter.image", "update"), ("aws_instance.this[0]", "create"))
    )
    assert not image_only_change(plan(("aws_ssm_parameter.image", "update"), ("aws_instance.this", "create")))


def test_new_image_in_the_ha_topology_rolls_the_group_instead() -> None:
    """The ha topology has no single instance: the new launch template version is rolled out by
    the Auto Scaling group's instance refresh, so no SSM command is sent."""
    assert not image_only_change(
        plan(("aws_ssm_parameter.image", "update"), ("aws_launch_template.ha[0]", "update"))
    )


def test_no_image_change_is_no_upgrade() -> None:
    assert not image_only_change(plan(("aws_cloudwatch_metric_alarm.disk[0]", "update")))
