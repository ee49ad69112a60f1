"""Deployment: kept weights, folding, the packed integer model and NIR export."""
