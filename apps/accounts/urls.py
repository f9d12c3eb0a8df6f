from django.urls import path

from apps.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("two-factor/setup/", views.two_factor_setup, name="two-factor-setup"),
    path("two-factor/verify/", views.two_factor_verify, name="two-factor-verify"),
]
