"""Give the built-in roles that screen residents' input the moderation permissions
(on upgrade, where they exist; see accounts.grants)."""

from django.db import migrations

from accounts.grants import grant_to_builtin_roles

MODERATION_ROLES = ("intake_clerk", "shift_lead", "admin")
MODERATION_PERMISSIONS = (
    ("portal", "view_suggestion"),
    ("portal", "change_suggestion"),
    ("portal", "view_blocked"),
    ("portal", "add_blocked"),
    ("portal", "delete_blocked"),
    ("cases", "change_casephoto"),
)


def add_moderation_permissions(apps, schema_editor):
    grant_to_builtin_roles(apps, MODERATION_ROLES, MODERATION_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_resident_login"),
        ("accounts", "0005_user_is_resident"),
        ("cases", "0007_resident_reports"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(add_moderation_permissions, migrations.RunPython.noop),
    ]
