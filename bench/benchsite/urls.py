from django.urls import path

from project.urls import urlpatterns as project_urls

from .floor import floor

urlpatterns = [path("bench/floor/<path:command>", floor), *project_urls]
