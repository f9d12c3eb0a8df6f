from django.urls import URLPattern, URLResolver

app_name = "trading"
urlpatterns: list[URLPattern | URLResolver] = []
