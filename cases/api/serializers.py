"""What the cases API sends and takes; no logic beyond shaping data.

Nothing here carries the reporter's name, phone or e-mail: they are personal
data (cases.models.Case) and stay out of lists, details and timelines.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cases import selectors, workflow
from cases.models import Case, CaseEvent, CasePhoto, CaseState, Kind, Source, Urgency
from geo.api.serializers import ErrorSerializer


class ConflictSerializer(ErrorSerializer):
    state = serializers.ChoiceField(choices=CaseState.choices, help_text=_("the case's state now"))
    version = serializers.IntegerField(help_text=_("the case's version now (its ETag)"))


class CaseReportSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Kind.choices)
    category = serializers.RegexField(
        r"^[0-9]{4}$", help_text=_("the 4-digit code of a minor class of this kind")
    )
    lat = serializers.FloatField(min_value=-90, max_value=90, help_text=_("WGS-84 latitude"))
    lng = serializers.FloatField(min_value=-180, max_value=180, help_text=_("WGS-84 longitude"))
    description = serializers.CharField(max_length=4000)
    source = serializers.ChoiceField(choices=Source.choices, default=Source.API)
    urgency = serializers.ChoiceField(choices=Urgency.choices, default=Urgency.NORMAL)
    address = serializers.CharField(max_length=300, required=False, default="", allow_blank=True)
    reporter_name = serializers.CharField(
        max_length=100, required=False, default="", allow_blank=True
    )
    reporter_phone = serializers.CharField(
        max_length=32, required=False, default="", allow_blank=True
    )
    reporter_email = serializers.EmailField(required=False, default="", allow_blank=True)
    photos = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        default=list,
        max_length=workflow.MAX_PHOTOS,
        help_text=_("up to 9 JPEG, PNG or WebP photos (multipart/form-data)"),
    )

    def validate(self, attrs):
        category = selectors.category_by_code(kind=attrs["kind"], code=attrs["category"])
        if category is None:
            raise serializers.ValidationError({"category": [_("No class has this code.")]})
        attrs["category"] = category
        del attrs["kind"]
        return attrs


class CaseActionSerializer(serializers.Serializer):
    note = serializers.CharField(
        max_length=2000, required=False, default="", allow_blank=True, help_text=_("the reason")
    )
    department = serializers.CharField(
        max_length=40, required=False, help_text=_("code of the department (dispatch)")
    )
    merge_into = serializers.CharField(
        max_length=24, required=False, help_text=_("number of the case this one duplicates")
    )
    until = serializers.DateTimeField(
        required=False, help_text=_("the new deadline asked for (postpone_request)")
    )
    assignee = serializers.CharField(
        max_length=150,
        required=False,
        help_text=_(
            "username of the grid worker to verify (verify_request); the grid's own when empty"
        ),
    )
    photos = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        default=list,
        max_length=workflow.MAX_PHOTOS,
        help_text=_("up to 9 photos of this step (multipart/form-data)"),
    )
    version = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text=_("the version the caller read, when it cannot send If-Match"),
    )


class CaseEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor_username", help_text=_("empty for the system (the overdue sweep)")
    )

    class Meta:
        model = CaseEvent
        fields = [
            "id",
            "at",
            "actor",
            "role",
            "action",
            "from_state",
            "to_state",
            "note",
            "deadline",
        ]
        read_only_fields = fields


class CasePhotoSerializer(serializers.ModelSerializer):
    event = serializers.IntegerField(source="event_id", allow_null=True)
    url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = CasePhoto
        fields = ["id", "action", "event", "url", "thumbnail_url", "width", "height", "created_at"]
        read_only_fields = fields

    def get_url(self, photo: CasePhoto) -> str:
        return reverse("cases:photo", args=[photo.pk, "full"])

    def get_thumbnail_url(self, photo: CasePhoto) -> str:
        return reverse("cases:photo", args=[photo.pk, "thumb"])


class DuplicateSerializer(serializers.Serializer):
    number = serializers.CharField()
    state = serializers.ChoiceField(choices=CaseState.choices)
    distance_m = serializers.FloatField(help_text=_("metres from this case"))
    age_hours = serializers.FloatField(help_text=_("hours since it was reported"))

    def to_representation(self, duplicate):
        # A report lists up to ten; read straight from selectors.Duplicate, whose
        # fields are already the plain values the declared fields would give.
        return {
            "number": duplicate.number,
            "state": duplicate.state,
            "distance_m": float(duplicate.distance_m),
            "age_hours": float(duplicate.age_hours),
        }


class CaseListItemSerializer(serializers.ModelSerializer):
    """A case in a list: where, what, where it stands and its light."""

    category = serializers.CharField(source="category.code")
    category_name = serializers.CharField(source="category.name")
    area = serializers.CharField(source="area.code", help_text=_("the grid's code"))
    area_name = serializers.CharField(source="area.name")
    department = serializers.CharField(source="department.code", allow_null=True, default=None)
    state_label = serializers.CharField(source="get_state_display")
    light = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "number",
            "kind",
            "category",
            "category_name",
            "urgency",
            "state",
            "state_label",
            "version",
            "area",
            "area_name",
            "level",
            "department",
            "source",
            "description",
            "address",
            "lat",
            "lng",
            "step",
            "step_deadline",
            "deadline",
            "light",
            "step_overdue",
            "overdue",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=selectors.LIGHTS, allow_null=True))
    def get_light(self, case: Case):
        return selectors.case_light(case, now=self.context.get("now"))


class CaseDetailSerializer(CaseListItemSerializer):
    merged_into = serializers.CharField(source="merged_into.number", allow_null=True, default=None)
    timeline = CaseEventSerializer(many=True, source="timeline_entries")
    actions = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(workflow.all_actions())),
        source="allowed_actions",
        help_text=_("what the caller may do to the case now"),
    )
    assignee = serializers.CharField(
        source="assignee.username",
        allow_null=True,
        default=None,
        help_text=_("the grid worker the open verify or check task names"),
    )
    photos = CasePhotoSerializer(many=True, source="photo_list")
    duplicates = DuplicateSerializer(
        many=True,
        source="duplicate_list",
        help_text=_("open cases this report may duplicate (while awaiting intake)"),
    )

    class Meta(CaseListItemSerializer.Meta):
        fields = [
            *CaseListItemSerializer.Meta.fields,
            "rework_count",
            "send_back_count",
            "postpone_count",
            "postpone_until",
            "supervise_count",
            "supervised_at",
            "assignee",
            "merged_into",
            "closed_at",
            "timeline",
            "photos",
            "duplicates",
            "actions",
        ]
        read_only_fields = fields


class CasePageSerializer(serializers.Serializer):
    results = CaseListItemSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text=_("pass as `cursor` for the next page; null on the last")
    )
