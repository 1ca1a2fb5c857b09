"""Measuring tools: benchmarks and meters; the model, data and task code never import this package."""
