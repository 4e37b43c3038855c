"""The area tree: city → district → street → community → unit grid.

Boundaries are stored as WKB (WGS-84 longitude/latitude) because the
point-to-grid index is built from hundreds of thousands of them and WKB decodes
in bulk at C speed; GeoJSON is produced from it at the edges (API, export).
"""

from __future__ import annotations

from functools import cached_property

import shapely
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.scopes import RestrictedQuerySet, subtree_prefix
from core.models import TimeStampedModel


class AreaLevel(models.IntegerChoices):
    CITY = 1, _("city")
    DISTRICT = 2, _("district")
    STREET = 3, _("street")
    COMMUNITY = 4, _("community")
    GRID = 5, _("grid")

    @classmethod
    def from_slug(cls, slug: str) -> AreaLevel:
        """``"grid"`` → ``AreaLevel.GRID``; raises KeyError for an unknown slug."""
        return LEVEL_BY_SLUG[slug.strip().lower()]

    @property
    def slug(self) -> str:
        return self.name.lower()


LEVEL_BY_SLUG = {level.name.lower(): level for level in AreaLevel}

# Code length per level (GB/T 2260 county code + statistics division codes,
# extended by a 2-digit grid sequence): 6 + 3 + 3 + 2 = 14 digits for a grid.
CODE_LENGTH = {
    AreaLevel.CITY: 6,
    AreaLevel.DISTRICT: 6,
    AreaLevel.STREET: 9,
    AreaLevel.COMMUNITY: 12,
    AreaLevel.GRID: 14,
}


def code_problem(
    code: str, level: int, parent_code: str | None, parent_level: int | None
) -> str | None:
    """Why ``code`` cannot be an area of ``level`` under ``parent_code``, or None.

    A city's code is its 4-digit prefix padded with ``00``; a district shares
    the city's first four digits; every lower level extends its parent's code.
    """
    level = AreaLevel(level)
    want = CODE_LENGTH[level]
    if not code.isdigit() or len(code) != want:
        return f"a {level.slug} code has {want} digits, got {code!r}"
    if level == AreaLevel.CITY and not code.endswith("00"):
        return f"a city code ends in 00, got {code!r}"
    if level == AreaLevel.DISTRICT and code.endswith("00"):
        return f"a district code does not end in 00, got {code!r}"
    if parent_code is None:
        if level not in (AreaLevel.CITY, AreaLevel.DISTRICT):
            return f"a {level.slug} needs a parent"
        return None
    if parent_level is None or int(parent_level) != int(level) - 1:
        parent_slug = AreaLevel(parent_level).slug if parent_level else "unknown level"
        return f"a {level.slug} cannot be under a {parent_slug}"
    prefix = parent_code[:4] if level == AreaLevel.DISTRICT else parent_code
    if not code.startswith(prefix):
        return f"code {code} is not under its parent's code {parent_code}"
    return None


class AreaQuerySet(RestrictedQuerySet):
    def grids(self):
        return self.filter(level=AreaLevel.GRID)

    def subtree(self, area: Area, *, include_self: bool = True):
        """The area and everything below it, by code prefix (one indexed range)."""
        qs = self.filter(code__startswith=area.subtree_prefix, level__gte=area.level)
        return qs if include_self else qs.exclude(pk=area.pk)


class Area(TimeStampedModel):
    code = models.CharField(_("code"), max_length=14, unique=True)
    level = models.PositiveSmallIntegerField(_("level"), choices=AreaLevel.choices)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
    )
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=200, blank=True)
    # WKB of a Polygon or MultiPolygon in WGS-84; null for an area imported from
    # a division list that has no boundary yet.
    geometry = models.BinaryField(_("boundary"), null=True, blank=True)
    min_lng = models.FloatField(null=True, blank=True)
    min_lat = models.FloatField(null=True, blank=True)
    max_lng = models.FloatField(null=True, blank=True)
    max_lat = models.FloatField(null=True, blank=True)
    area_m2 = models.FloatField(_("area (m²)"), null=True, blank=True)
    households = models.PositiveIntegerField(_("households"), default=0)
    population = models.PositiveIntegerField(_("people"), default=0)

    objects = AreaQuerySet.as_manager()
    # Where an area is, for row-level access (accounts.scopes): its own code.
    scope_path = "code"

    class Meta:
        ordering = ["code"]
        verbose_name = _("area")
        verbose_name_plural = _("areas")
        permissions = [
            ("import_area", _("Can import and export area boundaries")),
            ("partition_area", _("Can partition a community into grids")),
        ]
        indexes = [
            models.Index(fields=["level", "code"], name="geo_area_level_code"),
            models.Index(fields=["parent", "code"], name="geo_area_parent_code"),
            models.Index(fields=["name"], name="geo_area_name"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def subtree_prefix(self) -> str:
        """The code prefix of everything below this area (see accounts.scopes)."""
        return subtree_prefix(self.code, self.level)

    @property
    def level_slug(self) -> str:
        return AreaLevel(self.level).slug

    @cached_property
    def shape(self):
        """The boundary as a shapely geometry (None when there is none)."""
        if not self.geometry:
            return None
        return shapely.from_wkb(bytes(self.geometry))

    @property
    def bbox(self) -> list[float] | None:
        if self.min_lng is None:
            return None
        return [self.min_lng, self.min_lat, self.max_lng, self.max_lat]


class GridStaff(models.Model):
    """A person working a unit grid: its grid workers and its grid leader."""

    class Role(models.TextChoices):
        WORKER = "worker", _("grid worker")
        LEADER = "leader", _("grid leader")

    area = models.ForeignKey(
        Area, on_delete=models.CASCADE, related_name="staff", verbose_name=_("grid")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="grid_assignments",
        verbose_name=_("user"),
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)

    objects = RestrictedQuerySet.as_manager()
    scope_path = "area__code"

    class Meta:
        verbose_name = _("grid staff")
        verbose_name_plural = _("grid staff")
        constraints = [
            models.UniqueConstraint(fields=["area", "user", "role"], name="geo_gridstaff_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.area.code} {self.get_role_display()} {self.user}"


class Building(models.Model):
    """A building point with its household count: what grids are balanced on."""

    community = models.ForeignKey(
        Area,
        on_delete=models.CASCADE,
        related_name="community_buildings",
        verbose_name=_("community"),
    )
    grid = models.ForeignKey(
        Area,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="buildings",
        verbose_name=_("grid"),
    )
    name = models.CharField(_("name"), max_length=100)
    lng = models.FloatField(_("longitude"))
    lat = models.FloatField(_("latitude"))
    households = models.PositiveIntegerField(_("households"), default=0)
    population = models.PositiveIntegerField(_("people"), default=0)

    objects = RestrictedQuerySet.as_manager()
    # In its community and in its grid: a grid worker sees her grid's buildings.
    scope_path = ("community__code", "grid__code")

    class Meta:
        ordering = ["community", "name"]
        verbose_name = _("building")
        verbose_name_plural = _("buildings")

    def __str__(self) -> str:
        return self.name
