"""Side-by-side benchmarks of Tollgate against its peers (``make bench``)."""
