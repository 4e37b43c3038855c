"""Client applications allowed to post service requests through Open311."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApiKey(models.Model):
    """An Open311 client's key: scoped to one jurisdiction (an area), revocable,
    rate-limited. Only a hash of the key is stored; the key is shown once."""

    name = models.CharField(_("client application"), max_length=100)
    jurisdiction = models.ForeignKey(
        "geo.Area",
        on_delete=models.PROTECT,
        related_name="open311_keys",
        verbose_name=_("jurisdiction"),
    )
    prefix = models.CharField(_("key prefix"), max_length=16, unique=True)
    key_hash = models.CharField(_("key hash"), max_length=64)
    requests_per_minute = models.PositiveIntegerField(_("requests per minute"), default=60)
    contact = models.CharField(_("contact"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    scope_path = "jurisdiction__code"

    class Meta:
        ordering = ["name"]
        verbose_name = _("Open311 API key")
        verbose_name_plural = _("Open311 API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class RequestToken(models.Model):
    """The token of one service request posted through Open311.

    GeoReport v2 lets a client trade a token for the service request id
    (``GET tokens/<token>``). CivicGrid creates every request at once and answers
    the POST with the id itself, and also hands the client this token (in the
    ``X-Open311-Token`` header), so the token resource always has something to
    answer. A token names a case and nothing else: it grants no right over it.
    """

    token = models.CharField(_("token"), max_length=64, unique=True)
    case = models.ForeignKey(
        "cases.Case",
        on_delete=models.CASCADE,
        related_name="open311_tokens",
        verbose_name=_("case"),
    )
    api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.PROTECT,
        related_name="tokens",
        verbose_name=_("API key"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("Open311 request token")
        verbose_name_plural = _("Open311 request tokens")

    def __str__(self) -> str:
        return self.token
