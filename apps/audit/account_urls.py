from django.urls import path

from apps.audit import views

app_name = "security"
urlpatterns = [path("", views.security_activity, name="activity")]
