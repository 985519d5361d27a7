"""Dates, seat maps and 5-minute seat holds, answered from Redis."""
