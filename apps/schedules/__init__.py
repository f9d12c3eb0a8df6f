"""Scheduled workflows: schedules, slots, runs exactly once per slot, catch-up, and the action
registry the business apps fill.
"""
