"""The ticket's messages (tests assert on them)."""

from __future__ import annotations

# Messages (tests assert on them).
NOT_A_TRADER = "Your role does not allow trading."
NO_ACCOUNT = "Choose one of the organization's active Kraken accounts."
NO_OWN_KEY = (
    "You have no active trading key of your own for {account}. Add one under “API keys”; "
    "the desk never trades with another member's key."
)
KEY_NOT_CHECKED = (
    "Your trading key for {account} has not passed its permission check yet; test it under "
    "“API keys”."
)
HALTED = "Trading is halted for the organization (kill switch, since {since})."
SYSTEM_STATUS = {
    "maintenance": "Kraken is in maintenance: no orders can be placed.",
    "cancel_only": "Kraken accepts only cancellations right now (cancel-only).",
    "post_only": "Kraken accepts only post-only limit orders right now (post-only).",
}
PAIR_STATUS = {
    "maintenance": "{pair} is in maintenance on Kraken: no orders can be placed.",
    "cancel_only": "{pair} accepts only cancellations right now (cancel-only).",
    "post_only": "{pair} accepts only post-only limit orders right now (post-only).",
    "limit_only": "{pair} accepts only limit orders right now (limit-only).",
    "reduce_only": (
        "{pair} accepts only orders that reduce a margin position (reduce-only); the desk "
        "places spot orders only."
    ),
    "delisted": "{pair} is delisted on Kraken.",
    "work_in_progress": "{pair} is not open for trading yet on Kraken.",
}
UNKNOWN_PAIR = "Kraken has no such pair (or its rules are not loaded yet)."
PAIR_OFFLINE = "{pair} is not tradable on Kraken ({status})."
QUANTITY_REQUIRED = "Enter a quantity greater than zero."
QUANTITY_DECIMALS = "{pair} takes at most {places} decimals of {base}."
BELOW_ORDERMIN = "The minimum order for {pair} is {ordermin} {base}."
BELOW_COSTMIN = "The minimum order value for {pair} is {costmin} {quote}."
PRICE_REQUIRED = "This order type needs a price."
PRICE2_REQUIRED = "This order type needs a limit price (second price)."
PRICE_NOT_ALLOWED = "A market order has no price."
PRICE_INVALID = "Enter a price (e.g. 50000), or relative to the last trade: +100, -1.5%."
PRICE_POSITIVE = "The price must be greater than zero."
PRICE_TICK = "{pair} prices move in steps of {tick}."
NO_LAST_TRADE = "No recent trade price to resolve a relative price; enter an absolute price."
TRAILING_OFFSET = "A trailing stop takes an offset from the market: +50 or +1.5%."
TIF_GTD_EXPIRY = "Good-till-date needs an expiry in the future."
TIF_EXPIRY_ONLY_GTD = "An expiry is only for good-till-date orders."
TIF_MARKET = "A market order cannot be good-till-date."
POST_ONLY_TYPES = "Post-only is only for limit and iceberg orders."
POST_ONLY_TIF = "A post-only order must rest: good-till-cancelled or good-till-date."
QUOTE_ONLY_MARKET_BUY_VIQC = (
    "A market sell in the quote currency needs a book to convert it; none is published now."
)
QUOTE_NEEDS_PRICE = "Enter a price first: a quantity in {quote} is converted at it."
QUOTE_TOO_SMALL = "{amount} {quote} buys less than one lot of {base} at this price."
DISPLAY_REQUIRED = "An iceberg order needs a visible quantity."
DISPLAY_RANGE = "The visible quantity must be above zero and below the whole quantity."
DISPLAY_ONLY_ICEBERG = "A visible quantity is only for iceberg orders."
CLOSE_PRICE_REQUIRED = "The conditional close needs a price."
CLOSE_TYPES = "A conditional close is a limit, stop-loss or take-profit order."
CONFIRM_FAR = "The price is {distance}% from the last trade ({last}); confirm to send it."
CONFIRM_LARGE = "The order is worth {value} {currency}; confirm to send it."
CONFIRM_BOTH = "Tick “I confirm” to send this order."
TRIGGER_ONLY_TRIGGERED = "A trigger is only for stop, take-profit and trailing orders."
SPENDABLE_SHORT = (
    "This needs about {needed} {asset}; the account can spend {spendable} {asset} now "
    "(balances as last reported), so Kraken may refuse it."
)
