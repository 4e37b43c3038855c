"""Give the built-in admin role, where it exists, the Open311 key permissions."""

from django.db import migrations

from accounts.grants import grant_to_builtin_roles


def add_key_permissions(apps, schema_editor):
    grant_to_builtin_roles(
        apps,
        ("admin",),
        (("open311", "view_apikey"), ("open311", "add_apikey"), ("open311", "change_apikey")),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("open311", "0002_request_token"),
        ("accounts", "0005_user_is_resident"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(add_key_permissions, migrations.RunPython.noop),
    ]
