"""Storages by alias from `STORAGES`, resolved when first used.

A FileField evaluates a callable storage once, at import; these lazy objects let the alias be
looked up at first use and again after the settings change (tests), as Django's default_storage.
"""

from __future__ import annotations

from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty


class NamedStorage(LazyObject):
    def __init__(self, alias: str) -> None:
        super().__init__()
        self.__dict__["_alias"] = alias

    def _setup(self):
        self._wrapped = storages[self.__dict__["_alias"]]


_named: dict[str, NamedStorage] = {}


def named_storage(alias: str) -> NamedStorage:
    if alias not in _named:
        _named[alias] = NamedStorage(alias)
    return _named[alias]


@receiver(setting_changed)
def _reset_named_storages(*, setting, **kwargs):
    if setting == "STORAGES":
        for storage in _named.values():
            storage._wrapped = empty


def originals_storage():
    """Private storage for photos exactly as uploaded (never served)."""
    return named_storage("originals")
