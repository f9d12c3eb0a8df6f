"""The blotters' and P&L's URLs (issue 11 §5), included by apps/trading/urls.py."""

from django.urls import URLPattern, path

from apps.trading import views_blotter, views_pnl

blotter_urlpatterns: list[URLPattern] = [
    path("blotter/", views_blotter.blotter_open_view, name="blotter-open"),
    path("blotter/history/", views_blotter.blotter_history_view, name="blotter-history"),
    path("blotter/fills/", views_blotter.blotter_fills_view, name="blotter-fills"),
    path("blotter/open.csv", views_blotter.blotter_open_export, name="blotter-open-export"),
    path(
        "blotter/history.csv", views_blotter.blotter_history_export, name="blotter-history-export"
    ),
    path("blotter/fills.csv", views_blotter.blotter_fills_export, name="blotter-fills-export"),
    path("pnl/", views_pnl.pnl_view, name="pnl"),
    path("pnl/opening/", views_pnl.pnl_opening_import_view, name="pnl-opening-import"),
    path("pnl/panel/", views_pnl.desk_panel_view, name="desk-panel"),
]
