"""Test helpers that know nothing of the domain: every route the project serves.

:func:`all_routes` walks the URL configuration the way Django resolves it
(includes, namespaces, DRF and plain views alike), so a test can demand that
each route is accounted for — a route added tomorrow shows up here without
anyone having to remember it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RegexPattern, RoutePattern


@dataclass(frozen=True)
class Route:
    """One URL pattern, with where it sits in the URL configuration."""

    #: ``"namespace:name"`` (nested namespaces joined by ``:``), or None for an unnamed pattern.
    name: str | None
    #: The pattern as written, includes concatenated: ``"system/users/<int:pk>/"``.
    pattern: str
    #: The keyword arguments the URL captures, in order of appearance.
    params: tuple[str, ...]
    callback: Callable
    namespace: str = ""

    @property
    def key(self) -> str:
        """How a registry names the route: its full name, else its pattern."""
        return self.name or self.pattern

    @property
    def view_path(self) -> str:
        """The dotted path of the view (the view class for class-based views)."""
        view = getattr(self.callback, "view_class", None) or getattr(self.callback, "cls", None)
        target = view or self.callback
        return f"{target.__module__}.{getattr(target, '__qualname__', repr(target))}"

    def url(self, **kwargs) -> str:
        if self.name is None:
            raise ValueError(f"route {self.pattern!r} has no name to reverse")
        return reverse(self.name, kwargs=kwargs or None)


def _params(pattern) -> list[str]:
    if isinstance(pattern, RoutePattern):
        return list(pattern.converters)
    if isinstance(pattern, RegexPattern):
        return list(pattern.regex.groupindex)
    return []


def _walk(resolver: URLResolver, prefix: str, namespace: str, params: list[str]) -> Iterator[Route]:
    for entry in resolver.url_patterns:
        here = prefix + str(entry.pattern)
        names = params + _params(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry, here, inner, names)
        elif isinstance(entry, URLPattern):
            name = None
            if entry.name:
                name = f"{namespace}:{entry.name}" if namespace else entry.name
            yield Route(
                name=name,
                pattern=here,
                params=tuple(dict.fromkeys(names)),
                callback=entry.callback,
                namespace=namespace,
            )


def all_routes(urlconf: str | None = None) -> list[Route]:
    """Every URL pattern reachable from ``urlconf`` (the project's by default), in order."""
    return list(_walk(get_resolver(urlconf), "", "", []))
