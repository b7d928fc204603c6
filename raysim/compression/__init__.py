"""Update compression: codecs (pure numpy), error feedback, framing, and the run's channel.

Floor 1: nothing here knows of the simulation; the driver asks the channel what an update
becomes and how many bytes it took (``sim/kernel/driver.py``)."""
