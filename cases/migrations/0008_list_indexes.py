"""The case list at a million cases: the grid's code on the case, and indexes in list order.

``Case.area_code`` copies the grid's code so that scopes and area filters
compare it on the case row, without a join; existing cases get it here.

Each new index is filter columns followed by the list's order (created_at,
id): a list narrowed to a state, a few grids or a department reads its newest
cases in index order and stops after a page instead of sorting every match.
Trailing columns let the scope (area_code), a light (the step's deadline and
yellow moment) and the console's groups (supervise_count) be decided from the
index entry. (state, created_at, id, …) replaces (state, step_deadline) and
(state, step_yellow_at), whose ranges led SQLite, which keeps no statistics,
to sort every lit case for one page; (department, state, created_at, id, …)
replaces (department, state) and serves what it served.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_grid_codes(apps, schema_editor):
    Case = apps.get_model("cases", "Case")
    Area = apps.get_model("geo", "Area")
    code = Area.objects.filter(pk=OuterRef("area_id")).values("code")[:1]
    Case.objects.update(area_code=Subquery(code))


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0007_resident_reports"),
        ("geo", "0003_version_counter"),
    ]

    operations = [
        migrations.AddField(
            model_name="case",
            name="area_code",
            field=models.CharField(
                default="", editable=False, max_length=14, verbose_name="grid code"
            ),
        ),
        migrations.RunPython(copy_grid_codes, migrations.RunPython.noop, elidable=True),
        migrations.RemoveIndex(model_name="case", name="cases_case_state_due"),
        migrations.RemoveIndex(model_name="case", name="cases_case_state_yellow"),
        migrations.RemoveIndex(model_name="case", name="cases_case_dept_state"),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                fields=[
                    "state",
                    "created_at",
                    "id",
                    "step_deadline",
                    "step_yellow_at",
                    "supervise_count",
                    "area_code",
                ],
                name="cases_case_state_created",
            ),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                fields=["area_code", "created_at", "id"], name="cases_case_area_created"
            ),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                fields=["department", "created_at", "id", "area_code"],
                name="cases_case_dept_created",
            ),
        ),
        migrations.AddIndex(
            model_name="case",
            index=models.Index(
                fields=["department", "state", "created_at", "id", "area_code"],
                name="cases_case_dept_state_created",
            ),
        ),
    ]
