"""Face front-end: detect, track, landmarks (478 -> 68), alignment and regions of interest."""
