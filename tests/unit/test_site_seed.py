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


# seed's decision, from (row count, smallest id, largest id) of categories and products.
SEEDED = ((20, 1, 20), (1000, 1, 1000))


def test_a_seeded_catalogue_is_kept_whatever_was_written_since():
    # Same counts and ids: prices, stock and versions written since are not looked at.
    assert seeding.already_seeded(*SEEDED, categories=20, products=1000)


@pytest.mark.parametrize(
    ("category_ids", "product_ids"),
    [
        ((0, None, None), (0, None, None)),  # empty
        ((20, 1, 20), (0, None, None)),  # no products
        ((20, 1, 20), (999, 1, 1000)),  # one product missing
        ((20, 1, 20), (1001, 1, 1001)),  # one too many
        ((20, 1, 20), (1000, 2, 1001)),  # same count, other ids
        ((19, 1, 19), (1000, 1, 1000)),  # other category count
        ((20, 3, 22), (1000, 1, 1000)),  # other category ids
    ],
)
def test_other_counts_or_ids_are_replaced(category_ids, product_ids):
    assert not seeding.already_seeded(category_ids, product_ids, categories=20, products=1000)


def test_asked_for_other_counts_the_catalogue_is_replaced():
    assert not seeding.already_seeded(*SEEDED, categories=20, products=500)
    assert not seeding.already_seeded(*SEEDED, categories=10, products=1000)


def test_zero_products_is_a_valid_seed():
    assert seeding.already_seeded((5, 1, 5), (0, None, None), categories=5, products=0)
    assert not seeding.already_seeded((5, 1, 5), (3, 1, 3), categories=5, products=0)
