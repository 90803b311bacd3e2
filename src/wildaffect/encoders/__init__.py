"""Frame and audio encoders: foundation models through transformers, and offline encoders."""
