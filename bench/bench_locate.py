"""Point → grid lookup: CivicGrid's locate beside a bare shapely STRtree on the same polygons.

The grids are a synthetic county cut into ~100 m cells: a lattice whose
vertices are jittered (so the cells are irregular quadrilaterals, not boxes)
while neighbours still share their edges exactly, grouped into communities and
streets with 14-digit codes.

- 350,000 grids live in the benchmark database and are loaded through the
  production loader (``geo.index.load_index``); 50,000 grids are built in
  memory through the same ``GridIndex.from_rows`` the loader calls.
- Single-point: the public ``geo.index.locate`` (input checks, the per-call
  freshness check with the configured staleness, the lookup and the border
  rule) against ``tree.query(point, predicate="intersects")`` — both start
  from a pair of Python floats and make the point the same, quickest way.
- Batch: ``locate_many_indices`` on 1,000,000 points against
  ``tree.query(shapely.points(lng, lat), predicate="intersects")`` — both start
  from coordinate arrays. The naive scan (``shapely.contains_xy`` over every
  polygon) is timed on a sample and extrapolated per point.
- Build: ``GridIndex.from_rows`` on the rows the loader reads, beside reading
  those rows from the database (the same ``values_list`` query).
"""

from __future__ import annotations

import time

import numpy as np
import shapely

from bench import common

# A county of 700 × 500 cells in communities of 7 × 10 grids, 100 communities a street.
COUNTY_350K = {"district": "990101", "cols": 700, "rows": 500, "block_cols": 7, "block_rows": 10}
COUNTY_50K = {"district": "990102", "cols": 250, "rows": 200, "block_cols": 5, "block_rows": 10}
COMMUNITIES_PER_STREET = 100
# West of the import benchmark's district, so the two never overlap in one database.
ORIGIN_LNG, ORIGIN_LAT = 114.60, 39.40
CELL_M = 100.0
JITTER = 0.2  # of a cell side
N_SINGLE = 20_000
N_BATCH = 1_000_000
N_NAIVE = 40


# --- synthetic county ------------------------------------------------------------------


def lattice(*, cols: int, rows: int, seed: int = 2):
    """Cells of a jittered lattice, row-major from the south-west: polygons and their box."""
    from geo.geometry import GRID_SIZE, degrees_per_metre

    rng = np.random.default_rng(seed)
    d_lng, d_lat = degrees_per_metre(ORIGIN_LAT)
    d_lng, d_lat = d_lng * CELL_M, d_lat * CELL_M
    vx = ORIGIN_LNG + np.arange(cols + 1) * d_lng
    vy = ORIGIN_LAT + np.arange(rows + 1) * d_lat
    vx, vy = np.meshgrid(vx, vy)  # (rows + 1, cols + 1)
    vx = vx + rng.uniform(-JITTER, JITTER, vx.shape) * d_lng
    vy = vy + rng.uniform(-JITTER, JITTER, vy.shape) * d_lat
    # Stored precision: every cell reads its corners from the same vertex
    # arrays, so neighbours' shared edges are bit-identical.
    digits = round(-np.log10(GRID_SIZE))
    vx, vy = np.round(vx, digits), np.round(vy, digits)
    j, i = np.divmod(np.arange(rows * cols), cols)
    ring_x = np.stack([vx[j, i], vx[j, i + 1], vx[j + 1, i + 1], vx[j + 1, i], vx[j, i]], axis=1)
    ring_y = np.stack([vy[j, i], vy[j, i + 1], vy[j + 1, i + 1], vy[j + 1, i], vy[j, i]], axis=1)
    polygons = shapely.polygons(np.stack([ring_x, ring_y], axis=2))
    extent = (vx.min(), vy.min(), vx.max(), vy.max())
    return polygons, extent


def signature(spec: dict) -> str:
    """What the stored county was generated from (kept as the district's English name)."""
    return (
        f"Bench county {spec['cols']}x{spec['rows']} cells of {CELL_M:g} m at "
        f"{ORIGIN_LNG},{ORIGIN_LAT} jitter {JITTER}"
    )


def county_rows(spec: dict):
    """Areas of a county as the loader's rows plus the grid polygons (in code order).

    Returns ``(rows, polygons, extent)``; ids are synthetic and consecutive.
    """
    cols, rows_n = spec["cols"], spec["rows"]
    bc, br = spec["block_cols"], spec["block_rows"]
    per_street = COMMUNITIES_PER_STREET
    polygons, extent = lattice(cols=cols, rows=rows_n)
    district = spec["district"]
    out = [(1, None, district, "基准区", signature(spec), 2, None)]
    next_id = 2
    blocks_x, blocks_y = cols // bc, rows_n // br
    street_ids: dict[int, int] = {}
    grid_polys = []
    for b in range(blocks_x * blocks_y):
        street_no, community_no = divmod(b, per_street)
        if street_no not in street_ids:
            street_ids[street_no] = next_id
            out.append(
                (next_id, 1, f"{district}{street_no + 1:03d}", f"街道{street_no + 1}", "", 3, None)
            )
            next_id += 1
        community_code = f"{district}{street_no + 1:03d}{community_no + 1:03d}"
        community_id = next_id
        out.append(
            (community_id, street_ids[street_no], community_code, f"社区{b + 1}", "", 4, None)
        )
        next_id += 1
        by, bx = divmod(b, blocks_x)
        seq = 0
        for r in range(br):
            for c in range(bc):
                seq += 1
                cell = (by * br + r) * cols + bx * bc + c
                grid_polys.append(polygons[cell])
                out.append(
                    (next_id, community_id, f"{community_code}{seq:02d}", f"网格{seq}", "", 5, cell)
                )
                next_id += 1
    # Rows go to the loader in code order, with the boundary as WKB.
    out.sort(key=lambda row: row[2])
    cells = np.array([r[6] for r in out if r[5] == 5])
    wkbs = shapely.to_wkb(polygons[cells])
    it = iter(wkbs.tolist())
    rows = [(*r[:6], next(it) if r[5] == 5 else None) for r in out]
    return rows, polygons[cells], extent


def ensure_county_in_db(spec: dict) -> int:
    """Put the county into the benchmark database unless it is already there; its grid count."""
    from django.core.management import call_command
    from django.db import transaction

    from geo.models import Area, AreaLevel
    from geo.versioning import bump_area_version

    call_command("migrate", verbosity=0)
    district = spec["district"]
    want = (spec["cols"] // spec["block_cols"]) * (spec["rows"] // spec["block_rows"])
    want *= spec["block_cols"] * spec["block_rows"]
    have = Area.objects.filter(code__startswith=district, level=AreaLevel.GRID).count()
    same = Area.objects.filter(code=district, name_en=signature(spec)).exists()
    if have == want and same:
        return want
    print(f"  writing {want:,} bench grids to the database (once; kept in bench/.data)", flush=True)
    start = time.perf_counter()
    rows, polygons, _extent = county_rows(spec)
    bounds = shapely.bounds(polygons)
    # Planar area at the county's latitude: plenty for benchmark rows.
    m_per_deg = 111_320.0
    areas_m2 = shapely.area(polygons) * m_per_deg * m_per_deg * np.cos(np.radians(ORIGIN_LAT))
    with transaction.atomic():
        # A stale county goes first, children before parents, in slices small
        # enough for SQLite's limit on query parameters.
        for level in sorted(AreaLevel, reverse=True):
            stale = Area.objects.filter(code__startswith=district, level=level)
            while ids := list(stale.values_list("pk", flat=True)[:2000]):
                Area.objects.filter(pk__in=ids).delete()
        real_id: dict[int, int] = {}
        for level in (AreaLevel.DISTRICT, AreaLevel.STREET, AreaLevel.COMMUNITY):
            batch = [
                Area(code=r[2], level=level, name=r[3], name_en=r[4], parent_id=real_id.get(r[1]))
                for r in rows
                if r[5] == level
            ]
            created = Area.objects.bulk_create(batch, batch_size=2000)
            by_code = {a.code: a.pk for a in created}
            if any(pk is None for pk in by_code.values()):
                by_code = dict(
                    Area.objects.filter(code__startswith=district, level=level).values_list(
                        "code", "pk"
                    )
                )
            for r in rows:
                if r[5] == level:
                    real_id[r[0]] = by_code[r[2]]
        grids = []
        k = 0
        for r in rows:
            if r[5] != AreaLevel.GRID:
                continue
            b = bounds[k]
            grids.append(
                Area(
                    code=r[2],
                    level=AreaLevel.GRID,
                    name=r[3],
                    parent_id=real_id[r[1]],
                    geometry=r[6],
                    min_lng=float(b[0]),
                    min_lat=float(b[1]),
                    max_lng=float(b[2]),
                    max_lat=float(b[3]),
                    area_m2=float(areas_m2[k]),
                )
            )
            k += 1
        Area.objects.bulk_create(grids, batch_size=2000)
        bump_area_version()
    print(f"  written in {time.perf_counter() - start:.1f} s", flush=True)
    return want


# --- measurements --------------------------------------------------------------------


def random_points(extent, n: int, seed: int):
    rng = np.random.default_rng(seed)
    min_lng, min_lat, max_lng, max_lat = extent
    return rng.uniform(min_lng, max_lng, n), rng.uniform(min_lat, max_lat, n)


def border_points(index, n: int, seed: int):
    """Shared corners of the lattice: the border rule's worst case (four grids each)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(index), n)
    corners = shapely.get_coordinates(index.geometries[picks])
    # Each polygon has 5 coordinates; take its third (a corner shared by four cells
    # except on the outer edge).
    return corners[2::5, 0], corners[2::5, 1]


def bench_single(label: str, grids: int) -> None:
    from geo import index as geo_index

    index = geo_index.get_index()
    tree = shapely.STRtree(index.geometries)
    lng, lat = random_points(
        shapely.total_bounds(index.geometries), N_SINGLE, seed=grids % 1000 + 7
    )
    pairs = list(zip(lat.tolist(), lng.tolist(), strict=True))
    locate = geo_index.locate
    query = tree.query
    points, array = shapely.points, np.array

    def point(lng: float, lat: float):
        # The quickest public way from two floats to a point (quicker than
        # shapely.Point(lng, lat)), so the ratio shows CivicGrid's own overhead.
        return points(array((lng, lat)))

    # Same answers first: the comparison is only fair if both do the same work.
    # (This also makes each grid's Location once, as a warm process has.)
    for la, ln in pairs:
        hits = query(point(ln, la), predicate="intersects")
        want = index.location(int(hits.min())) if len(hits) else geo_index.OUTSIDE
        assert locate(la, ln) is want

    # Timed in slices of 1,000 points, the two sides alternating slice by slice
    # and the best of several rounds kept per slice: a burst of load on a shared
    # machine then lands on both sides alike instead of on one whole run.
    ours = ref = 0.0
    for start in range(0, len(pairs), 1000):
        chunk = pairs[start : start + 1000]

        def civicgrid(chunk=chunk):
            for la, ln in chunk:
                locate(la, ln)

        def bare(chunk=chunk):
            for la, ln in chunk:
                query(point(ln, la), predicate="intersects")

        a, b = common.interleaved(civicgrid, bare, rounds=7)
        ours += a
        ref += b
    common.record(
        f"locate single point, {label} grids",
        value=ours / N_SINGLE * 1e6,
        unit="µs/point",
        reference=ref / N_SINGLE * 1e6,
        reference_name="bare STRtree.query(point, intersects)",
        goal=1.3,
        note=(
            f"{len(index):,} grids, {N_SINGLE:,} random points; CivicGrid = geo.index.locate "
            "with input checks and the freshness check at GEO_INDEX_MAX_STALENESS="
            f"{geo_index._max_staleness():g}s; both from Python floats, the reference making its "
            "point with shapely.points(np.array((lng, lat)))"
        ),
    )


def bench_batch(label: str) -> None:
    from geo import index as geo_index

    index = geo_index.get_index()
    tree = shapely.STRtree(index.geometries)
    extent = shapely.total_bounds(index.geometries)
    lng, lat = random_points(extent, N_BATCH, seed=11)
    # A share of points on shared corners, so the border rule has work to do.
    b_lng, b_lat = border_points(index, N_BATCH // 20, seed=12)
    lng[: len(b_lng)], lat[: len(b_lat)] = b_lng, b_lat

    def civicgrid():
        return geo_index.locate_many_indices(lng, lat)

    def bare():
        return tree.query(shapely.points(lng, lat), predicate="intersects")

    got = civicgrid()
    which, hit = bare()
    want = np.full(N_BATCH, np.iinfo(np.int64).max)
    np.minimum.at(want, which, hit)
    want[want == np.iinfo(np.int64).max] = -1
    assert np.array_equal(got, want)
    ours, ref = common.interleaved(civicgrid, bare, rounds=3)
    common.record(
        f"locate batch 1M points, {label} grids",
        value=ours / N_BATCH * 1e6,
        unit="µs/point",
        reference=ref / N_BATCH * 1e6,
        reference_name="bare bulk STRtree.query(points, intersects)",
        goal=1.5,
        note=(
            f"{len(index):,} grids; {N_BATCH:,} points ({len(b_lng):,} on shared corners); "
            "both from coordinate arrays; CivicGrid adds input checks and the lowest-code rule"
        ),
    )

    # The naive scan: every polygon tested for each point (a sample, extrapolated).
    geoms = index.geometries
    sample_lng, sample_lat = lng[-N_NAIVE:], lat[-N_NAIVE:]

    def naive():
        for x, y in zip(sample_lng.tolist(), sample_lat.tolist(), strict=True):
            shapely.contains_xy(geoms, x, y)

    naive_t = common.best_of(naive, repeat=2)
    common.record(
        f"locate naive scan per point, {label} grids",
        value=naive_t / N_NAIVE * 1e6,
        unit="µs/point",
        reference=ref / N_BATCH * 1e6,
        reference_name="bare bulk STRtree.query(points, intersects)",
        note=(
            f"shapely.contains_xy over all {len(geoms):,} polygons, {N_NAIVE} points timed and "
            "extrapolated per point; shows what the index saves, not a CivicGrid path"
        ),
    )


def bench_build(label: str) -> None:
    from geo import index as geo_index
    from geo.versioning import current_area_version

    version = current_area_version()
    read_times, build_times = [], []
    n = grids = 0
    for _round in range(3):
        # Timed by hand so that freeing the previous round's rows and index
        # (a few hundred thousand objects) is counted on neither side.
        start = time.perf_counter()
        rows = list(geo_index.area_rows())
        read_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        index = geo_index.GridIndex.from_rows(rows, version=version)
        build_times.append(time.perf_counter() - start)
        n, grids = len(rows), len(index)
        del rows, index
    common.record(
        f"locate index build, {label} grids",
        value=min(build_times),
        unit="s",
        reference=min(read_times),
        reference_name="reading the same rows from the database",
        goal=1.0,
        note=(
            f"{grids:,} grids in {n:,} area rows (one values_list query); build = WKB decode + "
            "STRtree + chain tables; goal: the build is not the bottleneck (build ≤ read)"
        ),
    )


def run() -> None:
    from django.core.management import call_command

    from geo import index as geo_index
    from geo.versioning import current_area_version

    call_command("migrate", verbosity=0)
    # 50k grids: built in memory through the loader's own constructor.
    rows, _polygons, _extent = county_rows(COUNTY_50K)
    geo_index.install_index(geo_index.GridIndex.from_rows(rows, version=current_area_version()))
    bench_single("50k", 50_000)
    del rows, _polygons

    # 350k grids: from the database through the production loader.
    ensure_county_in_db(COUNTY_350K)
    geo_index.invalidate_local()
    start = time.perf_counter()
    index = geo_index.get_index()
    print(
        f"  loaded {len(index):,} grids from the database in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    bench_single("350k", 350_000)
    bench_batch("350k")
    bench_build("350k")
