"""The waiting queue: enter, poll, leave, admit and sweep, all over Redis."""
