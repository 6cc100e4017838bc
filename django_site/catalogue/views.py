"""The catalogue's HTML pages. Product and category pages go through the page cache."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string

from catalogue import cache
from catalogue.models import Category, Product


def home(request):
    return render(request, "catalogue/home.html", {"categories": Category.objects.all()})


def product(request, pk, bypass=False):
    page, status = cache.look_aside(
        cache.product_key(pk), lambda: _product_page(pk), bypass, cache.request_set_delay(request)
    )
    return _respond(page, status)


def category(request, pk, bypass=False):
    page, status = cache.look_aside(
        cache.category_key(pk), lambda: _category_page(pk), bypass, cache.request_set_delay(request)
    )
    return _respond(page, status)


# The builders render without the request: a cached body is shared by every node and
# client, so it must hold nothing request- or node-specific (X-Served-By is a header).
def _product_page(pk):
    # A product page's one query (cached or /nocache/ route alike): in pg_stat_statements
    # the only statement LIKE '%FROM "catalogue_product" INNER JOIN "catalogue_category"%'.
    # The lab counts its calls to show a herd reaching the database, or not.
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    body = render_to_string("catalogue/product.html", {"product": product}).encode()
    return cache.Page(body, {"X-Product-Version": str(product.version)})


def _category_page(pk):
    category = get_object_or_404(Category, pk=pk)
    products = category.products.only("id", "name", "price", "stock")
    context = {"category": category, "products": products}
    return cache.Page(render_to_string("catalogue/category.html", context).encode())


def _respond(page, status):
    response = HttpResponse(page.body, headers=page.headers)
    response["X-Cache"] = status
    return response
