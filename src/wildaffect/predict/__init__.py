"""Prediction on media files: the streaming predictor, its table and the batch."""
