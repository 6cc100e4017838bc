"""The deterministic seed data, as plain tuples: no database needed to make or test it.

Same (products, categories) gives the same rows on any machine: fixed seeds, ids from 1,
and a fixed updated_at. Product i's own fields do not depend on the counts at all.
"""

import random
from datetime import UTC, datetime
from decimal import Decimal

SEED = 1956  # fixed forever: changing it changes every lab's data
SEEDED_AT = datetime(2024, 1, 1, tzinfo=UTC)

# Column order of the tuples, also used to read the database back for comparison.
CATEGORY_FIELDS = ("id", "name", "slug")
PRODUCT_FIELDS = (
    "id", "category_id", "sku", "name", "description", "price", "stock", "version", "updated_at"
)  # fmt: skip

DEPARTMENTS = (
    "Books", "Garden", "Kitchen", "Tools", "Toys", "Music", "Sports", "Office", "Lighting",
    "Bathroom", "Camping", "Cycling", "Pets", "Baby", "Crafts", "Audio", "Storage", "Paint",
    "Travel", "Games",
)  # fmt: skip
ADJECTIVES = (
    "Sturdy", "Compact", "Classic", "Deluxe", "Folding", "Portable", "Quiet", "Bright",
    "Rustic", "Modern", "Tiny", "Heavy", "Smart", "Vintage", "Rugged", "Elegant",
)  # fmt: skip
NOUNS = (
    "Kettle", "Lamp", "Chair", "Hammer", "Backpack", "Speaker", "Notebook", "Tent", "Bottle",
    "Clock", "Drill", "Puzzle", "Basket", "Blanket", "Mirror", "Helmet", "Easel", "Shelf",
)  # fmt: skip
MATERIALS = ("oak", "steel", "bamboo", "recycled plastic", "aluminium", "wool", "glass")


def category_rows(count):
    rows = []
    for i in range(1, count + 1):
        base = DEPARTMENTS[(i - 1) % len(DEPARTMENTS)]
        lap = (i - 1) // len(DEPARTMENTS)
        name = base if lap == 0 else f"{base} {lap + 1}"
        rows.append((i, name, "-".join(name.lower().split())))
    return rows


def product_rows(count, categories):
    rng = random.Random(SEED)
    return [_product(rng, i, categories) for i in range(1, count + 1)]


def _product(rng, i, categories):
    adjective, noun, material = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(MATERIALS)
    model = f"{noun[0]}-{rng.randint(100, 999)}"
    description = f"A {adjective.lower()} {noun.lower()} made of {material}, model {model}."
    price = Decimal(rng.randint(99, 99_999)).scaleb(-2)  # 0.99 .. 999.99, exact cents
    stock = rng.randint(0, 500)
    category_id = (i - 1) % categories + 1  # round robin: every listing is the same size
    name = f"{adjective} {noun} {model}"
    return (i, category_id, f"LAB-{i:06d}", name, description, price, stock, 1, SEEDED_AT)


def generate(products, categories):
    """Return (category rows, product rows) for the given counts."""
    if categories < 1 or products < 0:
        raise ValueError("need at least one category and no negative product count")
    return category_rows(categories), product_rows(products, categories)


def already_seeded(category_ids, product_ids, categories, products):
    """Is the catalogue seeded for these counts, whatever was written to it since?

    *_ids: (row count, smallest id, largest id) of each table. True when the tables hold
    exactly ids 1..categories and 1..products (ids are unique, so count and bounds tell).
    An empty catalogue, other counts or other ids: False, and the seed replaces it all.
    """
    return _exactly(category_ids, categories) and _exactly(product_ids, products)


def _exactly(ids, count):
    found, first, last = ids
    if found != count:
        return False
    return count == 0 or (first, last) == (1, count)
