"""The trading desk: order ticket, pre-trade risk, kill switch, blotters and P&L. Orders are
exchange operations.
"""
