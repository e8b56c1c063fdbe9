"""Errors a user can fix. Services raise them; the API and pages show them as 4xx."""

from __future__ import annotations


class ParkWatchError(Exception):
    """A request ParkWatch refuses, with a stable code, a readable reason and maybe a field."""

    status_code = 400

    def __init__(
        self,
        detail: str,
        *,
        code: str = "invalid",
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.field = field
        if status is not None:
            self.status_code = status

    def as_dict(self) -> dict:
        body = {"error": self.code, "detail": self.detail}
        if self.field:
            body["field"] = self.field
        return body


class PhotoRejected(ParkWatchError):
    """A photo that is not an acceptable image (type, size, pixels, corrupt)."""

    def __init__(self, detail: str, *, code: str, index: int | None = None) -> None:
        if index is not None:
            detail = f"Photo {index + 1}: {detail}"
        super().__init__(detail, code=code, field="photos")


class Conflict(ParkWatchError):
    status_code = 409
