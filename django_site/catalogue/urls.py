# The URL names and paths are an interface: the lab's tooling depends on them.
from django.urls import path

from catalogue import api, probes, views

urlpatterns = [
    path("", views.home, name="home"),
    path("products/<int:pk>/", views.product, name="product"),
    path("categories/<int:pk>/", views.category, name="category"),
    path("nocache/products/<int:pk>/", views.product, {"bypass": True}, name="product-nocache"),
    path("nocache/categories/<int:pk>/", views.category, {"bypass": True}, name="category-nocache"),
    path("products/<int:pk>/update", api.update_product, name="product-update"),
    path("health", probes.health, name="health"),
    path("trivial", probes.trivial, name="trivial"),
]
