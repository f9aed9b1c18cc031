"""allure-python's API, typed: the one place the suite calls its unannotated functions.

allure-python ships no annotations, so every decorator it offers would turn a typed test into an
untyped one, and every call would need its own `# type: ignore`. The same names, with types, behaving
exactly as allure's own (they are allure's own, called through). Use it as `from harness import
allure_api as allure`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import allure as _allure
from allure_commons.types import AttachmentType, Severity

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

attachment_type = AttachmentType
severity_level = Severity


def _decorator(made: Any) -> Callable[[F], F]:
    return cast(Callable[[F], F], made)


def title(text: str) -> Callable[[F], F]:
    return _decorator(_call(_allure.title, text))


def epic(*names: str) -> Callable[[F], F]:
    return _decorator(_call(_allure.epic, *names))


def feature(*names: str) -> Callable[[F], F]:
    return _decorator(_call(_allure.feature, *names))


def story(*names: str) -> Callable[[F], F]:
    return _decorator(_call(_allure.story, *names))


def severity(level: Severity) -> Callable[[F], F]:
    return _decorator(_call(_allure.severity, level))


def link(url: str, link_type: str = "link", name: str | None = None) -> Callable[[F], F]:
    return _decorator(_call(_allure.link, url, link_type=link_type, name=name))


def step(text: str) -> Any:
    """A step: `with allure.step("..."):` (or a decorator)."""
    return _call(_allure.step, text)


def attach(body: str | bytes, name: str | None = None, attachment_type: AttachmentType | None = None) -> None:
    _call(_allure.attach, body, name=name, attachment_type=attachment_type)


class dynamic:  # allure's own spelling: allure.dynamic.tag(...)
    """Labels and links decided while a test runs."""

    @staticmethod
    def epic(*names: str) -> None:
        _call(_allure.dynamic.epic, *names)

    @staticmethod
    def link(url: str, link_type: str = "link", name: str | None = None) -> None:
        _call(_allure.dynamic.link, url, link_type=link_type, name=name)

    @staticmethod
    def tag(*tags: str) -> None:
        _call(_allure.dynamic.tag, *tags)

    @staticmethod
    def description(text: str) -> None:
        _call(_allure.dynamic.description, text)


def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call one of allure's functions through a typed reference (mypy sees `Callable[..., Any]`)."""
    return function(*args, **kwargs)
