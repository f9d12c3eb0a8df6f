from django.urls import path

from apps.schedules import views

app_name = "schedules"
urlpatterns = [
    path("", views.workflow_list_view, name="workflow-list"),
    path("new/", views.workflow_create_view, name="workflow-create"),
    path("preview/", views.schedule_preview_view, name="schedule-preview"),
    path("action-fields/", views.action_params_view, name="action-params"),
    path("<int:pk>/", views.workflow_detail_view, name="workflow-detail"),
    path("<int:pk>/edit/", views.workflow_edit_view, name="workflow-edit"),
    path("<int:pk>/pause/", views.workflow_pause_view, name="workflow-pause"),
    path("<int:pk>/resume/", views.workflow_resume_view, name="workflow-resume"),
    path("<int:pk>/archive/", views.workflow_archive_view, name="workflow-archive"),
    path("runs/<int:pk>/", views.run_detail_view, name="run-detail"),
]
