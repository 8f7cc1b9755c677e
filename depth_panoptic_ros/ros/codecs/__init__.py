"""Messages <-> arrays: images, clouds, camera info, the SensorFrame of a message set and the output messages."""
