"""Everything after prediction, on the units table: buckets, metrics, results, gate, baselines."""
