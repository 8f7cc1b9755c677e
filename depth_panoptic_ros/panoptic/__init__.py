"""The depth-aware panoptic network (backbones, FPN, fusion, heads), its inference and panoptic merges."""
