"""Admission and sweep loops; any number may run, leases keep ticks unique."""
