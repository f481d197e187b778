"""Pure PyTorch and numpy: label-set loading and download. Nothing here imports Django."""
