"""The built-in roles (DESIGN.md §1) and the permissions they start with.

Roles are data: after the first migration an admin edits what each role may
do, and :func:`sync_builtin_roles` only creates roles that are missing — it
never takes back a permission an admin removed or adds one they did not grant.
"""

from __future__ import annotations

from django.contrib.auth.models import Permission
from django.db import transaction

# Read access to the city's geography: every staff role needs it.
GEO_READ = ["geo.view_area", "geo.view_gridstaff", "geo.view_building"]
# Reading the cases of one's areas (and their categories): every role on the
# case loop. What a role may *do* to a case is the transition table's business
# (cases/workflow.py), checked against the same memberships.
CASE_READ = ["cases.view_case", "cases.view_category"]
STAFF_READ = [*GEO_READ, *CASE_READ]
# Screening what residents send (portal moderation): answering and publishing
# suggestions, approving photos for the public, keeping the blocklist. Roles
# that existed before these were added get them from portal migration 0003.
MODERATE = [
    "portal.view_suggestion",
    "portal.change_suggestion",
    "portal.view_blocked",
    "portal.add_blocked",
    "portal.delete_blocked",
    "cases.change_casephoto",
]

BUILTIN_ROLES: list[dict] = [
    {
        "code": "resident",
        "name": "居民",
        "name_en": "Resident",
        "description": "Reports problems on the public portal, follows and rates them.",
        "permissions": [],
    },
    {
        "code": "grid_worker",
        "name": "网格员",
        "name_en": "Grid worker",
        "description": "Patrols grids, reports problems, verifies reports and checks results.",
        "permissions": STAFF_READ,
    },
    {
        "code": "grid_leader",
        "name": "网格长",
        "name_en": "Grid leader",
        "description": "Leads the grid workers of a community's grids.",
        "permissions": STAFF_READ,
    },
    {
        "code": "intake_clerk",
        "name": "受理员",
        "name_en": "Intake clerk",
        "description": "Screens incoming reports and sends verification tasks.",
        "permissions": [*STAFF_READ, *MODERATE],
    },
    {
        "code": "shift_lead",
        "name": "值班长",
        "name_en": "Shift lead",
        "description": "Files or rejects cases and closes them.",
        "permissions": [*STAFF_READ, *MODERATE],
    },
    {
        "code": "dispatcher",
        "name": "派遣员",
        "name_en": "Dispatcher",
        "description": "Sends filed cases to the responsible department.",
        "permissions": [*STAFF_READ, "accounts.view_department"],
    },
    {
        "code": "handler",
        "name": "处置人员",
        "name_en": "Handler",
        "description": "Works cases sent to their department and reports the result.",
        "needs_department": True,
        "permissions": STAFF_READ,
    },
    {
        "code": "department_head",
        "name": "部门负责人",
        "name_en": "Department head",
        "description": "Leads a department's handlers.",
        "needs_department": True,
        "permissions": [*STAFF_READ, "accounts.view_department", "accounts.view_membership"],
    },
    {
        "code": "leader",
        "name": "领导",
        "name_en": "Leader",
        "description": "Watches dashboards and supervises overdue or serious cases.",
        "permissions": [*STAFF_READ, "accounts.view_department"],
    },
    {
        "code": "admin",
        "name": "系统管理员",
        "name_en": "Administrator",
        "description": "Runs users, roles, departments, dictionaries, thresholds and the area tree.",
        "permissions": [
            *STAFF_READ,
            *MODERATE,
            "cases.add_category",
            "cases.change_category",
            "cases.view_timelimit",
            "cases.add_timelimit",
            "cases.change_timelimit",
            "cases.delete_timelimit",
            "cases.view_routingrule",
            "cases.add_routingrule",
            "cases.change_routingrule",
            "cases.delete_routingrule",
            "geo.add_area",
            "geo.change_area",
            "geo.delete_area",
            "geo.import_area",
            "geo.partition_area",
            "geo.add_gridstaff",
            "geo.change_gridstaff",
            "geo.delete_gridstaff",
            "accounts.view_user",
            "accounts.add_user",
            "accounts.change_user",
            "accounts.import_user",
            "accounts.view_department",
            "accounts.add_department",
            "accounts.change_department",
            "accounts.view_role",
            "accounts.add_role",
            "accounts.change_role",
            "accounts.view_membership",
            "accounts.add_membership",
            "accounts.change_membership",
            "accounts.delete_membership",
            "core.view_dictionary",
            "core.add_dictionary",
            "core.change_dictionary",
            "core.view_dictionaryitem",
            "core.add_dictionaryitem",
            "core.change_dictionaryitem",
            "core.delete_dictionaryitem",
            "core.view_systemsetting",
            "core.change_systemsetting",
            "open311.view_apikey",
            "open311.add_apikey",
            "open311.change_apikey",
        ],
    },
    {
        "code": "auditor",
        "name": "审计员",
        "name_en": "Auditor",
        "description": "Reads the audit log; changes nothing.",
        "permissions": ["accounts.view_auditentry", "accounts.export_auditentry"],
    },
]


def permissions_by_name(names: list[str]) -> list[Permission]:
    wanted = {tuple(n.split(".", 1)) for n in names}
    found = [
        p
        for p in Permission.objects.select_related("content_type").filter(
            codename__in=[c for _, c in wanted]
        )
        if (p.content_type.app_label, p.codename) in wanted
    ]
    missing = wanted - {(p.content_type.app_label, p.codename) for p in found}
    if missing:
        raise LookupError(f"unknown permissions: {sorted('.'.join(m) for m in missing)}")
    return found


@transaction.atomic
def sync_builtin_roles() -> list[str]:
    """Create the built-in roles that do not exist yet; return their codes."""
    from .models import Role

    created = []
    existing = set(Role.objects.values_list("code", flat=True))
    for spec in BUILTIN_ROLES:
        if spec["code"] in existing:
            continue
        role = Role.objects.create(
            code=spec["code"],
            name=spec["name"],
            name_en=spec["name_en"],
            description=spec["description"],
            needs_department=spec.get("needs_department", False),
            is_builtin=True,
        )
        role.permissions.set(permissions_by_name(spec["permissions"]))
        created.append(role.code)
    return created
