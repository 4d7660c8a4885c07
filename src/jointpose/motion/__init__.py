"""Motion sources: BVH reading/writing, rig maps, motion-capture folders, synthetic motion, dataset building."""
