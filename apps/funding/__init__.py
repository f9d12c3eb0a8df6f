"""Treasury: balances, deposits, address book, four-eyes withdrawals, transfers, and the funding
workflow actions.
"""
