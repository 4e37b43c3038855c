"""What residents send besides reports (suggestions, questions) and what keeps abuse out."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.scopes import RestrictedQuerySet


class BlockedKind(models.TextChoices):
    EMAIL = "email", _("e-mail")
    PHONE = "phone", _("phone")
    IP = "ip", _("IP address or network")


class Blocked(models.Model):
    """An e-mail, phone or address (or network) whose public writes are refused."""

    kind = models.CharField(_("kind"), max_length=10, choices=BlockedKind.choices)
    # Normalised: e-mail lower-cased, phone digits only, IP or CIDR network.
    value = models.CharField(_("value"), max_length=254)
    reason = models.CharField(_("reason"), max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("blocked by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)

    class Meta:
        ordering = ["kind", "value"]
        verbose_name = _("blocked sender")
        verbose_name_plural = _("blocklist")
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="portal_blocked_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value}"


class Suggestion(models.Model):
    """A resident's suggestion (建议) or question (咨询), answered by staff and, after
    moderation, optionally published with its answer (never with who asked)."""

    class Kind(models.TextChoices):
        SUGGESTION = "suggestion", _("suggestion")
        QUESTION = "question", _("question")

    class Status(models.TextChoices):
        NEW = "new", _("awaiting an answer")
        ANSWERED = "answered", _("answered")
        REJECTED = "rejected", _("rejected")  # spam or abuse: never published

    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    title = models.CharField(_("title"), max_length=200)
    text = models.TextField(_("text"))
    # Where it is about, if anywhere (a grid or a higher area); answers are scoped by it.
    area = models.ForeignKey(
        "geo.Area",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="suggestions",
        verbose_name=_("area"),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.NEW
    )
    answer = models.TextField(_("answer"), blank=True)
    answered_by_id = models.BigIntegerField(_("answered by"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    is_published = models.BooleanField(_("published"), default=False)
    # Personal data: who asked (an account, or contact details), kept like a
    # reporter's (erased with the account or after the retention period).
    resident = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="suggestions",
        verbose_name=_("resident"),
    )
    contact_email = models.EmailField(_("e-mail"), blank=True)
    contact_phone = models.CharField(_("phone"), max_length=32, blank=True)
    public_token = models.CharField(_("tracking secret"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    objects = RestrictedQuerySet.as_manager()
    scope_path = "area__code"

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("suggestion or question")
        verbose_name_plural = _("suggestions and questions")
        indexes = [models.Index(fields=["status", "created_at"], name="portal_sugg_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["public_token"],
                condition=~Q(public_token=""),
                name="portal_suggestion_token",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"


class ResidentLogin(models.Model):
    """The e-mail address or mobile number a resident signs in with.

    A resident's username is a random name (``r-…``), never the e-mail or
    phone: usernames are written into case timelines and the audit log, which
    are append-only, and a resident's contact must be erasable. This row is
    what makes each e-mail and each phone belong to one account at most; it
    is deleted when the resident erases her data.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", _("e-mail")
        PHONE = "phone", _("phone")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="resident_login",
        verbose_name=_("resident"),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    # Normalised: e-mail lower-cased, phone 11 digits without a country code.
    value = models.CharField(_("e-mail or phone"), max_length=254)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("resident sign-in")
        verbose_name_plural = _("resident sign-ins")
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="portal_residentlogin_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.user_id}"
