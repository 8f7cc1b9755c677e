"""`depth-panoptic demo`: the node end to end over real ROS 2 topics, on a synthetic bag, with previews."""
