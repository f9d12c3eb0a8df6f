"""The trading desk: order ticket, pre-trade risk, kill switch, blotters and P&L. Orders are
exchange operations.
"""

from django.apps import AppConfig


def register_hooks() -> None:
    """The orders' reaction to their operations' outcomes (apps.exchange.hooks)."""
    from apps.exchange.hooks import (
        operation_hook_register,
        send_guard_register,
        send_guards_clear,
    )
    from apps.exchange.models import Kind
    from apps.trading import outcomes, services

    operation_hook_register(
        Kind.ADD_ORDER,
        on_done=outcomes.on_add_order_done,
        on_rejected=outcomes.on_add_order_rejected,
        on_not_placed=outcomes.on_add_order_not_placed,
    )
    operation_hook_register(
        Kind.AMEND_ORDER,
        on_done=outcomes.on_amend_done,
        on_rejected=outcomes.on_amend_failed,
        on_not_placed=outcomes.on_amend_failed,
    )
    operation_hook_register(
        Kind.CANCEL_ORDER,
        on_done=outcomes.on_cancel_done,
        on_rejected=outcomes.on_cancel_failed,
        on_not_placed=outcomes.on_cancel_failed,
    )
    operation_hook_register(Kind.CANCEL_ALL, on_done=outcomes.on_cancel_all_done)
    # A "cancel everything" halt: CancelAll once more after the orders already in flight.
    settled = services.kill_switch_in_flight_settled
    for kind in (Kind.ADD_ORDER, Kind.CANCEL_ALL):
        operation_hook_register(kind, on_done=settled, on_rejected=settled, on_not_placed=settled)
    # The kill switch also stops orders and amends queued before it (checked at send time).
    # Only trading guards these kinds; clearing first keeps a second registration (tests)
    # from doubling them.
    for kind in (Kind.ADD_ORDER, Kind.AMEND_ORDER):
        send_guards_clear(kind)
        send_guard_register(kind, services.halted_send_guard)


def register_stream_hooks() -> None:
    """Kraken's own word on the account's orders and fills (the private streams), and the
    dead man's switch's refresh on the streams process's tick."""
    from apps.exchange.streams.hooks import stream_hook_register, streams_tick_register
    from apps.trading import streams

    stream_hook_register(
        on_order=streams.on_exchange_order,
        on_fill=streams.on_exchange_fill,
        on_balance=streams.on_balance,
    )
    streams_tick_register(streams.dead_mans_switch_refresh)


class TradingConfig(AppConfig):
    name = "apps.trading"
    label = "trading"

    def ready(self) -> None:
        from apps.market.panels import pair_panel_register
        from apps.trading.live_blotter import register as blotter_live_register
        from apps.trading.views import render_ticket_panel

        register_hooks()
        register_stream_hooks()
        # The ticket on every market pair page (market offers the slot; it never imports us).
        pair_panel_register("trading-ticket", render_ticket_panel)
        # The blotters' and P&L's live refreshes (stream and operation hooks).
        blotter_live_register()
