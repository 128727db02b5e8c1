"""Classification: a unit is an image."""
