"""Parse the fields of a product update; pure functions, errors are one-line ValueErrors."""

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_PRICE = Decimal("99999999.99")  # DecimalField(max_digits=10, decimal_places=2)
MAX_INT = 2**31 - 1  # PostgreSQL integer


def price(value):
    if isinstance(value, bool):
        raise ValueError("price must be a number")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"price is not a number: {value!r}") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_PRICE:
        raise ValueError(f"price must be between 0 and {MAX_PRICE}")
    if amount != amount.quantize(CENT):
        raise ValueError("price has more than two decimals")
    return amount.quantize(CENT)


def integer(name, value, minimum):
    # bool is an int and 2.5 would truncate: accept only whole numbers as int or text.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{name} must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} is not a whole number: {value!r}") from None
    if not minimum <= number <= MAX_INT:
        raise ValueError(f"{name} must be between {minimum} and {MAX_INT}")
    return number


PARSERS = {
    "price": price,
    "stock": lambda value: integer("stock", value, minimum=0),
    "category": lambda value: integer("category", value, minimum=1),
}


def parse_update(data):
    """Return the changes in data ({field: value}); any subset of price, stock, category."""
    unknown = sorted(set(data) - set(PARSERS))
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    changes = {name: parse(data[name]) for name, parse in PARSERS.items() if name in data}
    if not changes:
        raise ValueError("nothing to update: send price, stock and/or category")
    return changes
