"""Model architectures: HGA, AG-SSM, heads, baselines and the preset registry."""
