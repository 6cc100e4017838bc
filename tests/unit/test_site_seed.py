"""catalogue.seeding: the seed rows are deterministic and well formed (no database)."""

import pickle
import sys
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "django_site"))

from catalogue import seeding  # noqa: E402


def test_same_counts_give_byte_identical_rows():
    assert pickle.dumps(seeding.generate(1000, 20)) == pickle.dumps(seeding.generate(1000, 20))


def test_a_product_does_not_depend_on_how_many_are_seeded():
    small, large = seeding.product_rows(10, 20), seeding.product_rows(1000, 20)
    assert small == large[:10]


def test_rows_fit_the_model():
    categories, products = seeding.generate(1000, 20)
    assert [row[0] for row in categories] == list(range(1, 21))
    assert [row[0] for row in products] == list(range(1, 1001))
    assert len({row[2] for row in categories}) == 20  # slugs unique
    assert len({row[2] for row in products}) == 1000  # skus unique
    for row in products:
        fields = dict(zip(seeding.PRODUCT_FIELDS, row, strict=True))
        assert 1 <= fields["category_id"] <= 20
        assert Decimal("0.99") <= fields["price"] <= Decimal("999.99")
        assert fields["price"] == fields["price"].quantize(Decimal("0.01"))
        assert 0 <= fields["stock"] <= 500 and fields["version"] == 1
        assert len(fields["name"]) <= 200 and len(fields["sku"]) <= 32


def test_categories_are_filled_evenly():
    _, products = seeding.generate(1000, 20)
    sizes = [sum(1 for row in products if row[1] == c) for c in range(1, 21)]
    assert sizes == [50] * 20


def test_more_categories_than_departments_stay_unique():
    categories = seeding.category_rows(45)
    assert len({row[1] for row in categories}) == 45
    assert categories[20][1:] == ("Books 2", "books-2")


@pytest.mark.parametrize(("products", "categories"), [(10, 0), (-1, 5)])
def test_impossible_counts_are_refused(products, categories):
    with pytest.raises(ValueError):
        seeding.generate(products, categories)
