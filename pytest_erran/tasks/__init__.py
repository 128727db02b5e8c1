"""The tasks: each loads its dev set and turns predictions into hits on units."""
