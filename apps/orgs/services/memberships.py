"""Writes for memberships: role changes and removal, under the owner rules.

Each service locks the organization row, writes its audit record in its transaction, announces
the change (apps.orgs.signals) for the layers above, and closes the member's sockets after
commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.core.groups import member_group, org_group
from apps.core.realtime import (
    CLOSE_FORBIDDEN,
    CLOSE_REAUTHORISE,
    close_sockets_on_commit,
    publish_on_commit,
)
from apps.core.trail import audit_record
from apps.orgs.hooks import role_grant_held
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Capability, Role, role_can
from apps.orgs.selectors import ROLE_TOO_LOW
from apps.orgs.signals import membership_removed, membership_role_changed

ONLY_OWNER_MANAGES_OWNERS = "Only an owner can make someone an owner or change an owner."
LAST_OWNER_DEMOTE = (
    "The organization's last owner cannot be given another role. Make someone else an owner first."
)
LAST_OWNER_REMOVE = (
    "The organization's last owner cannot be removed. Make someone else an owner first."
)
MEMBER_GONE = "This person is no longer a member of the organization."


def _lock_members(*, membership: Membership, actor: Membership) -> tuple[Membership, str]:
    """Serialise membership changes of one organization and re-read both parties under the lock.

    Locking the organization row first (always the same single row) means two owners demoting
    each other at the same moment queue up instead of deadlocking, and the second one sees the
    first one's change.
    """
    Organization.objects.select_for_update().filter(pk=membership.org_id).first()
    # The default manager sees only current members: a removed one is "gone" here too.
    try:
        # Under the organization's lock (taken first, as the vault takes it before storing a
        # key), so a key being stored for this member now is either seen by the vault's
        # reaction to this change or stored after it, under the new role.
        target = (
            Membership.objects.select_for_update(of=("self",))
            .select_related("user", "org")
            .get(pk=membership.pk)
        )
    except Membership.DoesNotExist:
        raise ValidationError(MEMBER_GONE) from None
    actor_role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
    if actor_role is None or not role_can(actor_role, Capability.MANAGE_MEMBERS):
        raise PermissionDenied(ROLE_TOO_LOW)
    return target, actor_role


def _check_owner_rules(*, target: Membership, actor_role: str, new_role: str | None) -> None:
    """`new_role` None means removal. Call with the organization locked (`_lock_members`)."""
    touches_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and actor_role != Role.OWNER:
        raise ValidationError(ONLY_OWNER_MANAGES_OWNERS)
    owners = Membership.objects.filter(org_id=target.org_id, role=Role.OWNER)
    if target.role == Role.OWNER and new_role != Role.OWNER and owners.count() <= 1:
        raise ValidationError(LAST_OWNER_REMOVE if new_role is None else LAST_OWNER_DEMOTE)


def _close_sockets(membership: Membership, code: int) -> None:
    close_sockets_on_commit(member_group(membership.org_id, membership.user_id), code)


def org_sockets_recheck_on_commit(org: Organization) -> None:
    """Ask every member socket of `org` to re-run its admission check once the change has
    committed; the ones that no longer qualify close with CLOSE_FORBIDDEN, the others stay."""
    publish_on_commit(org_group(org.pk), {"type": "member.recheck"})


@transaction.atomic
def membership_change_role(
    *, membership: Membership, role: str, actor: Membership, request: HttpRequest | None = None
) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": "Choose a valid role."})
    target, actor_role = _lock_members(membership=membership, actor=actor)
    if target.role == role:
        return target
    _check_owner_rules(target=target, actor_role=actor_role, new_role=role)
    old_role = target.role
    target.role = role
    target.save(update_fields=["role", "updated_at"])
    audit_record(
        action="membership.role_change",
        actor=actor,
        target=target,
        detail={"member": target.user.email, "from": old_role, "to": role},
        request=request,
    )
    membership_role_changed.send(
        sender=Membership, membership=target, old_role=old_role, actor=actor, request=request
    )
    # Open sockets were authorised for the old role: close them; the pages reconnect and are
    # authorised afresh for the new one.
    _close_sockets(target, CLOSE_REAUTHORISE)
    return target


@dataclass(frozen=True)
class RoleGrant:
    membership: Membership
    # Set when the change waits for an approval (apps.orgs.hooks): the message says so.
    held: str | None = None


@transaction.atomic
def membership_grant_role(
    *, membership: Membership, role: str, actor: Membership, request: HttpRequest | None = None
) -> RoleGrant:
    """A person's role change (the members page): `membership_change_role`, unless the
    role-grant gate holds it until someone approves. The approved request then calls
    `membership_change_role` itself."""
    if role not in Role.values:
        raise ValidationError({"role": "Choose a valid role."})
    target, actor_role = _lock_members(membership=membership, actor=actor)
    if target.role == role:
        return RoleGrant(target)
    _check_owner_rules(target=target, actor_role=actor_role, new_role=role)
    actor.role = actor_role
    held = role_grant_held(actor=actor, role=role, member=target, email=None, request=request)
    if held is not None:
        return RoleGrant(target, held)
    return RoleGrant(
        membership_change_role(membership=target, role=role, actor=actor, request=request)
    )


@transaction.atomic
def membership_remove(
    *, membership: Membership, actor: Membership, request: HttpRequest | None = None
) -> None:
    target, actor_role = _lock_members(membership=membership, actor=actor)
    _check_owner_rules(target=target, actor_role=actor_role, new_role=None)
    # What hangs off the membership in higher layers reacts here, in this transaction: the
    # vault makes the member's trading keys cancel-only and revokes the others.
    membership_removed.send(sender=Membership, membership=target, actor=actor, request=request)
    # The row is kept with a removed state, never deleted: the member's keys, their audit
    # trail and (soon) their orders still point at it. Every read through the default manager
    # treats it as a non-member from here on.
    target.status = Membership.Status.REMOVED
    target.removed_at = timezone.now()
    target.removed_by = actor.user
    target.save(update_fields=["status", "removed_at", "removed_by", "updated_at"])
    audit_record(
        action="membership.remove",
        actor=actor,
        target=target,
        detail={"member": target.user.email, "role": target.role},
        request=request,
    )
    user = target.user
    if user.current_org_id == target.org_id:
        user.current_org = None
        user.save(update_fields=["current_org"])
    _close_sockets(target, CLOSE_FORBIDDEN)
