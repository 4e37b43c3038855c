"""Import of 5,000 and 50,000 grids from GeoJSON, beside a plain bulk insert of the same rows.

The file is a synthetic district: a lattice of ~100 m square cells grouped in
communities of 10 × 5 grids, 100 communities a street (codes in the 14-digit
scheme), with the community, street and district boundaries around them.

- CivicGrid: ``json.loads`` of the file text, then
  ``geo.importer.import_feature_collection`` — every check (fields, codes,
  parents, validity, containment), snapping, measuring and the writes.
- Reference: ``json.loads`` of the same text, then ``Area.objects.bulk_create``
  of the same rows prebuilt (WKB, bounding box and area computed beforehand),
  level by level, in one transaction — the floor any importer stands on.

Each run starts from an empty subtree (the benchmark district's areas are
deleted first; other benchmarks' areas in the database are left alone). The
scaling factor is the 50k time over the 5k time, recorded against 10 (linear);
the goal is well under 15 (ratio ≤ 1.5).
"""

from __future__ import annotations

import json
import math
import time

from bench import common

DISTRICT = "990201"
ORIGIN_LNG, ORIGIN_LAT = 116.0, 39.5
CELL = 0.001  # degrees (~85 m × 111 m here)
BLOCK_COLS, BLOCK_ROWS = 10, 5  # grids per community: 50
COMMUNITIES_PER_ROW = 10
COMMUNITIES_PER_STREET = 100


def _box(x0: float, y0: float, x1: float, y1: float) -> dict:
    x0, y0, x1, y1 = (round(v, 7) for v in (x0, y0, x1, y1))
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _feature(code, level, name, parent, geometry, **extra) -> dict:
    props = {"code": code, "name": name, "level": level, "parent_code": parent, **extra}
    return {"type": "Feature", "properties": props, "geometry": geometry}


def feature_collection(n_grids: int) -> dict:
    """A district of ``n_grids`` grids (a multiple of 50), parents first."""
    per_community = BLOCK_COLS * BLOCK_ROWS
    n_communities = math.ceil(n_grids / per_community)
    n_streets = math.ceil(n_communities / COMMUNITIES_PER_STREET)
    c_w, c_h = BLOCK_COLS * CELL, BLOCK_ROWS * CELL
    s_w = COMMUNITIES_PER_ROW * c_w
    s_h = (COMMUNITIES_PER_STREET // COMMUNITIES_PER_ROW) * c_h
    features = [
        _feature(
            DISTRICT,
            "district",
            "基准区",
            None,
            _box(ORIGIN_LNG, ORIGIN_LAT, ORIGIN_LNG + n_streets * s_w, ORIGIN_LAT + s_h),
        )
    ]
    grids = []
    for s in range(n_streets):
        street = f"{DISTRICT}{s + 1:03d}"
        sx = ORIGIN_LNG + s * s_w
        features.append(
            _feature(
                street,
                "street",
                f"街道{s + 1}",
                DISTRICT,
                _box(sx, ORIGIN_LAT, sx + s_w, ORIGIN_LAT + s_h),
            )
        )
        for c in range(COMMUNITIES_PER_STREET):
            if s * COMMUNITIES_PER_STREET + c >= n_communities:
                break
            community = f"{street}{c + 1:03d}"
            cx = sx + (c % COMMUNITIES_PER_ROW) * c_w
            cy = ORIGIN_LAT + (c // COMMUNITIES_PER_ROW) * c_h
            features.append(
                _feature(
                    community, "community", f"社区{c + 1}", street, _box(cx, cy, cx + c_w, cy + c_h)
                )
            )
            for g in range(per_community):
                gx = cx + (g % BLOCK_COLS) * CELL
                gy = cy + (g // BLOCK_COLS) * CELL
                grids.append(
                    _feature(
                        f"{community}{g + 1:02d}",
                        "grid",
                        f"网格{g + 1}",
                        community,
                        _box(gx, gy, gx + CELL, gy + CELL),
                        households=30 + g % 9,
                        population=90 + g % 27,
                    )
                )
    return {"type": "FeatureCollection", "features": features + grids}


def wipe() -> None:
    """Delete the benchmark district's areas in one statement (no per-row signals)."""
    from django.db import connection, transaction

    from geo.models import Area

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Area._meta.db_table} WHERE code LIKE %s",  # noqa: S608
            [DISTRICT + "%"],
        )


def prebuilt_rows(fc: dict) -> dict[int, list[dict]]:
    """The rows a bulk insert would write, by level, computed outside the timing."""
    from geo.geometry import measure, normalize, parse_geometry
    from geo.models import AreaLevel

    by_level: dict[int, list[dict]] = {}
    for f in fc["features"]:
        p = f["properties"]
        m = measure(normalize(parse_geometry(f["geometry"])))
        level = AreaLevel.from_slug(p["level"])
        by_level.setdefault(int(level), []).append(
            {
                "code": p["code"],
                "level": int(level),
                "name": p["name"],
                "parent_code": p["parent_code"],
                "households": p.get("households", 0),
                "population": p.get("population", 0),
                "geometry": m.wkb,
                "min_lng": m.min_lng,
                "min_lat": m.min_lat,
                "max_lng": m.max_lng,
                "max_lat": m.max_lat,
                "area_m2": m.area_m2,
            }
        )
    return by_level


def reference_insert(text: str, rows: dict[int, list[dict]]) -> None:
    from django.db import transaction

    from geo.importer import BATCH_SIZE
    from geo.models import Area

    json.loads(text)
    ids: dict[str, int] = {}
    with transaction.atomic():
        for level in sorted(rows):
            objs = [
                Area(
                    parent_id=ids.get(r["parent_code"]),
                    **{k: v for k, v in r.items() if k != "parent_code"},
                )
                for r in rows[level]
            ]
            Area.objects.bulk_create(objs, batch_size=BATCH_SIZE)
            ids.update((a.code, a.pk) for a in objs)


def civicgrid_import(text: str):
    from geo.importer import import_feature_collection

    return import_feature_collection(json.loads(text), source_name="bench.geojson")


def timed(fn, *args) -> float:
    wipe()
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def check_landed(text: str, n_grids: int) -> None:
    """One more import, checked: every grid of the file is in the database."""
    from geo.models import Area, AreaLevel

    wipe()
    report = civicgrid_import(text)
    stored = Area.objects.filter(code__startswith=DISTRICT, level=AreaLevel.GRID).count()
    assert report.created["grid"] == n_grids == stored, (report.created, stored)
    wipe()


def measure_size(n_grids: int, rounds: int) -> tuple[float, float]:
    fc = feature_collection(n_grids)
    text = json.dumps(fc, ensure_ascii=False)
    rows = prebuilt_rows(fc)
    ours, ref = [], []
    for _ in range(rounds):  # alternate, so a burst of load hits both alike
        ours.append(timed(civicgrid_import, text))
        ref.append(timed(reference_insert, text, rows))
    check_landed(text, n_grids)
    return min(ours), min(ref)


def run() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results = {}
    for n_grids, rounds in ((5_000, 3), (50_000, 2)):
        ours, ref = measure_size(n_grids, rounds)
        results[n_grids] = ours
        label = f"{n_grids // 1000}k"
        common.record(
            f"import {label} grids (GeoJSON)",
            value=ours,
            unit="s",
            reference=ref,
            reference_name="json parse + bulk insert",
            note=f"{n_grids / ours:,.0f} grids/s (reference {n_grids / ref:,.0f} grids/s)",
        )
        print(f"    {n_grids / ours:,.0f} grids/s; reference {n_grids / ref:,.0f} grids/s")
    common.record(
        "import scaling 50k / 5k",
        value=results[50_000] / results[5_000],
        unit="×",
        reference=10.0,
        reference_name="linear (10× the rows)",
        goal=1.5,
        note="10× the data must cost well under 15× the time",
    )
