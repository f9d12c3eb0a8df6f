"""Staking with Kraken Earn: strategies, allocations, rewards and the auto-stake workflow action."""
