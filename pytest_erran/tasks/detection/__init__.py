"""Object detection: a unit is a ground-truth object."""
