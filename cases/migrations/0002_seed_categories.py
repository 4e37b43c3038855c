from django.db import migrations


def seed(apps, schema_editor):
    from cases.taxonomy import seed_categories

    seed_categories(
        category_model=apps.get_model("cases", "Category"),
        time_limit_model=apps.get_model("cases", "TimeLimit"),
    )


class Migration(migrations.Migration):
    dependencies = [("cases", "0001_initial")]

    # Reversing leaves the classes: cases may already refer to them.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
