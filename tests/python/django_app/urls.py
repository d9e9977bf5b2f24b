from django.urls import path

from django_app import views

urlpatterns = [
    path("report/<int:year>/", views.report, name="report"),
]
