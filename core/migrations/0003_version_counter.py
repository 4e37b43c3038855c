"""One keyed version counter for every in-memory copy (areas, calendar).

The counts carry over from the two single-purpose tables it replaces, so a
process that cached a version before the upgrade still sees the next change.
"""

from django.db import migrations, models


def carry_over(apps, schema_editor):
    VersionCounter = apps.get_model("core", "VersionCounter")
    GeoVersion = apps.get_model("geo", "GeoVersion")
    CalendarVersion = apps.get_model("core", "CalendarVersion")
    for row in GeoVersion.objects.all():
        VersionCounter.objects.create(key=row.key, version=row.version)
    calendar = CalendarVersion.objects.filter(pk=1).first()
    if calendar is not None:
        VersionCounter.objects.create(key="calendar", version=calendar.version)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_calendaroverride_calendarversion"),
        ("geo", "0002_area_permissions"),
    ]

    operations = [
        migrations.CreateModel(
            name="VersionCounter",
            fields=[
                ("key", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("version", models.BigIntegerField(default=0)),
            ],
            options={"verbose_name": "version counter"},
        ),
        migrations.RunPython(carry_over, migrations.RunPython.noop),
        migrations.DeleteModel(name="CalendarVersion"),
    ]
