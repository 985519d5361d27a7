"""Side-by-side benchmarks of frontrow; run `python -m bench`."""
