"""Role checks for API views: curators (and admins) and admins, per DESIGN.md's users."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from observations.roles import is_admin, is_curator


class IsCurator(BasePermission):
    message = "Only curators and admins may do this."

    def has_permission(self, request, view) -> bool:
        return is_curator(request.user)


class IsAdmin(BasePermission):
    message = "Only admins may do this."

    def has_permission(self, request, view) -> bool:
        return is_admin(request.user)
