"""Chinese text processing shared by training and serving: normalisation and segmentation."""
