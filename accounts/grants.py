"""Granting new permissions to built-in roles that already exist, from a migration.

accounts.roles.sync_builtin_roles creates missing roles only, so a role that
already exists does not pick up a permission added to BUILTIN_ROLES later. An
app that adds such a permission ships a data migration calling
:func:`grant_to_builtin_roles` once, on upgrade; an admin may take the
permission away again afterwards. A fresh database has no roles yet, and
sync_builtin_roles then creates them with the permission.
"""

from __future__ import annotations

from django.contrib.auth.management import create_permissions


def grant_to_builtin_roles(apps, role_codes, permissions) -> None:
    """Add ``permissions`` (``(app_label, codename)`` pairs) to the built-in roles
    ``role_codes`` that exist. For use in ``migrations.RunPython``."""
    Role = apps.get_model("accounts", "Role")
    Permission = apps.get_model("auth", "Permission")
    roles = list(Role.objects.filter(code__in=role_codes, is_builtin=True))
    if not roles:
        return
    # Permissions are normally created after the whole migration run; these
    # are needed now.
    for label in {app for app, _codename in permissions}:
        config = apps.get_app_config(label)
        kept = getattr(config, "models_module", None)
        config.models_module = kept or True
        try:
            create_permissions(config, apps=apps, verbosity=0)
        finally:
            config.models_module = kept
    found = [
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in permissions
    ]
    for role in roles:
        role.permissions.add(*found)
