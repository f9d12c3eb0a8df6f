"""The ticket's rules, in one place: the form shows their messages as the trader types, and
`services.order_submit` runs them again on the server before anything is sent.

`ticket_check` turns what the trader entered (a `Ticket`) into either errors per field or
Kraken's AddOrder parameters, with the estimate (cost, fee, average fill against the book) and
the confirmations the order needs (far from the market, large notional). It checks, in order:
the member (role, their own active trading key on the account), the kill switch, Kraken's
system and pair status, the order's shape (type, prices, time in force, flags), the pair's
rules (ordermin, costmin, tick size, lot decimals) and the pre-trade risk limits (risk.py).
It only reads.

The package splits them by concern: `statuses` (member, key, kill switch, Kraken's status),
`pairs` (prices on the pair's tick), `estimate` (quote to base, the book estimate, notional),
`confirmations` (far from the market, large), with `base` (Ticket, Check) and `messages`;
`ticket` runs them in order. Every name is importable from here as before.
"""

from apps.trading.rules.base import _ABSOLUTE as _ABSOLUTE
from apps.trading.rules.base import _DIGITS as _DIGITS
from apps.trading.rules.base import _OFFSET as _OFFSET
from apps.trading.rules.base import _RELATIVE as _RELATIVE
from apps.trading.rules.base import CLOSE_OK as CLOSE_OK
from apps.trading.rules.base import LIMIT_PRICED as LIMIT_PRICED
from apps.trading.rules.base import MAX_AMOUNT as MAX_AMOUNT
from apps.trading.rules.base import MAX_DIGITS as MAX_DIGITS
from apps.trading.rules.base import POST_ONLY_OK as POST_ONLY_OK
from apps.trading.rules.base import PRICED as PRICED
from apps.trading.rules.base import QUANTITY_TOO_LARGE as QUANTITY_TOO_LARGE
from apps.trading.rules.base import TRAILING as TRAILING
from apps.trading.rules.base import TRIGGERED as TRIGGERED
from apps.trading.rules.base import TWO_PRICES as TWO_PRICES
from apps.trading.rules.base import Check as Check
from apps.trading.rules.base import Estimate as Estimate
from apps.trading.rules.base import Ticket as Ticket
from apps.trading.rules.base import _choice as _choice
from apps.trading.rules.base import _number as _number
from apps.trading.rules.confirmations import confirmations as confirmations
from apps.trading.rules.estimate import _estimate as _estimate
from apps.trading.rules.estimate import _notional as _notional
from apps.trading.rules.estimate import _spendable_note as _spendable_note
from apps.trading.rules.estimate import quantities as quantities
from apps.trading.rules.estimate import walk as walk
from apps.trading.rules.messages import BELOW_COSTMIN as BELOW_COSTMIN
from apps.trading.rules.messages import BELOW_ORDERMIN as BELOW_ORDERMIN
from apps.trading.rules.messages import CLOSE_PRICE_REQUIRED as CLOSE_PRICE_REQUIRED
from apps.trading.rules.messages import CLOSE_TYPES as CLOSE_TYPES
from apps.trading.rules.messages import CONFIRM_BOTH as CONFIRM_BOTH
from apps.trading.rules.messages import CONFIRM_FAR as CONFIRM_FAR
from apps.trading.rules.messages import CONFIRM_LARGE as CONFIRM_LARGE
from apps.trading.rules.messages import DISPLAY_ONLY_ICEBERG as DISPLAY_ONLY_ICEBERG
from apps.trading.rules.messages import DISPLAY_RANGE as DISPLAY_RANGE
from apps.trading.rules.messages import DISPLAY_REQUIRED as DISPLAY_REQUIRED
from apps.trading.rules.messages import HALTED as HALTED
from apps.trading.rules.messages import KEY_NOT_CHECKED as KEY_NOT_CHECKED
from apps.trading.rules.messages import NO_ACCOUNT as NO_ACCOUNT
from apps.trading.rules.messages import NO_LAST_TRADE as NO_LAST_TRADE
from apps.trading.rules.messages import NO_OWN_KEY as NO_OWN_KEY
from apps.trading.rules.messages import NOT_A_TRADER as NOT_A_TRADER
from apps.trading.rules.messages import PAIR_OFFLINE as PAIR_OFFLINE
from apps.trading.rules.messages import PAIR_STATUS as PAIR_STATUS
from apps.trading.rules.messages import POST_ONLY_TIF as POST_ONLY_TIF
from apps.trading.rules.messages import POST_ONLY_TYPES as POST_ONLY_TYPES
from apps.trading.rules.messages import PRICE2_REQUIRED as PRICE2_REQUIRED
from apps.trading.rules.messages import PRICE_INVALID as PRICE_INVALID
from apps.trading.rules.messages import PRICE_NOT_ALLOWED as PRICE_NOT_ALLOWED
from apps.trading.rules.messages import PRICE_POSITIVE as PRICE_POSITIVE
from apps.trading.rules.messages import PRICE_REQUIRED as PRICE_REQUIRED
from apps.trading.rules.messages import PRICE_TICK as PRICE_TICK
from apps.trading.rules.messages import QUANTITY_DECIMALS as QUANTITY_DECIMALS
from apps.trading.rules.messages import QUANTITY_REQUIRED as QUANTITY_REQUIRED
from apps.trading.rules.messages import QUOTE_NEEDS_PRICE as QUOTE_NEEDS_PRICE
from apps.trading.rules.messages import QUOTE_ONLY_MARKET_BUY_VIQC as QUOTE_ONLY_MARKET_BUY_VIQC
from apps.trading.rules.messages import QUOTE_TOO_SMALL as QUOTE_TOO_SMALL
from apps.trading.rules.messages import SPENDABLE_SHORT as SPENDABLE_SHORT
from apps.trading.rules.messages import SYSTEM_STATUS as SYSTEM_STATUS
from apps.trading.rules.messages import TIF_EXPIRY_ONLY_GTD as TIF_EXPIRY_ONLY_GTD
from apps.trading.rules.messages import TIF_GTD_EXPIRY as TIF_GTD_EXPIRY
from apps.trading.rules.messages import TIF_MARKET as TIF_MARKET
from apps.trading.rules.messages import TRAILING_OFFSET as TRAILING_OFFSET
from apps.trading.rules.messages import TRIGGER_ONLY_TRIGGERED as TRIGGER_ONLY_TRIGGERED
from apps.trading.rules.messages import UNKNOWN_PAIR as UNKNOWN_PAIR
from apps.trading.rules.pairs import resolve_price as resolve_price
from apps.trading.rules.pairs import trailing_offset as trailing_offset
from apps.trading.rules.statuses import _status_rules as _status_rules
from apps.trading.rules.statuses import active_halt as active_halt
from apps.trading.rules.statuses import own_trading_key as own_trading_key
from apps.trading.rules.ticket import ticket_check as ticket_check
