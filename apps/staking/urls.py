from django.urls import URLPattern, URLResolver

app_name = "staking"
urlpatterns: list[URLPattern | URLResolver] = []
