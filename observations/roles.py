"""The three roles of DESIGN.md, as Django groups: visitor, curator, admin."""

from __future__ import annotations

VISITOR_GROUP = "visitor"
CURATOR_GROUP = "curator"
ADMIN_GROUP = "admin"
ALL_GROUPS = (VISITOR_GROUP, CURATOR_GROUP, ADMIN_GROUP)


def _group_names(user) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_parkwatch_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._parkwatch_groups = cached
    return cached


def is_admin(user) -> bool:
    return bool(getattr(user, "is_superuser", False)) or ADMIN_GROUP in _group_names(user)


def is_curator(user) -> bool:
    """Curators and admins see everything, exact positions included."""
    return is_admin(user) or CURATOR_GROUP in _group_names(user)
