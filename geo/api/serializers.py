"""What the areas API sends and takes; no logic beyond shaping data."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from geo.crs import CRS_CHOICES
from geo.models import Area, AreaLevel

LEVEL_SLUGS = [lv.slug for lv in AreaLevel]


class AreaRefSerializer(serializers.ModelSerializer):
    """An area named, without its numbers or boundary (ancestor chains, tree nodes)."""

    level = serializers.ChoiceField(choices=LEVEL_SLUGS, source="level_slug", read_only=True)

    class Meta:
        model = Area
        fields = ["code", "name", "name_en", "level"]
        read_only_fields = fields


class AreaSerializer(AreaRefSerializer):
    """An area in a list: everything but its boundary."""

    parent_code = serializers.CharField(source="parent.code", read_only=True, allow_null=True)
    bbox = serializers.ListField(
        child=serializers.FloatField(),
        read_only=True,
        allow_null=True,
        help_text=_("[min_lng, min_lat, max_lng, max_lat] in WGS-84, null without a boundary"),
    )
    has_boundary = serializers.SerializerMethodField()

    class Meta:
        model = Area
        fields = [
            "code",
            "name",
            "name_en",
            "level",
            "parent_code",
            "households",
            "population",
            "area_m2",
            "bbox",
            "has_boundary",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_has_boundary(self, area: Area) -> bool:
        annotated = getattr(area, "has_boundary", None)
        if annotated is not None:
            return bool(annotated)
        return area.min_lng is not None


class GridStaffSerializer(serializers.Serializer):
    role = serializers.CharField()
    role_label = serializers.CharField()
    name = serializers.CharField()
    username = serializers.CharField()


class AreaDetailSerializer(AreaSerializer):
    """One area with its place in the tree, its staff and its boundary as GeoJSON."""

    ancestors = AreaRefSerializer(many=True, read_only=True)
    children_count = serializers.IntegerField(read_only=True)
    staff = GridStaffSerializer(many=True, read_only=True, source="staff_list")
    geometry = serializers.JSONField(
        source="geometry_geojson",
        read_only=True,
        allow_null=True,
        help_text=_("GeoJSON Polygon or MultiPolygon in WGS-84, null without a boundary"),
    )

    class Meta(AreaSerializer.Meta):
        fields = [*AreaSerializer.Meta.fields, "ancestors", "children_count", "staff", "geometry"]
        read_only_fields = fields


class AreaTreeNodeSerializer(serializers.Serializer):
    """A node of the area tree (``children`` holds nodes of the same shape)."""

    code = serializers.CharField()
    name = serializers.CharField()
    name_en = serializers.CharField()
    level = serializers.ChoiceField(choices=LEVEL_SLUGS)
    children = serializers.ListField(child=serializers.DictField())


class ImportOptionsSerializer(serializers.Serializer):
    crs = serializers.ChoiceField(
        choices=CRS_CHOICES,
        default="wgs84",
        help_text=_("coordinate system of the file: wgs84, gcj02 (AMap, Tencent), bd09 (Baidu)"),
    )
    repair = serializers.BooleanField(
        default=False, help_text=_("fix invalid boundaries and report the area changed")
    )
    dry_run = serializers.BooleanField(default=False, help_text=_("check and report only"))


class ImportUploadSerializer(ImportOptionsSerializer):
    file = serializers.FileField(
        help_text=_("a GeoJSON FeatureCollection (.geojson/.json) or a CSV division list (.csv)")
    )


class RepairedSerializer(serializers.Serializer):
    where = serializers.CharField()
    code = serializers.CharField()
    reason = serializers.CharField()
    area_before_m2 = serializers.FloatField()
    area_after_m2 = serializers.FloatField()
    gained_m2 = serializers.FloatField()
    lost_m2 = serializers.FloatField()


class ImportReportSerializer(serializers.Serializer):
    source = serializers.CharField()
    crs = serializers.ChoiceField(choices=CRS_CHOICES)
    dry_run = serializers.BooleanField()
    written = serializers.BooleanField()
    created = serializers.DictField(child=serializers.IntegerField())
    updated = serializers.DictField(child=serializers.IntegerField())
    unchanged = serializers.DictField(child=serializers.IntegerField())
    totals = serializers.DictField(child=serializers.IntegerField())
    repaired = RepairedSerializer(many=True)
    lines = serializers.ListField(child=serializers.CharField())


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
