"""Serving: the prediction service (predict, rank) and the decision log."""
