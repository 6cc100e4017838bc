"""catalogue.validation: the product update API's input rules."""

import sys
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "django_site"))

from catalogue.validation import parse_update  # noqa: E402


@pytest.mark.parametrize(
    ("data", "changes"),
    [
        ({"price": "19.99", "stock": "5"}, {"price": Decimal("19.99"), "stock": 5}),
        ({"price": 19.99, "stock": 5}, {"price": Decimal("19.99"), "stock": 5}),  # JSON numbers
        ({"price": "7"}, {"price": Decimal("7.00")}),
        ({"stock": 0}, {"stock": 0}),
        ({"category": "3"}, {"category": 3}),
        ({"price": "0", "stock": "1", "category": 2}, {"price": 0, "stock": 1, "category": 2}),
    ],
)
def test_good_input(data, changes):
    assert parse_update(data) == changes


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "nothing to update"),
        ({"prize": "1"}, "unknown field"),
        ({"price": "abc"}, "price is not a number"),
        ({"price": "1.234"}, "more than two decimals"),
        ({"price": "-1"}, "between 0 and"),
        ({"price": "1e12"}, "between 0 and"),
        ({"price": "NaN"}, "between 0 and"),
        ({"price": True}, "price must be a number"),
        ({"stock": "-1"}, "between 0 and"),
        ({"stock": 2.5}, "whole number"),
        ({"stock": True}, "whole number"),
        ({"stock": "ten"}, "not a whole number"),
        ({"stock": 2**31}, "between 0 and"),
        ({"category": 0}, "between 1 and"),
    ],
)
def test_bad_input_is_one_line(data, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_update(data)
    assert "\n" not in str(error.value)
