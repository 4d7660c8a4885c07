"""Data: VideoPose3D-format datasets, training windows, 2D keypoint files and layouts, and video
(decoding, BlazePose detection, whom the track follows, the repaired 2D track)."""
