"""The engine: what the facades (``Resource``, ``Database``) stand on.

Frames, SQL, exports and plugins call the engine's documented methods and the public API,
never another module's underscore names. ``pool`` runs bulk work on a bounded pool.
"""
