"""Model: the temporal dilated CNN, whole-sequence prediction with the inference step, and the one model loader."""
