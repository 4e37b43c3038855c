"""The demo city: a fictional district, generated deterministically from a seed.

云溪区 (Yunxi District, code 510177) does not exist; it lies over the centre of
Chengdu so that a real tile layer has streets under it, but its boundaries
imply nothing about real ones. It has three streets, about ten communities and
about three hundred unit grids with irregular boundaries that tile their
parents exactly, building points with households and people, grid staff,
and an organisation: the district's bureaus and command centers, a
workstation per community, and one demo account per role (:data:`DEMO_ACCOUNTS`).

The geometry is built top-down in a local metric frame (Voronoi cells of
household-weighted cluster centres, clipped to the parent), the communities
are cut into grids by :func:`geo.partition.partition_polygon`, and at the end
every boundary is noded together and rebuilt from the same faces, so siblings
share their edges bit for bit and every parent is exactly the union of its
children.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import shapely
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext as _
from shapely.geometry import MultiPoint, Polygon
from shapely.geometry.base import BaseGeometry

from accounts.audit import audit_log
from accounts.models import Department, Membership, Role
from accounts.roles import sync_builtin_roles
from core.errors import DomainError

from .geometry import GRID_SIZE, degrees_per_metre, to_geojson
from .models import Area, AreaLevel, Building, GridStaff
from .versioning import bump_area_version

DEMO_SEED = 20261129

# Every demo account signs in with this password; every other person of the
# demo city has an unusable one. Shown by ``manage.py demo_logins`` and in the README.
DEMO_PASSWORD = "civicgrid-demo"
DEMO_ADMIN_USERNAME = "admin"
DEMO_WORKER_USERNAME = "gridworker"
DEMO_LEADER_USERNAME = "gridleader"

DISTRICT_CODE = "510177"
DISTRICT_NAME = ("云溪区", "Yunxi District")
CENTRE_LNG, CENTRE_LAT = 104.066, 30.640
# Half-axes of the district's outline before its edge is roughened (metres).
RADIUS_X, RADIUS_Y = 3100.0, 2600.0

N_STREETS = 3
TARGET_COMMUNITIES = 10
TARGET_GRIDS = 300
HOUSEHOLDS_PER_GRID = 34  # DESIGN.md: ~34 households / ~103 people per grid
PEOPLE_PER_HOUSEHOLD = 103 / 34
MAX_BUILDING_HOUSEHOLDS = 24

# Precision of the intermediate metric geometry (1 cm), and of the result.
METRIC_GRID = 0.01

STREET_NAMES = [
    ("明珠街道", "Mingzhu Subdistrict"),
    ("枫林街道", "Fenglin Subdistrict"),
    ("青石街道", "Qingshi Subdistrict"),
    ("锦屏街道", "Jinping Subdistrict"),
    ("望川街道", "Wangchuan Subdistrict"),
]
COMMUNITY_NAMES = [
    ("桂香", "Guixiang"),
    ("竹影", "Zhuying"),
    ("荷塘", "Hetang"),
    ("文昌", "Wenchang"),
    ("柳岸", "Liu'an"),
    ("梅园", "Meiyuan"),
    ("松涛", "Songtao"),
    ("清泉", "Qingquan"),
    ("晓风", "Xiaofeng"),
    ("星河", "Xinghe"),
    ("兰亭", "Lanting"),
    ("锦绣", "Jinxiu"),
    ("望江", "Wangjiang"),
    ("杏林", "Xinglin"),
    ("安澜", "Anlan"),
    ("新桥", "Xinqiao"),
    ("书院", "Shuyuan"),
    ("芙蓉", "Furong"),
]
COMPOUND_WORDS = [
    "金桂", "丹枫", "玉兰", "紫荆", "银杏", "梧桐", "春晖", "和煦", "朝晖", "明月",
    "清风", "碧水", "青枫", "芳草", "绿茵", "锦华", "瑞景", "嘉禾", "怡和", "康乐",
    "翠微", "云庭", "书香", "雅韵", "南苑", "东篱", "西岭", "北辰", "润泽", "德馨",
]  # fmt: skip
COMPOUND_KINDS = ["苑", "小区", "花园", "新村", "家园", "雅居", "公寓", "里"]
SURNAMES = [
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("林", "lin"), ("罗", "luo"), ("高", "gao"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("邓", "deng"), ("冯", "feng"), ("曾", "zeng"), ("彭", "peng"), ("蒋", "jiang"),
]  # fmt: skip
GIVEN_NAMES = [
    ("建国", "jianguo"), ("丽娟", "lijuan"), ("海燕", "haiyan"), ("志强", "zhiqiang"),
    ("秀英", "xiuying"), ("伟", "wei"), ("芳", "fang"), ("敏", "min"), ("静", "jing"),
    ("磊", "lei"), ("洋", "yang"), ("艳", "yan"), ("勇", "yong"), ("军", "jun"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
    ("秀兰", "xiulan"), ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂英", "guiying"),
    ("晓东", "xiaodong"), ("红梅", "hongmei"), ("文华", "wenhua"), ("春燕", "chunyan"),
    ("国强", "guoqiang"), ("玉兰", "yulan"), ("德明", "deming"), ("淑珍", "shuzhen"),
    ("晓峰", "xiaofeng"), ("雪梅", "xuemei"), ("俊杰", "junjie"), ("婷婷", "tingting"),
]  # fmt: skip


# --- Organisation and demo accounts -------------------------------------------------

# The district's departments: its digital urban-management command center and
# the bureaus that work the cases it dispatches. Codes are the district's code
# and a suffix; street command centers and community workstations follow the
# same pattern from their area's code.
COMMAND_CENTER_SUFFIX = "ZH"
WORKSTATION_SUFFIX = "GZZ"
DISTRICT_DEPARTMENTS = (
    (COMMAND_CENTER_SUFFIX, "数字化城市管理指挥中心", "Digital Urban Management Command Center"),
    ("CG", "城管局", "Urban Management Bureau"),
    ("HW", "环卫所", "Sanitation Station"),
    ("YL", "园林所", "Parks and Greening Station"),
    ("SW", "水务局", "Water Affairs Bureau"),
    ("SZ", "市政设施所", "Municipal Facilities Station"),
)


@dataclass(frozen=True)
class DemoDepartment:
    code: str
    name: str
    name_en: str
    kind: str  # a Department.Kind value
    area_code: str
    parent_code: str | None


@dataclass(frozen=True)
class DemoAccount:
    """A demo sign-in: one per role, each held where that role works in the district."""

    username: str
    role: str  # a built-in Role code
    # Empty for the two grid staff accounts: they keep their generated names.
    display_name: str = ""
    # The suffix of the district department the role acts for, if any.
    department: str = ""
    is_staff: bool = False


# In the order of the roles in DESIGN.md §1. Scopes: the grid worker holds her
# role over each of her grids, the grid leader over her community, the others
# over the whole district (see :func:`demo_scopes`).
DEMO_ACCOUNTS = (
    DemoAccount("resident", "resident", "姚小梅"),
    DemoAccount(DEMO_WORKER_USERNAME, "grid_worker"),
    DemoAccount(DEMO_LEADER_USERNAME, "grid_leader"),
    DemoAccount("intake", "intake_clerk", "沈佳怡", department=COMMAND_CENTER_SUFFIX),
    DemoAccount("shiftlead", "shift_lead", "韩志刚", department=COMMAND_CENTER_SUFFIX),
    DemoAccount("dispatcher", "dispatcher", "许文静", department=COMMAND_CENTER_SUFFIX),
    DemoAccount("handler", "handler", "钱国平", department="HW"),
    DemoAccount("depthead", "department_head", "陆建华", department="CG"),
    DemoAccount("leader", "leader", "方振宇"),
    # The admin role (partition, import, system management) requires two-factor sign-in.
    DemoAccount(DEMO_ADMIN_USERNAME, "admin", "顾明远", is_staff=True),
    DemoAccount("auditor", "auditor", "苏慧敏"),
)
DEMO_LOGINS = tuple(a.username for a in DEMO_ACCOUNTS)


@dataclass(frozen=True)
class DemoArea:
    code: str
    level: AreaLevel
    name: str
    name_en: str
    parent_code: str | None
    geometry: Polygon
    households: int
    population: int

    def feature(self) -> dict:
        return {
            "type": "Feature",
            "properties": {
                "code": self.code,
                "name": self.name,
                "name_en": self.name_en,
                "level": self.level.slug,
                "parent_code": self.parent_code,
                "households": self.households,
                "population": self.population,
            },
            "geometry": to_geojson(self.geometry),
        }


@dataclass(frozen=True)
class DemoBuilding:
    name: str
    lng: float
    lat: float
    households: int
    population: int
    community_code: str
    grid_code: str


@dataclass(frozen=True)
class DemoPerson:
    username: str
    display_name: str
    role: str  # a GridStaff.Role value
    grid_codes: tuple[str, ...]


@dataclass
class DemoCity:
    seed: int
    areas: list[DemoArea]
    buildings: list[DemoBuilding]
    people: list[DemoPerson]
    _by_code: dict[str, DemoArea] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_code = {a.code: a for a in self.areas}

    def area(self, code: str) -> DemoArea:
        return self._by_code[code]

    def level(self, level: AreaLevel) -> list[DemoArea]:
        return [a for a in self.areas if a.level == level]

    def children(self, code: str) -> list[DemoArea]:
        return [a for a in self.areas if a.parent_code == code]

    def feature_collection(self) -> dict:
        """The areas as GeoJSON, parents first: the input of the importer."""
        ordered = sorted(self.areas, key=lambda a: (a.level, a.code))
        return {"type": "FeatureCollection", "features": [a.feature() for a in ordered]}

    def fingerprint(self) -> str:
        """One hash of every code, name, figure and boundary (WKB) in the city."""
        digest = hashlib.sha256()
        for a in sorted(self.areas, key=lambda a: a.code):
            digest.update(f"{a.code}|{a.name}|{a.households}|{a.population}|".encode())
            digest.update(shapely.to_wkb(a.geometry))
        for b in self.buildings:
            digest.update(f"{b.name}|{b.lng:.7f}|{b.lat:.7f}|{b.households}|{b.grid_code}".encode())
        for p in self.people:
            digest.update(f"{p.username}|{p.role}|{','.join(p.grid_codes)}".encode())
        return digest.hexdigest()


# --- Generation (pure: no database) --------------------------------------------


def generate_demo_city(seed: int = DEMO_SEED) -> DemoCity:
    """Build the whole demo city in memory; the same seed gives the same city."""
    from .partition import partition_polygon

    rng = np.random.default_rng(seed)
    dlng, dlat = degrees_per_metre(CENTRE_LAT)

    def to_degrees(geom: BaseGeometry) -> BaseGeometry:
        moved = shapely.transform(
            geom,
            lambda xy: np.column_stack(
                [CENTRE_LNG + xy[:, 0] * dlng, CENTRE_LAT + xy[:, 1] * dlat]
            ),
        )
        return shapely.set_precision(moved, GRID_SIZE)

    district = _outline(rng)
    points, households = _buildings(rng, district)
    population = np.maximum(
        households, np.rint(households * rng.uniform(2.75, 3.3, len(households)))
    ).astype(int)

    # Streets, then communities: Voronoi cells of household-weighted centres,
    # so the pieces hold roughly similar numbers of households.
    street_polys = _split(rng, district, _weighted_centres(rng, points, households, N_STREETS))
    per_community = households.sum() / TARGET_COMMUNITIES
    communities_m: list[tuple[int, Polygon]] = []
    for s, street in enumerate(street_polys):
        inside = shapely.contains_xy(street, points[:, 0], points[:, 1])
        n = max(2, round(households[inside].sum() / per_community))
        centres = _weighted_centres(rng, points[inside], households[inside], n)
        communities_m += [(s, piece) for piece in _split(rng, street, centres)]

    # Grids: each community cut by the partitioner over its buildings.
    lnglat = np.column_stack([CENTRE_LNG + points[:, 0] * dlng, CENTRE_LAT + points[:, 1] * dlat])
    community_deg = [to_degrees(poly) for _s, poly in communities_m]
    raw_grids: list[list[Polygon]] = []
    for c, poly in enumerate(community_deg):
        inside = shapely.contains_xy(poly, lnglat[:, 0], lnglat[:, 1])
        n_grids = int(min(99, max(1, round(households[inside].sum() / HOUSEHOLDS_PER_GRID))))
        parts = partition_polygon(
            poly, lnglat[inside], households[inside].astype(float), n_grids, seed=seed + c
        )
        raw_grids.append(list(parts))

    grids_by_community = _rebuild_exactly(to_degrees(district), community_deg, raw_grids)
    return _assemble(
        rng,
        seed,
        street_of_community=[s for s, _poly in communities_m],
        grids_by_community=grids_by_community,
        lnglat=lnglat,
        households=households,
        population=population,
    )


@lru_cache(maxsize=2)
def _cached_city(seed: int) -> DemoCity:
    # Generation is pure and takes about a second; tests seed the same city often.
    return generate_demo_city(seed)


def _outline(rng: np.random.Generator) -> Polygon:
    """A smooth, irregular blob: an ellipse whose radius wanders with the angle."""
    theta = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 7):  # the broad shape
        radius += rng.uniform(0.03, 0.08) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    for k in range(9, 31):  # the small bends of rivers and roads along the border
        radius += rng.uniform(0.0, 0.006) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    ring = np.column_stack([RADIUS_X * radius * np.cos(theta), RADIUS_Y * radius * np.sin(theta)])
    return shapely.set_precision(Polygon(ring), METRIC_GRID)


def _buildings(rng: np.random.Generator, district: Polygon) -> tuple[np.ndarray, np.ndarray]:
    """Building points (metres) and households: dense centres, open parks, until the target."""
    min_x, min_y, max_x, max_y = district.bounds
    centres = []
    while len(centres) < 6:
        x, y = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
        if district.buffer(-600).contains(shapely.Point(x, y)):
            centres.append((x, y, rng.uniform(450, 900), rng.uniform(0.7, 1.4)))
    parks = []
    while len(parks) < 3:
        x, y = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
        if district.contains(shapely.Point(x, y)):
            parks.append(
                (x, y, rng.uniform(180, 380), rng.uniform(120, 260), rng.uniform(0, np.pi))
            )

    def density(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = np.full_like(x, 0.22)
        for cx, cy, sigma, weight in centres:
            d += weight * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
        for px, py, ax, ay, angle in parks:
            u = (x - px) * np.cos(angle) + (y - py) * np.sin(angle)
            v = -(x - px) * np.sin(angle) + (y - py) * np.cos(angle)
            d[(u / ax) ** 2 + (v / ay) ** 2 < 1] *= 0.03
        return d

    peak = 0.22 + sum(c[3] for c in centres)
    target = TARGET_GRIDS * HOUSEHOLDS_PER_GRID
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    hh: list[np.ndarray] = []
    total = 0
    while total < target:
        x = rng.uniform(min_x, max_x, 4000)
        y = rng.uniform(min_y, max_y, 4000)
        keep = shapely.contains_xy(district, x, y)
        x, y = x[keep], y[keep]
        d = density(x, y) / peak
        keep = rng.uniform(0, 1, len(x)) < d
        x, y, d = x[keep], y[keep], d[keep]
        # Towers in the centres, low-rise houses at the edges.
        h = np.clip(1 + rng.poisson(2 + 14 * d), 1, MAX_BUILDING_HOUSEHOLDS)
        xs.append(x)
        ys.append(y)
        hh.append(h)
        total += int(h.sum())
    x, y, h = np.concatenate(xs), np.concatenate(ys), np.concatenate(hh)
    # Trim the last batch so the city lands on the target.
    cut = int(np.searchsorted(np.cumsum(h), target)) + 1
    return np.column_stack([x[:cut], y[:cut]]), h[:cut].astype(int)


def _weighted_centres(
    rng: np.random.Generator, points: np.ndarray, weights: np.ndarray, k: int
) -> np.ndarray:
    """k centres of the weighted points (a few rounds of Lloyd's algorithm)."""
    p = weights / weights.sum()
    centres = points[rng.choice(len(points), size=k, replace=False, p=p)].copy()
    for _round in range(30):
        label = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            mine = label == j
            if mine.any():
                centres[j] = (points[mine] * weights[mine, None]).sum(0) / weights[mine].sum()
    return centres


def _split(rng: np.random.Generator, parent: Polygon, centres: np.ndarray) -> list[Polygon]:
    """The parent cut along the Voronoi edges of the centres, one polygon per centre.

    The straight Voronoi edges are bent by a smooth displacement field, as
    real boundaries follow roads and rivers. The field moves a shared edge the
    same way for both cells and is gentle enough not to fold, so the cells
    still tile the plane.
    """
    cells = shapely.voronoi_polygons(
        MultiPoint(centres), extend_to=parent.buffer(1000), ordered=True
    ).geoms
    waves = [
        (
            rng.uniform(25, 55),
            rng.uniform(600, 1400),
            rng.uniform(0, 2 * np.pi),
            rng.uniform(0, np.pi),
        )
        for _ in range(4)
    ]

    def bend(xy: np.ndarray) -> np.ndarray:
        out = xy.copy()
        for amplitude, wavelength, phase, angle in waves:
            along = xy[:, 0] * np.cos(angle) + xy[:, 1] * np.sin(angle)
            across = -xy[:, 0] * np.sin(angle) + xy[:, 1] * np.cos(angle)
            out[:, 0] += amplitude * np.sin(2 * np.pi * along / wavelength + phase)
            out[:, 1] += amplitude * np.sin(2 * np.pi * across / wavelength + phase)
        return out

    cells = [shapely.transform(shapely.segmentize(cell, 40.0), bend) for cell in cells]
    faces = _faces([parent, *cells], grid_size=METRIC_GRID, within=parent)
    label = []
    for face in faces:
        at = face.point_on_surface()
        label.append(next((i for i, cell in enumerate(cells) if cell.covers(at)), 0))
    # A centre can fall outside a concave parent; its cell may then hold nothing.
    used = sorted(set(label))
    label = [used.index(i) for i in label]
    return _dissolve(faces, label, len(used))


def _faces(geoms, *, grid_size: float, within: BaseGeometry) -> list[Polygon]:
    """The smallest pieces the geometries' boundaries cut the plane into, inside ``within``."""
    lines = shapely.union_all([g.boundary for g in geoms], grid_size=grid_size)
    faces = list(shapely.polygonize(list(shapely.get_parts(lines))).geoms)
    points = shapely.point_on_surface(faces)
    inside = shapely.covers(within, points)
    return [f for f, keep in zip(faces, inside, strict=True) if keep and f.area > 0]


def _dissolve(faces: list[Polygon], label: list[int], n: int) -> list[Polygon]:
    """Union the faces of each label into one polygon.

    A label whose faces fall apart keeps its largest piece; each stray piece
    goes to the neighbour it shares the longest edge with, so every result is
    a single polygon and together they still cover every face exactly once.
    """
    label = list(label)
    for _round in range(20):
        groups = _group(faces, label, n)
        strays = []
        for i, geom in enumerate(groups):
            if geom.geom_type == "MultiPolygon":
                parts = sorted(geom.geoms, key=lambda g: g.area, reverse=True)
                strays += [(i, part) for part in parts[1:]]
        if not strays:
            return groups
        for owner, part in strays:
            members = [
                k
                for k, f in enumerate(faces)
                if label[k] == owner and part.covers(f.point_on_surface())
            ]
            shared = [
                (part.boundary.intersection(groups[j].boundary).length, j)
                for j in range(n)
                if j != owner
            ]
            best_length, best = max(shared)
            if best_length > 0:
                for k in members:
                    label[k] = best
    raise RuntimeError("could not make every piece a single polygon")


def _group(faces, label, n) -> list[BaseGeometry]:
    members: dict[int, list[Polygon]] = defaultdict(list)
    for face, owner in zip(faces, label, strict=True):
        members[owner].append(face)
    # Faces come from one snap-rounded noding, so their shared edges are
    # identical: a plain union dissolves them without moving a vertex, where
    # another round of snapping could nudge an edge differently in each union.
    groups = [shapely.union_all(members[i]) for i in range(n)]
    return [_single(g) for g in groups]


def _single(geom: BaseGeometry) -> BaseGeometry:
    """A union may come back as a MultiPolygon of one part; unwrap it."""
    if geom.geom_type == "MultiPolygon" and len(geom.geoms) == 1:
        return geom.geoms[0]
    return geom


def _rebuild_exactly(
    district: Polygon, communities: list[Polygon], raw_grids: list[list[Polygon]]
) -> list[list[Polygon]]:
    """Node every boundary of the city together and rebuild the grids from the faces.

    Each face goes to the community and grid that hold its interior point
    (or overlap it most, for a sliver the partitioner left between two
    grids), so grids share their edges exactly and their union is exactly the
    community — whatever rounding the earlier steps did. Slivers between
    communities (each was cut from its street on its own) go to a neighbour.
    """
    every = [district, *communities, *(g for grids in raw_grids for g in grids)]
    faces = _faces(every, grid_size=GRID_SIZE, within=district)
    tree = shapely.STRtree(communities)
    per_community: dict[int, list[int]] = defaultdict(list)
    for k, face in enumerate(faces):
        per_community[_owner(face, communities, tree)].append(k)
    result = []
    for c, grids in enumerate(raw_grids):
        mine = [faces[k] for k in per_community[c]]
        grid_tree = shapely.STRtree(grids)
        label = [_owner(face, grids, grid_tree) for face in mine]
        result.append(_dissolve(mine, label, len(grids)))
    return result


def _owner(face: Polygon, candidates: list[Polygon], tree: shapely.STRtree) -> int:
    at = face.point_on_surface()
    hits = tree.query(at, predicate="within")
    if len(hits):
        return int(min(hits))
    near = tree.query(face, predicate="intersects")
    if len(near):
        return int(max(near, key=lambda i: (candidates[i].intersection(face).area, -i)))
    return int(tree.nearest(at))


def _reading_order(polys: list[Polygon], band: float) -> list[int]:
    """Indices sorted north to south in bands, west to east within a band (how maps are read)."""
    points = [p.representative_point() for p in polys]
    top = max(pt.y for pt in points)
    return sorted(range(len(polys)), key=lambda i: (int((top - points[i].y) // band), points[i].x))


def _assemble(
    rng: np.random.Generator,
    seed: int,
    *,
    street_of_community: list[int],
    grids_by_community: list[list[Polygon]],
    lnglat: np.ndarray,
    households: np.ndarray,
    population: np.ndarray,
) -> DemoCity:
    """Codes, names, figures, buildings and staff for the finished geometry."""
    communities = [_single(shapely.union_all(g)) for g in grids_by_community]
    n_streets = max(street_of_community) + 1
    streets = [
        _single(
            shapely.union_all(
                [c for c, s in zip(communities, street_of_community, strict=True) if s == i]
            )
        )
        for i in range(n_streets)
    ]
    district = _single(shapely.union_all(streets))

    street_names = [STREET_NAMES[i] for i in rng.permutation(len(STREET_NAMES))[:n_streets]]
    community_names = [COMMUNITY_NAMES[i] for i in rng.permutation(len(COMMUNITY_NAMES))]

    # Buildings belong to the grid that covers them.
    grid_polys = [g for grids in grids_by_community for g in grids]
    grid_community = [c for c, grids in enumerate(grids_by_community) for _ in grids]
    tree = shapely.STRtree(grid_polys)
    pts = shapely.points(lnglat)
    b_idx, g_idx = tree.query(pts, predicate="within")
    grid_of = np.full(len(pts), -1)
    grid_of[b_idx[::-1]] = g_idx[::-1]  # the first hit wins for a point on a shared edge
    if (grid_of < 0).any():
        b_idx, g_idx = tree.query(pts[grid_of < 0], predicate="intersects")
        missing = np.flatnonzero(grid_of < 0)
        grid_of[missing[b_idx[::-1]]] = g_idx[::-1]

    areas: list[DemoArea] = []
    grid_code: dict[int, str] = {}
    metre = degrees_per_metre(CENTRE_LAT)[1]
    for s_rank, s in enumerate(_reading_order(streets, band=2000 * metre)):
        s_code = f"{DISTRICT_CODE}{s_rank + 1:03d}"
        s_members = [c for c, owner in enumerate(street_of_community) if owner == s]
        s_hh = s_pop = 0
        order = _reading_order([communities[c] for c in s_members], band=900 * metre)
        for c_rank, local in enumerate(order):
            c = s_members[local]
            c_code = f"{s_code}{c_rank + 1:03d}"
            zh, en = community_names.pop(0)
            c_name, c_en = f"{zh}社区", f"{en} Community"
            c_hh = c_pop = 0
            base = sum(len(g) for g in grids_by_community[:c])
            for g_rank, g_local in enumerate(
                _reading_order(grids_by_community[c], band=300 * metre)
            ):
                g = base + g_local
                code = f"{c_code}{g_rank + 1:02d}"
                grid_code[g] = code
                mine = grid_of == g
                hh, pop = int(households[mine].sum()), int(population[mine].sum())
                c_hh, c_pop = c_hh + hh, c_pop + pop
                areas.append(
                    DemoArea(
                        code=code,
                        level=AreaLevel.GRID,
                        name=f"{c_name}第{g_rank + 1}网格",
                        name_en=f"{c_en} Grid {g_rank + 1}",
                        parent_code=c_code,
                        geometry=grid_polys[g],
                        households=hh,
                        population=pop,
                    )
                )
            areas.append(
                DemoArea(
                    code=c_code,
                    level=AreaLevel.COMMUNITY,
                    name=c_name,
                    name_en=c_en,
                    parent_code=s_code,
                    geometry=communities[c],
                    households=c_hh,
                    population=c_pop,
                )
            )
            s_hh, s_pop = s_hh + c_hh, s_pop + c_pop
        zh, en = street_names[s_rank]
        areas.append(
            DemoArea(
                code=s_code,
                level=AreaLevel.STREET,
                name=zh,
                name_en=en,
                parent_code=DISTRICT_CODE,
                geometry=streets[s],
                households=s_hh,
                population=s_pop,
            )
        )
    areas.append(
        DemoArea(
            code=DISTRICT_CODE,
            level=AreaLevel.DISTRICT,
            name=DISTRICT_NAME[0],
            name_en=DISTRICT_NAME[1],
            parent_code=None,
            geometry=district,
            households=int(households.sum()),
            population=int(population.sum()),
        )
    )
    areas.sort(key=lambda a: a.code)

    buildings = _name_buildings(
        rng, grid_code, grid_community, grid_of, lnglat, households, population
    )
    people = _staff(rng, areas)
    return DemoCity(seed=seed, areas=areas, buildings=buildings, people=people)


def _name_buildings(rng, grid_code, grid_community, grid_of, lnglat, households, population):
    """Buildings grouped into named housing compounds (苑, 小区, 新村 …) per community."""
    by_community: dict[int, list[int]] = defaultdict(list)
    for b, g in enumerate(grid_of):
        by_community[grid_community[g]].append(b)
    names = [f"{w}{k}" for w in COMPOUND_WORDS for k in COMPOUND_KINDS]
    order = rng.permutation(len(names))
    used = 0
    buildings = []
    for c in sorted(by_community):
        members = np.array(by_community[c])
        n_compounds = max(2, len(members) // 14)
        seeds = lnglat[members[rng.choice(len(members), size=n_compounds, replace=False)]]
        compound = ((lnglat[members][:, None, :] - seeds[None, :, :]) ** 2).sum(-1).argmin(1)
        number = defaultdict(int)
        # Number the buildings of a compound from west to east, as signs are put up.
        for i in np.lexsort((lnglat[members][:, 1], lnglat[members][:, 0])):
            b = int(members[i])
            k = int(compound[i])
            number[k] += 1
            buildings.append(
                DemoBuilding(
                    name=f"{names[order[used + k]]}{number[k]}幢",
                    lng=round(float(lnglat[b, 0]), 7),
                    lat=round(float(lnglat[b, 1]), 7),
                    households=int(households[b]),
                    population=int(population[b]),
                    community_code=grid_code[int(grid_of[b])][:12],
                    grid_code=grid_code[int(grid_of[b])],
                )
            )
        used += n_compounds
    buildings.sort(key=lambda b: (b.grid_code, b.name))
    return buildings


def _staff(rng: np.random.Generator, areas: list[DemoArea]) -> list[DemoPerson]:
    """A grid leader for each community's grids; grid workers covering one to three grids each.

    The first community's leader and its first worker are the demo accounts
    ``gridleader`` and ``gridworker``; the worker always has more than one
    grid, so that the demo shows a scope of several separate grids.
    """
    taken: set[str] = set(DEMO_LOGINS)

    def person() -> tuple[str, str]:
        zh_s, py_s = SURNAMES[rng.integers(len(SURNAMES))]
        zh_g, py_g = GIVEN_NAMES[rng.integers(len(GIVEN_NAMES))]
        username, n = py_s + py_g, 1
        while username in taken:
            n += 1
            username = f"{py_s}{py_g}{n}"
        taken.add(username)
        return username, zh_s + zh_g

    def demo_account(generated: str, username: str) -> str:
        # The generated name is drawn all the same, so the rest of the city
        # does not depend on which people are demo accounts.
        taken.discard(generated)
        return username

    people: list[DemoPerson] = []
    grids_of: dict[str, list[str]] = defaultdict(list)
    for a in areas:
        if a.level == AreaLevel.GRID:
            grids_of[a.parent_code].append(a.code)
    for c_rank, c_code in enumerate(sorted(grids_of)):
        grids = sorted(grids_of[c_code])
        username, display = person()
        if c_rank == 0:
            username = demo_account(username, DEMO_LEADER_USERNAME)
        people.append(DemoPerson(username, display, GridStaff.Role.LEADER, tuple(grids)))
        i = 0
        while i < len(grids):
            size = int(rng.choice([1, 1, 2, 2, 2, 3]))
            username, display = person()
            if c_rank == 0 and i == 0:
                username = demo_account(username, DEMO_WORKER_USERNAME)
                size = max(size, 2)
            people.append(
                DemoPerson(username, display, GridStaff.Role.WORKER, tuple(grids[i : i + size]))
            )
            i += size
    return people


def workstation_code(community_code: str) -> str:
    return f"{community_code}-{WORKSTATION_SUFFIX}"


def command_center_code(area_code: str) -> str:
    return f"{area_code}-{COMMAND_CENTER_SUFFIX}"


def demo_departments(city: DemoCity) -> list[DemoDepartment]:
    """The organisation of the demo district, parents before their units.

    The district's command center and bureaus serve the district; each street
    has a command center under the district's, each community a workstation
    under its street's command center.
    """
    district = city.area(DISTRICT_CODE)
    departments = [
        DemoDepartment(
            code=f"{DISTRICT_CODE}-{suffix}",
            name=f"{district.name}{name}",
            name_en=f"{district.name_en} {name_en}",
            kind=(
                Department.Kind.COMMAND_CENTER
                if suffix == COMMAND_CENTER_SUFFIX
                else Department.Kind.BUREAU
            ),
            area_code=DISTRICT_CODE,
            parent_code=None,
        )
        for suffix, name, name_en in DISTRICT_DEPARTMENTS
    ]
    for street in city.level(AreaLevel.STREET):
        departments.append(
            DemoDepartment(
                code=command_center_code(street.code),
                name=f"{street.name}指挥中心",
                name_en=f"{street.name_en} Command Center",
                kind=Department.Kind.COMMAND_CENTER,
                area_code=street.code,
                parent_code=command_center_code(DISTRICT_CODE),
            )
        )
    for community in city.level(AreaLevel.COMMUNITY):
        departments.append(
            DemoDepartment(
                code=workstation_code(community.code),
                name=f"{community.name}工作站",
                name_en=f"{community.name_en} Workstation",
                kind=Department.Kind.WORKSTATION,
                area_code=community.code,
                parent_code=command_center_code(community.parent_code),
            )
        )
    return departments


@dataclass(frozen=True)
class DemoMembership:
    username: str
    role: str  # a Role code
    area_code: str
    department_code: str | None


def demo_memberships(city: DemoCity) -> list[DemoMembership]:
    """Every membership of the demo: field staff first, then the district's demo accounts.

    A grid worker holds her role over each of her grids, not over her
    community, so she sees those grids and nothing else; a grid leader holds
    his over the community. Both act for the community's workstation. The
    other demo accounts work for the whole district.
    """
    memberships = []
    for p in city.people:
        community = p.grid_codes[0][:12]
        if p.role == GridStaff.Role.LEADER:
            memberships.append(
                DemoMembership(p.username, "grid_leader", community, workstation_code(community))
            )
        else:
            memberships += [
                DemoMembership(p.username, "grid_worker", code, workstation_code(community))
                for code in p.grid_codes
            ]
    staff = {p.username for p in city.people}
    for account in DEMO_ACCOUNTS:
        if account.username in staff:
            continue
        department = f"{DISTRICT_CODE}-{account.department}" if account.department else None
        memberships.append(
            DemoMembership(account.username, account.role, DISTRICT_CODE, department)
        )
    return memberships


# --- Writing to the database --------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    created: bool
    areas: int = 0
    grids: int = 0
    buildings: int = 0
    people: int = 0
    departments: int = 0
    memberships: int = 0
    # The demo accounts created here, which sign in with DEMO_PASSWORD.
    accounts: tuple[str, ...] = ()
    existing_areas: int = 0


def seed_demo_city(*, seed: int = DEMO_SEED, force: bool = False) -> SeedResult:
    """Write the demo city and its organisation in one transaction.

    Areas go through the importer; then buildings, people, grid staff,
    departments and memberships. Departments, the demo accounts and their
    memberships go through :mod:`accounts.services` (validated and audited one
    by one); the generated field staff and their memberships, valid by
    construction, are written in bulk and audited by one summary entry.

    Refuses (``created=False``) when areas exist, unless ``force``, which
    first removes every area, building, grid assignment, department and
    membership, and the field staff who had a grid.
    """
    from .importer import import_feature_collection

    city = _cached_city(seed)
    with transaction.atomic():
        existing = Area.objects.count()
        if existing and not force:
            return SeedResult(created=False, existing_areas=existing)
        removed_users = _wipe() if existing else 0
        # The memberships below name the built-in roles.
        sync_builtin_roles()
        import_feature_collection(city.feature_collection())
        ids = dict(Area.objects.filter(code__startswith=DISTRICT_CODE).values_list("code", "id"))
        Building.objects.bulk_create(
            Building(
                community_id=ids[b.community_code],
                grid_id=ids[b.grid_code],
                name=b.name,
                lng=b.lng,
                lat=b.lat,
                households=b.households,
                population=b.population,
            )
            for b in city.buildings
        )
        users, accounts = _users(city)
        GridStaff.objects.bulk_create(
            GridStaff(area_id=ids[code], user=users[p.username], role=p.role)
            for p in city.people
            for code in p.grid_codes
        )
        memberships = demo_memberships(city)
        organisation = demo_departments(city)
        codes = {m.area_code for m in memberships} | {d.area_code for d in organisation}
        areas = {a.code: a for a in Area.objects.filter(code__in=codes).defer("geometry")}
        departments = _departments(organisation, areas)
        _memberships(memberships, users=users, areas=areas, ids=ids, departments=departments)
        result = SeedResult(
            created=True,
            areas=len(city.areas),
            grids=len(city.level(AreaLevel.GRID)),
            buildings=len(city.buildings),
            people=len({p.username for p in city.people}),
            departments=len(departments),
            memberships=len(memberships),
            accounts=tuple(accounts),
            existing_areas=existing,
        )
        district = city.area(DISTRICT_CODE)
        audit_log(
            actor=None,
            action="demo.seed",
            object_type=Area._meta.label_lower,
            object_id=str(ids[DISTRICT_CODE]),
            object_repr=f"{district.name} ({district.code})",
            detail={
                "seed": seed,
                "areas": result.areas,
                "buildings": result.buildings,
                "grid_staff": result.people,
                "departments": result.departments,
                "memberships": result.memberships,
                "demo_accounts": list(result.accounts),
                "replaced_areas": existing,
                "removed_users": removed_users,
            },
        )
    return result


def _users(city: DemoCity) -> tuple[dict, list[str]]:
    """The people and the demo accounts as users; returns them by username, and the new accounts.

    An existing username is reused as it is, password included. A new demo
    account is created through the user service and given DEMO_PASSWORD; the
    other field staff are created in bulk and cannot sign in.
    """
    from accounts.services import user_create

    user_model = get_user_model()
    names = {p.username: p.display_name for p in city.people}
    wanted = [*names, *(a.username for a in DEMO_ACCOUNTS if a.username not in names)]
    existing = set(
        user_model.objects.filter(username__in=wanted).values_list("username", flat=True)
    )
    staff = []
    for username, display in names.items():
        if username in existing or username in DEMO_LOGINS:
            continue
        user = user_model(username=username, display_name=display)
        user.set_unusable_password()
        staff.append(user)
    user_model.objects.bulk_create(staff)

    created = []
    demo_hash = ""
    for account in DEMO_ACCOUNTS:
        if account.username in existing:
            continue
        user = user_create(
            username=account.username,
            display_name=account.display_name or names[account.username],
            actor=None,
        )
        # Hashed once for every account: Argon2 takes a good part of a second
        # per hash, on purpose, and the demo has eleven accounts.
        demo_hash = demo_hash or make_password(DEMO_PASSWORD)
        _give_demo_password(user, demo_hash, is_staff=account.is_staff)
        created.append(account.username)
    users = {u.username: u for u in user_model.objects.filter(username__in=wanted)}
    return users, created


def _give_demo_password(user, encoded: str, *, is_staff: bool) -> None:
    user.password = encoded
    user.is_staff = is_staff
    user.save(update_fields=["password", "is_staff"])
    # Recorded as the password service records it: that it changed, never what to.
    audit_log(
        actor=None,
        action="user.set_password",
        obj=user,
        before={"password": "unusable"},
        after={"password": "changed"},
        detail={"source": "seed_demo"},
    )
    if is_staff:
        audit_log(
            actor=None,
            action="user.update",
            obj=user,
            before={"is_staff": False},
            after={"is_staff": True},
            detail={"source": "seed_demo"},
        )


def _departments(wanted: list[DemoDepartment], areas: dict[str, Area]) -> dict[str, Department]:
    from accounts.services import department_create

    created: dict[str, Department] = {}
    for d in wanted:  # parents come first
        created[d.code] = department_create(
            code=d.code,
            name=d.name,
            name_en=d.name_en,
            kind=d.kind,
            area=areas[d.area_code],
            parent=created[d.parent_code] if d.parent_code else None,
            actor=None,
        )
    return created


def _memberships(
    wanted: list[DemoMembership],
    *,
    users: dict,
    areas: dict[str, Area],
    ids: dict[str, int],
    departments: dict[str, Department],
) -> None:
    """The demo accounts' memberships through the service, the field staff's in bulk."""
    from accounts.services import membership_create

    roles = {r.code: r for r in Role.objects.filter(code__in={m.role for m in wanted})}
    bulk = []
    for m in wanted:
        department = departments[m.department_code] if m.department_code else None
        if m.username in DEMO_LOGINS:
            membership_create(
                user=users[m.username],
                role=roles[m.role],
                area=areas[m.area_code],
                department=department,
                actor=None,
            )
        else:
            bulk.append(
                Membership(
                    user=users[m.username],
                    role=roles[m.role],
                    area_id=ids[m.area_code],
                    department=department,
                )
            )
    Membership.objects.bulk_create(bulk)


def _wipe() -> int:
    """Remove the area tree and what hangs off it: staff, buildings, memberships, departments.

    Returns how many field-staff users went with it.
    """
    user_model = get_user_model()
    field_staff = list(
        user_model.objects.filter(
            grid_assignments__isnull=False, is_staff=False, is_superuser=False
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    user_model.objects.filter(pk__in=field_staff).delete()
    GridStaff.objects.all().delete()
    Building.objects.all().delete()
    Membership.objects.all().delete()
    try:
        # Leaves first, in both trees: each protects a parent that still has children.
        while Department.objects.exists():
            Department.objects.filter(children__isnull=True).delete()
        for level in sorted(AreaLevel, reverse=True):
            Area.objects.filter(level=level).delete()
    except ProtectedError as exc:
        kinds = sorted({type(obj)._meta.verbose_name_plural for obj in exc.protected_objects})
        raise DomainError(
            _("Cannot replace the areas: %(kinds)s still refer to them.")
            % {"kinds": ", ".join(map(str, kinds))}
        ) from None
    bump_area_version()
    return len(field_staff)


# --- The demo logins -------------------------------------------------------------------


@dataclass(frozen=True)
class HeldRole:
    """A role as a person holds it: where, and for which department."""

    code: str
    name: str
    name_en: str
    areas: tuple[str, ...]  # area names, by code
    department: str = ""


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    display_name: str
    roles: tuple[HeldRole, ...]
    # An admin without a confirmed authenticator sets one up at the first sign-in.
    two_factor_setup: bool = False


def demo_logins() -> list[DemoLogin]:
    """The demo accounts that are active and still accept DEMO_PASSWORD, with their roles.

    In the order of :data:`DEMO_ACCOUNTS`; an account whose password was
    changed, or that was made by someone else under a demo username, is left out.
    """
    from accounts.roles import BUILTIN_ROLES
    from accounts.two_factor import confirmed_device, two_factor_required

    user_model = get_user_model()
    users = {
        u.username: u for u in user_model.objects.filter(username__in=DEMO_LOGINS, is_active=True)
    }
    accepted: dict[str, bool] = {}

    def accepts(encoded: str) -> bool:
        # Seeded accounts share one hash, so one (slow, Argon2) check covers all of them.
        if encoded not in accepted:
            accepted[encoded] = check_password(DEMO_PASSWORD, encoded)
        return accepted[encoded]

    users = {name: u for name, u in users.items() if accepts(u.password)}
    rank = {spec["code"]: i for i, spec in enumerate(BUILTIN_ROLES)}
    grouped: dict[int, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    memberships = (
        Membership.objects.filter(user__in=list(users.values()), is_active=True)
        .select_related("role", "area", "department")
        .order_by("area__code")
    )
    for m in memberships:
        key = (m.role.code, m.role.name, m.role.name_en, m.department.name if m.department else "")
        grouped[m.user_id][key].append(m.area.name)
    logins = []
    for name in DEMO_LOGINS:
        user = users.get(name)
        if user is None:
            continue
        held = sorted(grouped[user.pk].items(), key=lambda kv: (rank.get(kv[0][0], 99), kv[0]))
        logins.append(
            DemoLogin(
                username=name,
                password=DEMO_PASSWORD,
                display_name=user.display_name,
                roles=tuple(
                    HeldRole(code, zh, en, tuple(areas), department)
                    for (code, zh, en, department), areas in held
                ),
                two_factor_setup=two_factor_required(user) and confirmed_device(user) is None,
            )
        )
    return logins
