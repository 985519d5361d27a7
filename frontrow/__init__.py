"""frontrow: a Redis-native virtual waiting room and ticket-booking backend."""
