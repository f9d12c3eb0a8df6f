from django.urls import path

from apps.orgs import views

app_name = "onboarding"
urlpatterns = [
    path("apply/", views.onboarding_apply, name="apply"),
    path("apply/received/", views.onboarding_apply_done, name="apply-done"),
    path("review/", views.onboarding_review_queue, name="review-queue"),
    path("review/<int:pk>/", views.onboarding_review_detail, name="review-detail"),
    path("review/<int:pk>/approve/", views.onboarding_approve, name="review-approve"),
    path("review/<int:pk>/reject/", views.onboarding_reject, name="review-reject"),
]
