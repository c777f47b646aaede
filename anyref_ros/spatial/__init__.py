"""The answer in space, without ROS: transforms over time (:mod:`.transforms`)
and an object's points, position and oriented box from a mask and depth
(:mod:`.objects`)."""
