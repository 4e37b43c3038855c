import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import Department
from cases.models import Category, Kind, RoutingRule
from cases.selectors import ancestor_codes, route_department
from geo.models import Area, AreaLevel
from geo.testing import make_area


@pytest.fixture
def world(small_city):
    city = make_area(code="110100", level=AreaLevel.CITY, name="北京市")
    Area.objects.filter(pk=small_city.district.pk).update(parent=city)

    def dept(code, area):
        return Department.objects.create(code=code, name=code, area=area)

    return {
        "city": city,
        "district": small_city.district,
        "street": small_city.street,
        "community": small_city.communities[0],
        "grid": small_city.grids[0],
        "other_grid": small_city.grids[5],
        "garbage": Category.objects.get(kind=Kind.EVENT, code="0101"),
        "muck": Category.objects.get(kind=Kind.EVENT, code="0102"),
        "sanitation": Category.objects.get(kind=Kind.EVENT, code="01"),
        "light": Category.objects.get(kind=Kind.COMPONENT, code="0109"),
        "dept": dept,
    }


def rule(category, area, department, **extra):
    return RoutingRule.objects.create(category=category, area=area, department=department, **extra)


def test_ancestor_codes(world):
    assert ancestor_codes(world["grid"]) == [
        "11010500100101",
        "110105001001",
        "110105001",
        "110105",
        "110100",
    ]


def test_no_rule_no_department(world):
    assert route_department(category=world["garbage"], area=world["grid"]) is None


def test_district_fallback_applies_to_every_class(world):
    center = world["dept"]("D-CENTER", world["district"])
    rule(None, world["district"], center)
    assert route_department(category=world["garbage"], area=world["grid"]) == center
    assert route_department(category=world["light"], area=world["grid"]) == center


def test_major_rule_covers_its_minors_and_minor_rule_beats_it(world):
    sanitation = world["dept"]("D-SAN", world["district"])
    cleaning = world["dept"]("D-CLEAN", world["district"])
    rule(world["sanitation"], world["district"], sanitation)
    rule(world["garbage"], world["district"], cleaning)
    rule(None, world["district"], world["dept"]("D-CENTER", world["district"]))
    assert route_department(category=world["garbage"], area=world["grid"]) == cleaning
    assert route_department(category=world["muck"], area=world["grid"]) == sanitation


def test_deeper_area_beats_more_specific_class(world):
    district_garbage = world["dept"]("D-GARBAGE", world["district"])
    street_all = world["dept"]("S-ALL", world["street"])
    community_major = world["dept"]("C-SAN", world["community"])
    rule(world["garbage"], world["district"], district_garbage)
    rule(None, world["street"], street_all)
    # The street's fallback is deeper than the district's minor-class rule.
    assert route_department(category=world["garbage"], area=world["grid"]) == street_all
    rule(world["sanitation"], world["community"], community_major)
    assert route_department(category=world["garbage"], area=world["grid"]) == community_major
    # A grid of the other community is outside that community's rule.
    assert route_department(category=world["garbage"], area=world["other_grid"]) == street_all


def test_city_rule_applies_below_it(world):
    city_dept = world["dept"]("CITY-LIGHTS", world["city"])
    rule(world["light"], world["city"], city_dept)
    assert route_department(category=world["light"], area=world["grid"]) == city_dept
    assert route_department(category=world["garbage"], area=world["grid"]) is None


def test_rule_for_another_area_or_class_does_not_apply(world):
    rule(world["garbage"], world["other_grid"], world["dept"]("G6", world["other_grid"]))
    rule(world["light"], world["grid"], world["dept"]("G1-LIGHT", world["grid"]))
    assert route_department(category=world["garbage"], area=world["grid"]) is None


def test_inactive_rules_and_departments_are_skipped(world):
    street_dept = world["dept"]("S", world["street"])
    grid_dept = world["dept"]("G", world["grid"])
    rule(None, world["street"], street_dept)
    grid_rule = rule(world["garbage"], world["grid"], grid_dept, is_active=False)
    assert route_department(category=world["garbage"], area=world["grid"]) == street_dept
    grid_rule.is_active = True
    grid_rule.save()
    assert route_department(category=world["garbage"], area=world["grid"]) == grid_dept
    Department.objects.filter(pk=grid_dept.pk).update(is_active=False)
    assert route_department(category=world["garbage"], area=world["grid"]) == street_dept


def test_routing_is_one_query(world):
    for i, area in enumerate([world["district"], world["street"], world["community"]]):
        rule(None, area, world["dept"](f"D{i}", area))
        rule(world["sanitation"], area, world["dept"](f"S{i}", area))
    with CaptureQueriesContext(connection) as queries:
        department = route_department(category=world["garbage"], area=world["grid"])
    assert department.code == "S2"
    assert len(queries) == 1


def test_one_rule_per_class_and_area_and_one_fallback(world):
    d = world["dept"]("D", world["district"])
    rule(world["garbage"], world["district"], d)
    rule(None, world["district"], d)
    with pytest.raises(IntegrityError), transaction.atomic():
        rule(world["garbage"], world["district"], d)
    with pytest.raises(IntegrityError), transaction.atomic():
        rule(None, world["district"], d)
