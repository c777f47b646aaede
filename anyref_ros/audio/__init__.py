"""Listening logic, ROS-free: what the microphone, speech and anyref nodes share.

Modules (import the one you need; this package imports nothing heavy itself):

* ``signal``: mono mix, fixed-cost windowed-sinc resampling, block level (dBFS).
* ``ring``: ``AudioRing``, a bounded, time-stamped, thread-safe buffer of mono audio.
* ``events``: ``SoundEventDetector``, streaming energy onsets over an adaptive noise floor.
* ``direction``: ``DirectionFinder``, the direction of a sound from a microphone array (SRP-PHAT).
* ``vad``, ``asr``: voice activity detection and speech recognition.
"""
