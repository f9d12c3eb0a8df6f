from django.urls import path

from apps.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("two-factor/setup/", views.two_factor_setup, name="two-factor-setup"),
    path("two-factor/verify/", views.two_factor_verify, name="two-factor-verify"),
    path("two-factor/disable/", views.two_factor_disable, name="two-factor-disable"),
    path("two-factor/recovery-codes/", views.recovery_codes, name="recovery-codes"),
    path("step-up/", views.step_up, name="step-up"),
    path("profile/", views.profile, name="profile"),
    path("password/change/", views.password_change, name="password-change"),
    path("password/reset/", views.password_reset, name="password-reset"),
    path("password/reset/sent/", views.password_reset_done, name="password-reset-done"),
    path(
        "password/reset/<uidb64>/<token>/",
        views.password_reset_confirm,
        name="password-reset-confirm",
    ),
    path("password/reset/done/", views.password_reset_complete, name="password-reset-complete"),
    path(
        "sessions/sign-out-others/", views.sessions_sign_out_others, name="sessions-sign-out-others"
    ),
]
