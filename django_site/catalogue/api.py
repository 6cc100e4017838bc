"""The lab tools' write API."""

import json

from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from catalogue import cache
from catalogue.models import Category, Product
from catalogue.validation import parse_update


@csrf_exempt  # called by the lab's tools, not by a browser form
@require_POST
def update_product(request, pk):
    try:
        product = _apply(pk, parse_update(_fields(request)))
    except ValueError as error:
        return _error(400, str(error))
    except Product.DoesNotExist:
        return _error(404, f"no product {pk}")
    except Category.DoesNotExist:
        return _error(400, "no such category")
    return JsonResponse(
        {
            "id": product.pk,
            "version": product.version,
            "price": product.price,  # a string: "19.99", exact
            "stock": product.stock,
            "category": product.category_id,
        }
    )


def _fields(request):
    if request.content_type != "application/json":
        return request.POST.dict()
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise ValueError("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("JSON body must be an object")
    return data


@transaction.atomic
def _apply(pk, changes):
    product = Product.objects.select_for_update().get(pk=pk)  # writers of one row queue here
    keys = {cache.product_key(pk), cache.category_key(product.category_id)}
    if "category" in changes:
        # Checked now: the FK constraint is deferred and would only fail at COMMIT.
        Category.objects.get(pk=changes["category"])
        product.category_id = changes["category"]
        keys.add(cache.category_key(product.category_id))
    product.price = changes.get("price", product.price)
    product.stock = changes.get("stock", product.stock)
    product.version += 1  # safe: the row is locked
    product.updated_at = timezone.now()
    product.save()
    # After COMMIT only: deleting earlier would let a reader re-cache the old row.
    transaction.on_commit(lambda: cache.invalidate(sorted(keys)))
    return product


def _error(status, message):
    return JsonResponse({"error": message}, status=status)
