"""People and organisation: users, departments, roles, memberships, API tokens, audit log.

A user acts through memberships. Each membership is a role (what the user may
do — data an admin edits, backed by Django permissions) held over one area
subtree (where) and, for department roles, one department (for whom).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Permission
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.models import AppendOnlyError, AppendOnlyModel, AppendOnlyQuerySet, TimeStampedModel

from .scopes import RestrictedQuerySet


class UserManager(DjangoUserManager.from_queryset(RestrictedQuerySet)):
    pass


class User(AbstractUser):
    """A person who signs in: staff of the city, or (later) a resident."""

    display_name = models.CharField(_("display name"), max_length=100, blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    # A resident's portal account: signs in on the portal only, holds no role.
    is_resident = models.BooleanField(_("resident"), default=False)

    objects = UserManager()
    # Staff see the users who hold a membership inside their area.
    scope_path = "memberships__area__code"
    scope_distinct = True

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")
        permissions = [
            ("import_user", _("Can import users and memberships in bulk")),
            ("view_personal_data", _("Can view personal data of users")),
        ]

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username


class Department(TimeStampedModel):
    """A unit that acts on cases: a district bureau, a command center, a workstation."""

    class Kind(models.TextChoices):
        BUREAU = "bureau", _("bureau")
        COMMAND_CENTER = "command_center", _("command center")
        WORKSTATION = "workstation", _("community workstation")
        OTHER = "other", _("other")

    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=200, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.BUREAU)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("parent"),
    )
    # The area the department serves; its scope for routing and visibility.
    area = models.ForeignKey(
        "geo.Area", on_delete=models.PROTECT, related_name="departments", verbose_name=_("area")
    )
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    objects = RestrictedQuerySet.as_manager()
    scope_path = "area__code"

    class Meta:
        ordering = ["code"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")

    def __str__(self) -> str:
        return self.name


class Role(models.Model):
    """What a membership lets its holder do; the permissions are data, not code."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    needs_department = models.BooleanField(
        _("needs a department"),
        default=False,
        help_text=_("Memberships with this role must name the department they act for."),
    )
    permissions = models.ManyToManyField(
        Permission, blank=True, related_name="civicgrid_roles", verbose_name=_("permissions")
    )
    is_builtin = models.BooleanField(_("built in"), default=False, editable=False)

    objects = RestrictedQuerySet.as_manager()
    scope_path = None

    class Meta:
        ordering = ["code"]
        verbose_name = _("role")
        verbose_name_plural = _("roles")

    def __str__(self) -> str:
        return self.name


class Membership(TimeStampedModel):
    """A role held by a user over an area subtree (and for some roles, a department)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
    )
    role = models.ForeignKey(
        Role, on_delete=models.PROTECT, related_name="memberships", verbose_name=_("role")
    )
    area = models.ForeignKey(
        "geo.Area",
        on_delete=models.PROTECT,
        related_name="memberships",
        verbose_name=_("area"),
        help_text=_("The member acts on this area and everything below it."),
    )
    department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="memberships",
        verbose_name=_("department"),
    )
    is_active = models.BooleanField(_("active"), default=True)

    objects = RestrictedQuerySet.as_manager()
    scope_path = "area__code"

    class Meta:
        ordering = ["user", "role"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role", "area", "department"],
                name="accounts_membership_unique",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.role} · {self.area_id}"


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the key is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=100)
    # The first characters of the key, kept in clear so a user can tell tokens apart.
    prefix = models.CharField(_("prefix"), max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class AuditLogIsAppendOnly(AppendOnlyError):
    """Raised on any attempt to change or remove an audit entry through the ORM."""


class AuditEntryQuerySet(AppendOnlyQuerySet, RestrictedQuerySet):
    pass


class AuditEntry(AppendOnlyModel):
    """One line of the audit log. Append-only: no update, no delete.

    The actor is kept as id and username rather than a foreign key, so deleting
    a user never needs to touch (and so never can rewrite) the log. On
    PostgreSQL a trigger refuses UPDATE and DELETE on this table.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success", _("success")
        FAILURE = "failure", _("failure")
        DENIED = "denied", _("denied")

    at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor_id = models.BigIntegerField(_("actor id"), null=True, blank=True, db_index=True)
    actor_username = models.CharField(_("actor"), max_length=150, blank=True)
    role = models.CharField(_("role"), max_length=200, blank=True)
    action = models.CharField(_("action"), max_length=64, db_index=True)
    object_type = models.CharField(_("object type"), max_length=100, blank=True, db_index=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    purpose = models.CharField(_("purpose"), max_length=200, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS
    )
    detail = models.JSONField(_("detail"), null=True, blank=True)

    AppendOnly = AuditLogIsAppendOnly
    objects = AuditEntryQuerySet.as_manager()
    # Audit entries are not located in an area: the permission alone decides.
    scope_path = None

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        permissions = [("export_auditentry", _("Can export the audit log"))]
        indexes = [models.Index(fields=["object_type", "object_id"], name="accounts_audit_object")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action} {self.object_repr}"
