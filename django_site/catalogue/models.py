from django.db import models
from django.utils import timezone


class Category(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=120, db_index=False)

    class Meta:
        ordering = ["name", "id"]
        # Constraints rather than unique=True: that would add a LIKE index nothing uses.
        constraints = [models.UniqueConstraint(fields=["slug"], name="category_slug_unique")]

    def __str__(self):
        return self.name


class Product(models.Model):
    # No separate FK index: the (category, name) index below serves both the listing
    # and FK lookups, one index less to maintain on every write.
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products", db_index=False
    )
    sku = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.IntegerField()
    version = models.IntegerField(default=1)
    # Not auto_now: the seed sets a fixed time so reseeding gives identical rows.
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["sku"], name="product_sku_unique")]
        indexes = [models.Index(fields=["category", "name"], name="product_category_name")]

    def __str__(self):
        return f"{self.sku} {self.name}"
