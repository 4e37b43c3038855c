from django.db import models
from django.utils.translation import gettext_lazy as _


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True


class Dictionary(models.Model):
    """A code list other parts use (urgency levels, sources …) with zh and en labels."""

    code = models.SlugField(_("code"), max_length=60, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("dictionary")
        verbose_name_plural = _("dictionaries")

    def __str__(self) -> str:
        return self.name


class DictionaryItem(models.Model):
    dictionary = models.ForeignKey(
        Dictionary, on_delete=models.CASCADE, related_name="items", verbose_name=_("dictionary")
    )
    code = models.CharField(_("code"), max_length=60)
    label = models.CharField(_("label"), max_length=100)
    label_en = models.CharField(_("English label"), max_length=100, blank=True)
    sort_order = models.PositiveIntegerField(_("order"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["dictionary", "sort_order", "code"]
        verbose_name = _("dictionary item")
        verbose_name_plural = _("dictionary items")
        constraints = [
            models.UniqueConstraint(
                fields=["dictionary", "code"], name="core_dictionaryitem_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.label


class SystemSetting(models.Model):
    """A named, typed setting an admin can change at run time (e.g. the yellow line)."""

    key = models.CharField(_("key"), max_length=100, unique=True)
    value = models.JSONField(_("value"))
    description = models.CharField(_("description"), max_length=200, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["key"]
        verbose_name = _("system setting")
        verbose_name_plural = _("system settings")

    def __str__(self) -> str:
        return self.key


class CalendarOverride(models.Model):
    """One city's own answer for one date: a working day or a day off.

    It wins over weekends and over the national holidays of the ``holidays``
    package; it is how a city adds a local holiday, or a year the package does
    not hold yet.
    """

    date = models.DateField(_("date"), unique=True)
    is_working_day = models.BooleanField(_("working day"))
    note = models.CharField(_("note"), max_length=200, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["date"]
        verbose_name = _("calendar override")
        verbose_name_plural = _("calendar overrides")

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {'working' if self.is_working_day else 'off'}"


class VersionCounter(models.Model):
    """Named counters bumped in the same transaction as a change to what they
    version (the areas, the calendar overrides). Every process compares them
    with the version its in-memory copy was built from, so a change made by
    any process reaches all of them (see :mod:`core.versioning`)."""

    key = models.CharField(max_length=32, primary_key=True)
    version = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("version counter")

    def __str__(self) -> str:
        return f"{self.key} v{self.version}"


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove a row of an append-only table."""


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk update() and delete() refuse, like the rows themselves."""

    def update(self, **kwargs):
        raise self.model.AppendOnly(f"{self.model._meta.verbose_name_plural} cannot be updated")

    def delete(self):
        raise self.model.AppendOnly(f"{self.model._meta.verbose_name_plural} cannot be deleted")


class AppendOnlyModel(models.Model):
    """A record of history (the audit log, a case's timeline): written once, never edited.

    The ORM refuses here; on PostgreSQL a trigger installed by the owning
    app's migration refuses raw UPDATE and DELETE too. ``AppendOnly`` names the
    error a subclass raises, so callers can tell which history refused.
    """

    AppendOnly: type[AppendOnlyError] = AppendOnlyError

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise self.AppendOnly(
                f"{self._meta.verbose_name_plural} cannot be changed once written"
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise self.AppendOnly(f"{self._meta.verbose_name_plural} cannot be deleted")
