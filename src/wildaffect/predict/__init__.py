"""Prediction on media files: the streaming predictor, its table and the batch.

Nothing heavy is imported here, so the CLI can read the defaults without torch or PyAV.
"""

#: Frames per model step. Memory grows with it and the rows do not depend on it; 64 frames
#: (2-3 s of video) keep a one-hour video's peak within a few % of a short clip's at full speed
#: (see benchmarks/predict.py).
DEFAULT_CHUNK_FRAMES = 64
