"""The standard category taxonomy (CJ/T 214 style) with criteria and time limits.

``seed_categories`` adds what is missing and leaves what exists alone, so it is
safe to run any number of times and never undoes an admin's edit. The initial
data migration calls it with the migration's historical models; the
``seed_categories`` command calls it with the live ones.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

HOURS = "working_hours"
DAYS = "working_days"

STEPS = ("verify", "file", "dispatch", "handle", "check", "close")
URGENCIES = ("normal", "urgent", "emergency")

# Limits of every step but handling, per urgency, in working hours. They are set
# on the major classes; a minor class inherits them unless it has its own.
STEP_HOURS = {
    "verify": (2, 1, 0.5),
    "file": (1, 0.5, 0.25),
    "dispatch": (1, 0.5, 0.25),
    "check": (4, 2, 1),
    "close": (2, 1, 0.5),
}


def _limit(text: str) -> tuple[Decimal, str]:
    """``"2h"`` → 2 working hours, ``"3d"`` → 3 working days."""
    amount, unit = Decimal(text[:-1]), text[-1]
    return amount, HOURS if unit == "h" else DAYS


def handle_limits(normal: str) -> dict[str, tuple[Decimal, str]]:
    """Handling limits per urgency: urgent halves the normal limit, emergency quarters it.

    The faster limits are in working hours (a working day counts 8), at least half an hour.
    """
    amount, unit = _limit(normal)
    hours = amount * 8 if unit == DAYS else amount
    faster = {
        "urgent": max(Decimal("0.5"), hours / 2),
        "emergency": max(Decimal("0.5"), hours / 4),
    }
    return {
        "normal": (amount, unit),
        "urgent": (faster["urgent"].quantize(Decimal("0.01")), HOURS),
        "emergency": (faster["emergency"].quantize(Decimal("0.01")), HOURS),
    }


# (code, name, English name, handling limit of the major class, help for residents,
#  [(code, name, English name, handling limit, filing criteria, closing criteria), ...])
EVENTS = [
    (
        "01",
        "市容环境",
        "City appearance and sanitation",
        "1d",
        "Garbage, dirt and pollution in streets, squares and waters.",
        [
            (
                "0101",
                "暴露垃圾",
                "Exposed garbage",
                "1d",
                "Exposed garbage of 0.5 m² or more, or visible from the road.",
                "Garbage removed; no residue or stain left on site.",
            ),
            (
                "0102",
                "积存垃圾渣土",
                "Accumulated garbage and muck",
                "2d",
                "Accumulated garbage or construction muck of 1 m³ or more.",
                "All garbage and muck cleared; ground swept.",
            ),
            (
                "0103",
                "道路不洁",
                "Dirty road surface",
                "4h",
                "Continuous litter, mud or spilled material over 10 m² of roadway or pavement.",
                "Surface swept or washed clean over the whole stretch.",
            ),
            (
                "0104",
                "水域不洁",
                "Polluted water surface",
                "1d",
                "Floating waste of 1 m² or more on a river, lake or canal.",
                "Floating waste removed; water surface clear.",
            ),
            (
                "0105",
                "焚烧垃圾",
                "Burning garbage",
                "2h",
                "Garbage, leaves or straw burning in the open.",
                "Fire out; burnt remains cleared.",
            ),
            (
                "0106",
                "动物尸体",
                "Animal carcass",
                "2h",
                "An animal carcass on a road, in green space or in water.",
                "Carcass removed and the spot disinfected.",
            ),
            (
                "0107",
                "道路遗撒",
                "Spillage from vehicles",
                "4h",
                "Material dropped by vehicles along a road over 5 m or more.",
                "Spillage cleared; the vehicle's owner identified where possible.",
            ),
        ],
    ),
    (
        "02",
        "宣传广告",
        "Advertising and notices",
        "2d",
        "Illegal posters, graffiti, banners and unsafe signs.",
        [
            (
                "0201",
                "非法小广告",
                "Illegal small advertisements",
                "2d",
                "Three or more stuck-on, sprayed or painted advertisements on a public surface.",
                "Advertisements removed; the surface restored to its colour.",
            ),
            (
                "0202",
                "违规户外广告",
                "Non-compliant outdoor advertising",
                "5d",
                "An outdoor advertisement without approval, damaged, or at risk of falling.",
                "Advertisement removed, repaired or made safe, with approval shown.",
            ),
            (
                "0203",
                "占道广告牌",
                "Sign boards on the road",
                "1d",
                "A movable sign board standing on a road or pavement.",
                "Sign board taken away.",
            ),
            (
                "0204",
                "违规张挂条幅",
                "Unauthorised banners",
                "1d",
                "A banner hung without approval, or torn or faded.",
                "Banner taken down.",
            ),
        ],
    ),
    (
        "03",
        "施工管理",
        "Construction management",
        "1d",
        "Building works that block roads, make noise or dust, or have no permit.",
        [
            (
                "0301",
                "施工占道",
                "Construction occupying the road",
                "1d",
                "Works, materials or fencing on a road beyond the approved area or time.",
                "Road space returned; fencing within the approved line.",
            ),
            (
                "0302",
                "施工扰民",
                "Construction noise",
                "4h",
                "Noisy works between 22:00 and 06:00 without a night-work permit.",
                "Works stopped or a valid permit shown; no noise on re-check.",
            ),
            (
                "0303",
                "无证施工",
                "Construction without permit",
                "2d",
                "Building or excavation with no construction permit on show.",
                "Works stopped and handed to the licensing authority, or a permit shown.",
            ),
            (
                "0304",
                "工地扬尘",
                "Dust from a construction site",
                "4h",
                "Visible dust leaving a site; bare earth or muck not covered.",
                "Earth covered, roads damped, no visible dust on re-check.",
            ),
            (
                "0305",
                "道路开挖未恢复",
                "Excavation not restored",
                "3d",
                "A trench or pit in a road left open or badly backfilled after works.",
                "Surface restored flush and safe for traffic.",
            ),
        ],
    ),
    (
        "04",
        "突发事件",
        "Emergencies",
        "2h",
        "Sudden dangers to people or traffic: collapses, flooding, leaks, fallen trees.",
        [
            (
                "0401",
                "路面塌陷",
                "Road surface collapse",
                "2h",
                "A sunken or collapsed road surface of any size.",
                "Site fenced at once; surface repaired and open to traffic.",
            ),
            (
                "0402",
                "道路积水",
                "Waterlogged road",
                "2h",
                "Standing water 15 cm deep or more, or blocking a lane.",
                "Water drained; drains cleared.",
            ),
            (
                "0403",
                "火灾隐患",
                "Fire hazard",
                "4h",
                "Blocked fire lanes, piled flammables or unsafe wiring in a public place.",
                "Hazard removed; fire lane clear.",
            ),
            (
                "0404",
                "供水管道破裂",
                "Burst water main",
                "2h",
                "Water gushing or seeping from a pipe in a road or pavement.",
                "Supply shut off and pipe repaired; surface restored.",
            ),
            (
                "0405",
                "燃气泄漏",
                "Gas leak",
                "1h",
                "A smell of gas in a street or near a gas facility.",
                "Leak stopped and confirmed safe by the gas company.",
            ),
            (
                "0406",
                "树木倒伏",
                "Fallen tree",
                "2h",
                "A tree or large branch down across a road, pavement or wires.",
                "Tree or branch removed; road clear.",
            ),
            (
                "0407",
                "道路积雪结冰",
                "Snow and ice on the road",
                "4h",
                "Snow or ice on roads, bridges or footways after snowfall.",
                "Snow cleared and ice treated.",
            ),
        ],
    ),
    (
        "05",
        "街面秩序",
        "Street order",
        "4h",
        "Trading, parking and clutter that take streets and pavements from the public.",
        [
            (
                "0501",
                "店外经营",
                "Trading outside the shop",
                "4h",
                "Goods, tables or work set out beyond a shop's front line.",
                "Everything moved back inside the shop front.",
            ),
            (
                "0502",
                "占道经营",
                "Street stall on the road",
                "2h",
                "A stall selling on a road, pavement or square without approval.",
                "Stall gone; the spot clean.",
            ),
            (
                "0503",
                "无照游商",
                "Unlicensed street vendor",
                "2h",
                "A mobile vendor without a licence selling in a street.",
                "Vendor gone from the spot.",
            ),
            (
                "0504",
                "机动车乱停放",
                "Illegally parked motor vehicle",
                "4h",
                "A car or van parked on a pavement, fire lane or blind-path.",
                "Vehicle moved; the spot free.",
            ),
            (
                "0505",
                "非机动车乱停放",
                "Disorderly parked bicycles",
                "4h",
                "Bicycles or e-bikes blocking a pavement, blind-path or entrance.",
                "Bicycles lined up in a marked bay or taken away.",
            ),
            (
                "0506",
                "露天烧烤",
                "Open-air barbecue",
                "2h",
                "Barbecue with smoke in a street or square.",
                "Barbecue stopped and equipment removed.",
            ),
            (
                "0507",
                "占道堆物",
                "Items piled on the road",
                "1d",
                "Objects piled on a road, pavement or in a fire lane.",
                "Objects removed; the way clear.",
            ),
        ],
    ),
]

COMPONENTS = [
    (
        "01",
        "公用设施",
        "Public utilities",
        "1d",
        "Manhole covers, hydrants, street lights and other utility fixtures.",
        [
            (
                "0101",
                "上水井盖",
                "Water supply manhole cover",
                "2h",
                "Cover missing, broken, sunk or loose.",
                "Cover replaced or reset, flush and firm.",
            ),
            (
                "0102",
                "污水井盖",
                "Sewage manhole cover",
                "2h",
                "Cover missing, broken, sunk or loose.",
                "Cover replaced or reset, flush and firm.",
            ),
            (
                "0103",
                "雨水井盖",
                "Storm drain manhole cover",
                "2h",
                "Cover missing, broken, sunk or loose.",
                "Cover replaced or reset, flush and firm.",
            ),
            (
                "0104",
                "电力井盖",
                "Power manhole cover",
                "2h",
                "Cover missing, broken, sunk or loose.",
                "Cover replaced or reset, flush and firm.",
            ),
            (
                "0105",
                "通信井盖",
                "Telecom manhole cover",
                "2h",
                "Cover missing, broken, sunk or loose.",
                "Cover replaced or reset, flush and firm.",
            ),
            (
                "0106",
                "燃气井盖",
                "Gas manhole cover",
                "2h",
                "Cover missing, broken, sunk or loose.",
                "Cover replaced or reset, flush and firm.",
            ),
            (
                "0107",
                "雨水箅子",
                "Storm drain grate",
                "4h",
                "Grate missing, broken or blocked.",
                "Grate replaced or cleared.",
            ),
            (
                "0108",
                "消火栓",
                "Fire hydrant",
                "1d",
                "Hydrant damaged, leaking, blocked or missing its cap.",
                "Hydrant repaired and accessible.",
            ),
            (
                "0109",
                "路灯",
                "Street light",
                "3d",
                "Light out, flickering, damaged pole or open cable box.",
                "Light working at night; pole and box closed and safe.",
            ),
            (
                "0110",
                "景观灯",
                "Decorative light",
                "5d",
                "Decorative lighting out or damaged.",
                "Lighting working and safe.",
            ),
        ],
    ),
    (
        "02",
        "道路交通",
        "Roads and traffic",
        "3d",
        "Bus shelters, signals, signs and railings along roads.",
        [
            (
                "0201",
                "公交站亭",
                "Bus shelter",
                "3d",
                "Shelter glass, seat, sign or roof broken.",
                "Shelter repaired; no sharp edges left.",
            ),
            (
                "0202",
                "交通信号灯",
                "Traffic signal",
                "4h",
                "Signal dark, stuck, wrongly timed or turned.",
                "Signal working in every direction.",
            ),
            (
                "0203",
                "交通标志牌",
                "Traffic sign",
                "3d",
                "Sign missing, bent, turned, covered or unreadable.",
                "Sign readable and correctly placed.",
            ),
            (
                "0204",
                "护栏",
                "Guardrail",
                "2d",
                "Railing broken, leaning or missing a section.",
                "Railing continuous and firm.",
            ),
            (
                "0205",
                "路名牌",
                "Street name sign",
                "5d",
                "Name sign missing, damaged or wrong.",
                "Sign correct and readable.",
            ),
        ],
    ),
    (
        "03",
        "市容环境",
        "City appearance facilities",
        "2d",
        "Litter bins, public toilets and garbage rooms.",
        [
            (
                "0301",
                "垃圾箱",
                "Litter bin",
                "2d",
                "Bin broken, missing, overflowing or burnt.",
                "Bin usable and emptied.",
            ),
            (
                "0302",
                "公厕",
                "Public toilet",
                "1d",
                "Toilet closed in opening hours, dirty, or fittings broken.",
                "Toilet open, clean and working.",
            ),
            (
                "0303",
                "垃圾房",
                "Garbage room",
                "2d",
                "Door, bins or drainage of a garbage room broken or overflowing.",
                "Room clean and closable.",
            ),
            (
                "0304",
                "广告牌匾",
                "Shop sign board",
                "5d",
                "Shop sign damaged, at risk of falling, or lights half out.",
                "Sign fixed firmly or removed.",
            ),
        ],
    ),
    (
        "04",
        "园林绿化",
        "Parks and greenery",
        "2d",
        "Street trees, lawns, flower beds and park furniture.",
        [
            (
                "0401",
                "行道树",
                "Street tree",
                "2d",
                "Tree dead, leaning, with broken branches, or blocking signs or lights.",
                "Tree pruned, propped or replaced.",
            ),
            (
                "0402",
                "绿地",
                "Green space",
                "3d",
                "Lawn trampled bare, dug up, dried out or littered.",
                "Green space replanted or cleaned.",
            ),
            (
                "0403",
                "花坛",
                "Flower bed",
                "3d",
                "Bed edges broken or plants dead or missing.",
                "Bed repaired and replanted.",
            ),
            (
                "0404",
                "座椅",
                "Bench",
                "3d",
                "Bench broken, loose or with sharp edges.",
                "Bench repaired or replaced and firm.",
            ),
            (
                "0405",
                "古树名木",
                "Heritage tree",
                "1d",
                "Heritage tree damaged, diseased or its guard broken.",
                "Tree treated by the greenery authority; guard restored.",
            ),
            (
                "0406",
                "护树设施",
                "Tree guard",
                "3d",
                "Tree grate or guard broken or missing.",
                "Guard restored, flush with the pavement.",
            ),
        ],
    ),
    (
        "05",
        "房屋土地",
        "Buildings and land",
        "5d",
        "Public notice boards and civil-defence structures.",
        [
            (
                "0501",
                "宣传栏",
                "Notice board",
                "5d",
                "Board broken, glass cracked or content out of date.",
                "Board repaired and content current.",
            ),
            (
                "0502",
                "人防工事",
                "Civil air-defence works",
                "5d",
                "Entrance door, cover or sign of a shelter damaged.",
                "Entrance closed and marked.",
            ),
            (
                "0503",
                "地下通道",
                "Pedestrian underpass",
                "3d",
                "Lights out, water in, or steps broken in an underpass.",
                "Underpass lit, dry and safe.",
            ),
        ],
    ),
    (
        "06",
        "其他设施",
        "Other facilities",
        "3d",
        "Fitness equipment, waterside railings and other public fixtures.",
        [
            (
                "0601",
                "健身设施",
                "Fitness equipment",
                "3d",
                "Equipment broken, loose or with sharp edges.",
                "Equipment repaired or taken out of use and marked.",
            ),
            (
                "0602",
                "水域护栏",
                "Waterside railing",
                "2d",
                "Railing along water broken or missing.",
                "Railing continuous and firm.",
            ),
            (
                "0603",
                "工地围挡",
                "Site hoarding",
                "2d",
                "Hoarding of a site fallen, leaning or open.",
                "Hoarding upright and closed.",
            ),
            (
                "0604",
                "自行车停放架",
                "Bicycle rack",
                "3d",
                "Rack broken or loose.",
                "Rack repaired and firm.",
            ),
        ],
    ),
]

TAXONOMY = {"event": EVENTS, "component": COMPONENTS}


def seed_categories(*, category_model=None, time_limit_model=None) -> dict[str, int]:
    """Add every missing class and time limit of the standard taxonomy; one transaction.

    Existing classes and limits are left as they are. Returns counts created.
    """
    from .models import Category, TimeLimit

    # Migrations pass their historical models; the live ones tell running processes.
    live = time_limit_model in (None, TimeLimit)
    category_model = category_model or Category
    time_limit_model = time_limit_model or TimeLimit
    counts = {"categories": 0, "time_limits": 0}
    with transaction.atomic():
        existing = {(c.kind, c.code): c for c in category_model.objects.all()}
        have_limits = set(time_limit_model.objects.values_list("category_id", "step", "urgency"))

        def ensure(kind, code, parent, order, name, name_en, help_text="", filing="", closing=""):
            cat = existing.get((kind, code))
            if cat is None:
                cat = category_model.objects.create(
                    kind=kind,
                    code=code,
                    parent=parent,
                    sort_order=order,
                    name=name,
                    name_en=name_en,
                    resident_help=help_text,
                    filing_criteria=filing,
                    closing_criteria=closing,
                )
                existing[(kind, code)] = cat
                counts["categories"] += 1
            return cat

        new_limits = []

        def limit(cat, step, urgency, amount, unit):
            if (cat.pk, step, urgency) not in have_limits:
                new_limits.append(
                    time_limit_model(
                        category=cat, step=step, urgency=urgency, amount=amount, unit=unit
                    )
                )
                have_limits.add((cat.pk, step, urgency))

        for kind, majors in TAXONOMY.items():
            for m_order, (code, name, name_en, handle, help_text, minors) in enumerate(majors):
                major = ensure(kind, code, None, m_order, name, name_en, help_text)
                for step, per_urgency in STEP_HOURS.items():
                    for urgency, hours in zip(URGENCIES, per_urgency, strict=True):
                        limit(major, step, urgency, Decimal(str(hours)), HOURS)
                for urgency, (amount, unit) in handle_limits(handle).items():
                    limit(major, "handle", urgency, amount, unit)
                for order, (m_code, m_name, m_en, m_handle, filing, closing) in enumerate(minors):
                    minor = ensure(kind, m_code, major, order, m_name, m_en, "", filing, closing)
                    for urgency, (amount, unit) in handle_limits(m_handle).items():
                        limit(minor, "handle", urgency, amount, unit)
        time_limit_model.objects.bulk_create(new_limits)
        counts["time_limits"] = len(new_limits)
        if live and new_limits:
            from .reference import rules_changed

            rules_changed()  # bulk_create sends no save signals
    return counts
