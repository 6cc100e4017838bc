"""manage.py seed --products N --categories M: load the deterministic catalogue."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Count, Max, Min

from catalogue import cache, seeding
from catalogue.models import Category, Product


class Command(BaseCommand):
    help = (
        "Load N products in M categories; does nothing if N products and M categories with "
        "ids 1..N and 1..M are there, whatever was written to them since."
    )

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=1000)
        parser.add_argument("--categories", type=int, default=20)

    def handle(self, *args, products, categories, **options):
        started = time.monotonic()
        try:
            category_rows, product_rows = seeding.generate(products, categories)
        except ValueError as error:
            raise CommandError(error) from None
        what = f"{products} products in {categories} categories"
        if seeding.already_seeded(_ids(Category), _ids(Product), categories, products):
            # Provisioning runs this at every `fab cache` and `fab start`: rows written since
            # the seed (prices, stock, versions) are the lab's data now, never reset.
            self.stdout.write(f"seed: {what} already there, nothing to do")
            return
        _replace(category_rows, product_rows)
        self._clear_cache()
        self.stdout.write(f"seed: wrote {what} in {time.monotonic() - started:.2f}s")

    def _clear_cache(self):
        # Cached pages may show the replaced rows, on any node and in any mode.
        failed = cache.clear_all()
        if failed:
            servers = ", ".join(failed)
            self.stderr.write(f"seed: warning: could not empty memcached on {servers}: stale pages")


def _ids(model):
    """(row count, smallest id, largest id) of a table, in one query."""
    found = model.objects.aggregate(count=Count("id"), first=Min("id"), last=Max("id"))
    return found["count"], found["first"], found["last"]


@transaction.atomic
def _replace(category_rows, product_rows):
    Product.objects.all().delete()
    Category.objects.all().delete()
    Category.objects.bulk_create(_objects(Category, seeding.CATEGORY_FIELDS, category_rows))
    Product.objects.bulk_create(
        _objects(Product, seeding.PRODUCT_FIELDS, product_rows), batch_size=2000
    )
    # Explicit ids leave the sequences behind; reset them so a later insert cannot collide.
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Category, Product]):
            cursor.execute(sql)


def _objects(model, fields, rows):
    return [model(**dict(zip(fields, row, strict=True))) for row in rows]
