"""Named workloads: what the load generator asks for, request after request.

Product and uncached pages follow a Zipf popularity over the catalogue (a few products are
very popular, most are rarely seen), as real shop traffic does; that is what makes a cache
pay off, and what makes one hot key a thundering-herd risk.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect
from dataclasses import dataclass

ZIPF_EXPONENT = 1.1


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    key: int = 0  # the product it is about, if any (for checkers)


class Workload:
    name = "abstract"
    description = ""

    def __init__(self, products: int, categories: int):
        self.products = products
        self.categories = categories

    def next(self, rng: random.Random) -> Request:
        raise NotImplementedError


class Zipf:
    """Ranks 1..n with P(k) proportional to 1/k^s, drawn in O(log n)."""

    def __init__(self, n: int, exponent: float = ZIPF_EXPONENT):
        self.cumulative = list(itertools.accumulate(1 / k ** exponent for k in range(1, n + 1)))

    def draw(self, rng: random.Random) -> int:
        return bisect(self.cumulative, rng.random() * self.cumulative[-1]) + 1


class ProductPages(Workload):
    name = "product"
    description = "cached product pages, Zipf popularity over the catalogue"
    prefix = "/products"

    def __init__(self, products: int, categories: int):
        super().__init__(products, categories)
        self.zipf = Zipf(products)

    def next(self, rng):
        product = self.zipf.draw(rng)
        return Request("GET", f"{self.prefix}/{product}/", key=product)


class UncachedPages(ProductPages):
    name = "uncached"
    description = "the same product pages with the cache bypassed (every read hits PostgreSQL)"
    prefix = "/nocache/products"


class CategoryPages(Workload):
    name = "category"
    description = "cached category listings, Zipf popularity over the categories"

    def __init__(self, products: int, categories: int):
        super().__init__(products, categories)
        self.zipf = Zipf(categories)

    def next(self, rng):
        return Request("GET", f"/categories/{self.zipf.draw(rng)}/")


class Trivial(Workload):
    name = "trivial"
    description = "a view that touches neither cache nor database: the framework's floor"

    def next(self, rng):
        return Request("GET", "/trivial")


class NginxOnly(Workload):
    name = "nginx"
    description = "answered by nginx itself: the ceiling of the path, no app server"

    def next(self, rng):
        return Request("GET", "/nginx/ok")


WORKLOADS = {w.name: w for w in (ProductPages, CategoryPages, Trivial, UncachedPages, NginxOnly)}


def make(name: str, products: int, categories: int) -> Workload:
    try:
        return WORKLOADS[name](products, categories)
    except KeyError:
        from lab.errors import LabError

        raise LabError(f"--workload {name!r}: choose one of {', '.join(WORKLOADS)}") from None


class Mixed(Workload):
    """Reads and writes of the same few products, for the consistency checker: every write
    bumps the product's version, every read reports the version it saw."""

    name = "mixed"
    description = "product reads and writes (10%) on a hot set, checked for stale reads"
    hot = 100
    write_share = 0.10

    def __init__(self, products: int, categories: int):
        super().__init__(products, categories)
        self.zipf = Zipf(min(self.hot, products))

    def next(self, rng):
        product = self.zipf.draw(rng)
        if rng.random() < self.write_share:
            body = f"stock={rng.randint(0, 999)}".encode()
            return Request("POST", f"/products/{product}/update", body, key=product)
        return Request("GET", f"/products/{product}/", key=product)


class Herd(Workload):
    """Every request for one product: with an empty cache, a thundering herd."""

    name = "herd"
    description = "all requests for one product (start with it uncached)"
    product = 1

    def next(self, rng):
        return Request("GET", f"/products/{self.product}/", key=self.product)


class Sweep(Workload):
    """Every product page, then every category page, in order: warms the whole cache."""

    name = "sweep"
    description = "every product and category page once, in order (to warm the cache)"

    def __init__(self, products: int, categories: int):
        super().__init__(products, categories)
        self.position = 0

    def next(self, rng):
        self.position = self.position % (self.products + self.categories) + 1
        if self.position <= self.products:
            return Request("GET", f"/products/{self.position}/", key=self.position)
        return Request("GET", f"/categories/{self.position - self.products}/")


WORKLOADS.update({w.name: w for w in (Mixed, Herd, Sweep)})
