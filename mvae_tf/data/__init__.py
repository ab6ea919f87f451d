"""Music data: file reading, converters to and from tensors, data sets."""
